// Training forward entry point (see attention.backward.wgsl).
@group(0) @binding(5) var<storage, read_write> o: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= p.T * p.nh) { return; }
  let t = idx / p.nh;
  let h = idx % p.nh;
  let g = h / p.group;
  var qr: array<f32, HD>;
  var acc: array<f32, HD>;
  let qo = qi(t, h);
  for (var d = 0u; d < HD; d++) { qr[d] = q[qo + d]; acc[d] = 0.0; }
  var m = -3.0e38;
  var l = 0.0;
  for (var j = segStart[t]; j <= t; j++) {
    let ko = ki(j, g);
    var s = 0.0;
    for (var d = 0u; d < HD; d++) { s += qr[d] * k[ko + d]; }
    s *= p.scale;
    if (s > m) {
      let c = exp(m - s);
      l *= c;
      for (var d = 0u; d < HD; d++) { acc[d] *= c; }
      m = s;
    }
    let e = exp(s - m);
    l += e;
    let vo = vi(j, g);
    for (var d = 0u; d < HD; d++) { acc[d] += e * v[vo + d]; }
  }
  let inv = 1.0 / l;
  let oo = (t * p.nh + h) * HD;
  for (var d = 0u; d < HD; d++) { o[oo + d] = acc[d] * inv; }
  lse[t * p.nh + h] = m + log(l);
}
