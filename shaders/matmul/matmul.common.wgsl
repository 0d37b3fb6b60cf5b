// matmul shared part: bias, output and the epilogue. Composed by shaders/matmul.ts as
//   MatmulParams + matmul.common + matmul.x_<mode> + matmul.w_<format> + matmul.<variant>.
// Bindings: 0 params, 1 x, 2 bias, 3 out, 4 weight data, 5 q8 scales.
// out[m, n] (row stride N, element offset outOff) = sum_k x[m, k] W[n, k] (+ bias[n]) (+ old out).
// A weight part holds rows rowStart .. rowStart+rows-1 of W; kernels index rows part-locally.

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const FLAG_ACCUMULATE: u32 = 1u;
const FLAG_BIAS: u32 = 2u;

// Writes one output (m < M, r < rows: the caller guards).
fn store(m: u32, r: u32, v: f32) {
  let n = p.rowStart + r;
  let i = p.outOff + m * p.N + n;
  var s = v;
  if ((p.flags & FLAG_BIAS) != 0u) { s += bias[n]; }
  if ((p.flags & FLAG_ACCUMULATE) != 0u) { s += out[i]; }
  out[i] = s;
}

// Writes out[m, r .. r+3] where in range (m, r may be past the end: they are checked here).
fn store4(m: u32, r: u32, v: vec4<f32>) {
  if (m >= p.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    if (r + j < p.rows) { store(m, r + j, v[j]); }
  }
}
