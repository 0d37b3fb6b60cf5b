// Training backward, dk/dv entry point (see attention.backward.wgsl). Reads dsum from main_dq.
// dk of (j, g) at dkv[j*dkStride + dkCol + g*HD + d]; dv at dkv[dvOff + j*dvStride + dvCol + g*HD + d]
// (one buffer: dense scratch [2, T, nkv*HD], or the k and v slices of a fused dqkv).
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read> dout: array<f32>;
@group(0) @binding(7) var<storage, read> dsum: array<f32>;
@group(0) @binding(8) var<storage, read_write> dkv: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= p.T * p.nkv) { return; }
  let j = idx / p.nkv;
  let g = idx % p.nkv;
  var kr: array<f32, HD>;
  var vr: array<f32, HD>;
  var dk: array<f32, HD>;
  var dv: array<f32, HD>;
  let ko = ki(j, g);
  let vo = vi(j, g);
  for (var d = 0u; d < HD; d++) { kr[d] = k[ko + d]; vr[d] = v[vo + d]; dk[d] = 0.0; dv[d] = 0.0; }
  let seg = segStart[j];
  for (var hh = 0u; hh < p.group; hh++) {
    let h = g * p.group + hh;
    for (var i = j; i < p.T; i++) {
      if (segStart[i] != seg) { break; }
      let qo = qi(i, h);
      let oo = (i * p.nh + h) * HD;
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < HD; d++) {
        s += q[qo + d] * kr[d];
        dp += dout[oo + d] * vr[d];
      }
      let pr = exp(s * p.scale - lse[i * p.nh + h]);
      let ds = pr * (dp - dsum[i * p.nh + h]);
      for (var d = 0u; d < HD; d++) {
        dv[d] += pr * dout[oo + d];
        dk[d] += ds * q[qo + d];
      }
    }
  }
  let wk = j * p.dkStride + p.dkCol + g * HD;
  let wv = p.dvOff + j * p.dvStride + p.dvCol + g * HD;
  for (var d = 0u; d < HD; d++) {
    dkv[wk + d] = dk[d] * p.scale;
    dkv[wv + d] = dv[d];
  }
}
