// matmul v1: naive. One output per invocation, scalar loop over K. The correctness baseline
// every other variant is measured against (bench/kernels).
override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= p.M * p.rows) { return; }
  let m = t / p.rows;
  let r = t % p.rows;
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) { acc += x1(m, k) * w1(r, k); }
  store(m, r, acc);
}
