// RMSNorm backward (HF LlamaRMSNorm, f32), barrier-free, one invocation per row (main) or per
// column (main_dw). Forward: y = x · r · w, r = 1 / sqrt(mean(x²) + eps). For a row of D:
//   dx_i = r · dy_i · w_i − (r³ / D) · x_i · Σ_j dy_j · w_j · x_j
//   dw_j = Σ_rows dy_j · x_j · r          (only when the norm weight is trained)
// main recomputes r from the saved input and writes it to rstd[row] (main_dw reads it).
@group(0) @binding(0) var<uniform> p: RmsNormBwdParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;

const RMS_ACCUMULATE: u32 = 1u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.x + gid.y * nwg.x * 64u;
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  // Same summation order as rmsnorm.wgsl main_rows (four interleaved partial sums).
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
  var dot = 0.0;
  for (var j = 0u; j < p.dim; j++) { dot += dy[base + j] * w[j] * x[base + j]; }
  let c = r * r * r * dot / f32(p.dim);
  let acc = (p.flags & RMS_ACCUMULATE) != 0u;
  for (var j = 0u; j < p.dim; j++) {
    var g = r * dy[base + j] * w[j] - c * x[base + j];
    if (acc) { g += dx[base + j]; }
    dx[base + j] = g;
  }
  rstd[row] = r;
}

// dw[j] (+)= Σ_row dy[row, j] · x[row, j] · rstd[row]; one invocation per column, rows in order
// (deterministic). dw is bound at binding 4 (the dx slot) by the host.
@compute @workgroup_size(64)
fn main_dw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let j = gid.x + gid.y * nwg.x * 64u;
  if (j >= p.dim) { return; }
  var s = 0.0;
  for (var row = 0u; row < p.rows; row++) { s += dy[row * p.dim + j] * x[row * p.dim + j] * rstd[row]; }
  if ((p.flags & RMS_ACCUMULATE) != 0u) { s += dx[j]; }
  dx[j] = s;
}
