// W_eff = W + s·B·A per module (see lora_train.wgsl):
//   eff[wOff + n*K + k] = base[wOff + n*K + k] + s · Σ_ρ B[n, ρ]·A[ρ, k]
// One invocation per 4x4 block (4 rows n, 4 columns k); loads clamped, stores guarded.
@group(0) @binding(2) var<storage, read> base: array<f32>;
@group(0) @binding(3) var<storage, read> lora: array<f32>;
@group(0) @binding(4) var<storage, read_write> eff: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.y >= p.nEntries) { return; }
  let e = entry(gid.y);
  let kb = (e.K + 3u) / 4u;
  if (gid.x >= ((e.N + 3u) / 4u) * kb) { return; }
  let n0 = (gid.x / kb) * 4u;
  let k0 = (gid.x % kb) * 4u;
  let n = vec4<u32>(min(n0, e.N - 1u), min(n0 + 1u, e.N - 1u), min(n0 + 2u, e.N - 1u), min(n0 + 3u, e.N - 1u));
  let k = vec4<u32>(min(k0, e.K - 1u), min(k0 + 1u, e.K - 1u), min(k0 + 2u, e.K - 1u), min(k0 + 3u, e.K - 1u));
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  var ao = e.aOff;
  for (var rho = 0u; rho < p.r; rho++) {
    let a = vec4<f32>(lora[ao + k.x], lora[ao + k.y], lora[ao + k.z], lora[ao + k.w]);
    let bo = e.bOff + rho;
    c0 = fma(vec4<f32>(lora[bo + n.x * p.r]), a, c0);
    c1 = fma(vec4<f32>(lora[bo + n.y * p.r]), a, c1);
    c2 = fma(vec4<f32>(lora[bo + n.z * p.r]), a, c2);
    c3 = fma(vec4<f32>(lora[bo + n.w * p.r]), a, c3);
    ao += e.K;
  }
  put(e, n0, k0, c0);
  put(e, n0 + 1u, k0, c1);
  put(e, n0 + 2u, k0, c2);
  put(e, n0 + 3u, k0, c3);
}

// eff[n, k0..k0+3] = base + s·c where n < N, k < K (no dynamic indexing into the accumulators).
fn put(e: Entry, n: u32, k0: u32, c: vec4<f32>) {
  if (n >= e.N) { return; }
  let w = e.wOff + n * e.K + k0;
  eff[w] = base[w] + p.scale * c.x;
  if (k0 + 1u < e.K) { eff[w + 1u] = base[w + 1u] + p.scale * c.y; }
  if (k0 + 2u < e.K) { eff[w + 2u] = base[w + 2u] + p.scale * c.z; }
  if (k0 + 3u < e.K) { eff[w + 3u] = base[w + 3u] + p.scale * c.w; }
}
