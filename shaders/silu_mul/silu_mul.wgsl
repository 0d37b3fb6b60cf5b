// SwiGLU gate: out[r, j] = silu(gate[r * gate_stride + j]) * up[r * up_stride + up_offset + j],
// silu(g) = g / (1 + exp(-g)), for r < rows, j < inter; out is dense [rows, inter].
// Separate buffers: rows = 1, inter = n, strides n. Fused [rows, 2*inter] gate|up matmul
// output: gate and up are the same buffer, strides 2*inter, up_offset = inter.
@group(0) @binding(0) var<uniform> p: SiluMulParams;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= p.rows * p.inter) { return; }
  let r = idx / p.inter;
  let j = idx % p.inter;
  let g = gate[r * p.gate_stride + j];
  let u = up[r * p.up_stride + p.up_offset + j];
  // exp(-g) overflows to +inf for g < -88: g / inf = -0, the correct limit.
  o[idx] = g / (1.0 + exp(-g)) * u;
}
