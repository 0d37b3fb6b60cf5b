// Training backward, dq entry point (see attention.backward.wgsl). Also writes dsum = rowsum(dO∘O).
@group(0) @binding(5) var<storage, read> o: array<f32>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;
@group(0) @binding(7) var<storage, read> dout: array<f32>;
@group(0) @binding(8) var<storage, read_write> dsum: array<f32>;
@group(0) @binding(9) var<storage, read_write> dq: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= p.T * p.nh) { return; }
  let t = idx / p.nh;
  let h = idx % p.nh;
  let g = h / p.group;
  var qr: array<f32, HD>;
  var dor: array<f32, HD>;
  var acc: array<f32, HD>;
  let qo = qi(t, h);
  let oo = (t * p.nh + h) * HD;
  var D = 0.0;
  for (var d = 0u; d < HD; d++) {
    qr[d] = q[qo + d];
    dor[d] = dout[oo + d];
    D += dor[d] * o[oo + d];
    acc[d] = 0.0;
  }
  let L = lse[t * p.nh + h];
  dsum[t * p.nh + h] = D;
  for (var j = segStart[t]; j <= t; j++) {
    let ko = ki(j, g);
    let vo = vi(j, g);
    var s = 0.0;
    var dp = 0.0;
    for (var d = 0u; d < HD; d++) {
      s += qr[d] * k[ko + d];
      dp += dor[d] * v[vo + d];
    }
    let pr = exp(s * p.scale - L);
    let ds = pr * (dp - D);
    for (var d = 0u; d < HD; d++) { acc[d] += ds * k[ko + d]; }
  }
  let dqo = t * p.dqStride + p.dqCol + h * HD;
  for (var d = 0u; d < HD; d++) { dq[dqo + d] = acc[d] * p.scale; }
}
