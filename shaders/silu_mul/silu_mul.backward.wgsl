// SwiGLU backward: for out[r, j] = silu(g) · u with g = gate[r*gate_stride + j],
// u = up[r*up_stride + up_offset + j], σ = 1 / (1 + exp(-g)):
//   du = dout · silu(g)
//   dg = dout · u · σ · (1 + g · (1 − σ))
// written to dgate[r*dg_stride + j] and dup[r*du_stride + du_offset + j] (the fused gate|up
// gradient [rows, 2*inter] binds one buffer for both). dout is dense [rows, inter].
@group(0) @binding(0) var<uniform> p: SiluMulBwdParams;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgu: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= p.rows * p.inter) { return; }
  let r = idx / p.inter;
  let j = idx % p.inter;
  let g = gate[r * p.gate_stride + j];
  let u = up[r * p.up_stride + p.up_offset + j];
  let d = dout[idx];
  // exp(-g) = inf for g < -88: sig = 0, silu = -0, dg = 0 (the limits).
  let sig = 1.0 / (1.0 + exp(-g));
  let silu = g * sig;
  dgu[r * p.dg_stride + j] = d * u * sig * (1.0 + g * (1.0 - sig));
  dgu[r * p.du_stride + p.du_offset + j] = d * silu;
}
