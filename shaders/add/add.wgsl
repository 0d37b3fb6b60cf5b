// Residual add: out[i] = a[i] + b[i] (vec4 lanes; n is a multiple of 4 or padded by the caller).
// In-place use (out aliases a) is done with the `add_inplace` entry point.

@group(0) @binding(0) var<uniform> p: AddParams;
@group(0) @binding(1) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n4) { return; }
  a[i] = a[i] + b[i];
}
