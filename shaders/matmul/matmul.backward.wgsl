// General f32 GEMM for backward passes (llm.c's matmul_backward, as one kernel with transposes):
//   C[m, n] = alpha · Σ_k A(m, k) · B(k, n)  (+ C[m, n] when FLAG_ACCUMULATE)
//   A(m, k) = a[aOff + m*lda + k]   (transA: a[aOff + k*lda + m])
//   B(k, n) = b[bOff + k*ldb + n]   (transB: b[bOff + n*ldb + k])
//   C[m, n] = c[cOff + m*ldc + n]
// Composed by shaders/matmul/matmul.backward.ts as GemmParams + this file + a generated,
// register-tiled, barrier-free `main` for the transpose combination and workgroup size (TM x TN
// outputs per invocation; operand addresses hoisted out of the K loop; loads clamped to the last
// row/column, stores guarded).
@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const GEMM_ACCUMULATE: u32 = 1u;

fn gstore(m: u32, n: u32, v: f32) {
  if (m >= p.M || n >= p.N) { return; }
  let i = p.cOff + m * p.ldc + n;
  var s = p.alpha * v;
  if ((p.flags & GEMM_ACCUMULATE) != 0u) { s += c[i]; }
  c[i] = s;
}
