// RMSNorm: out[r, :] = x[r, :] * (1 / sqrt(mean(x[r, :]^2) + eps)) * w[:]   (HF LlamaRMSNorm, f32).
// Two entry points:
//   main      — one workgroup of RED_WG invocations per row (strided columns, one-barrier reduction).
//   main_rows — one invocation per row, no barriers (small dims; SwiftShader's fast path).
// Workgroups are laid out with rt.grid(): linear index wid.x + wid.y * nwg.x.
@group(0) @binding(0) var<uniform> p: RmsNormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(RED_WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32> RED_ARGS) {
  red_init(li, RED_SGS);
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  var ss = 0.0;
  for (var i = li; i < p.dim; i += RED_WG) {
    let v = x[base + i];
    ss += v * v;
  }
  let total = red_sum(ss);
  let r = 1.0 / sqrt(total / f32(p.dim) + p.eps);
  for (var i = li; i < p.dim; i += RED_WG) {
    o[base + i] = x[base + i] * r * w[i];
  }
}

@compute @workgroup_size(64)
fn main_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.x + gid.y * nwg.x * 64u;
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  // Four interleaved partial sums: shorter f32 accumulation chains.
  var s = vec4<f32>(0.0);
  var i = 0u;
  for (; i + 4u <= p.dim; i += 4u) {
    let v = vec4<f32>(x[base + i], x[base + i + 1u], x[base + i + 2u], x[base + i + 3u]);
    s += v * v;
  }
  for (; i < p.dim; i++) {
    let v = x[base + i];
    s.x += v * v;
  }
  let total = (s.x + s.y) + (s.z + s.w);
  let r = 1.0 / sqrt(total / f32(p.dim) + p.eps);
  for (var j = 0u; j < p.dim; j++) {
    o[base + j] = x[base + j] * r * w[j];
  }
}
