// matmul v2: register-tiled, barrier-free. Each invocation computes a 4x4 block of outputs
// (4 rows m of x, 4 weight rows r) with vec4 loads along K: 8 vec4 loads feed 16 dot4s.
// Out-of-range rows/columns are clamped for loading (no branches in the K loop) and skipped
// at the store. tilesN = ceil(rows / 4).
override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  let tilesM = (p.M + 3u) / 4u;
  if (t >= tilesM * p.tilesN) { return; }
  let m0 = (t / p.tilesN) * 4u;
  let r0 = (t % p.tilesN) * 4u;
  let ma = min(m0, p.M - 1u); let mb = min(m0 + 1u, p.M - 1u);
  let mc = min(m0 + 2u, p.M - 1u); let md = min(m0 + 3u, p.M - 1u);
  let ra = min(r0, p.rows - 1u); let rb = min(r0 + 1u, p.rows - 1u);
  let rc = min(r0 + 2u, p.rows - 1u); let rd = min(r0 + 3u, p.rows - 1u);
  var c0 = vec4<f32>(0.0); var c1 = vec4<f32>(0.0); var c2 = vec4<f32>(0.0); var c3 = vec4<f32>(0.0);
  let K4 = p.K & ~3u;
  for (var k = 0u; k < K4; k += 4u) {
    let wa = w4(ra, k); let wb = w4(rb, k); let wc = w4(rc, k); let wd = w4(rd, k);
    let xa = x4(ma, k);
    c0 += vec4<f32>(dot(xa, wa), dot(xa, wb), dot(xa, wc), dot(xa, wd));
    let xb = x4(mb, k);
    c1 += vec4<f32>(dot(xb, wa), dot(xb, wb), dot(xb, wc), dot(xb, wd));
    let xc = x4(mc, k);
    c2 += vec4<f32>(dot(xc, wa), dot(xc, wb), dot(xc, wc), dot(xc, wd));
    let xd = x4(md, k);
    c3 += vec4<f32>(dot(xd, wa), dot(xd, wb), dot(xd, wc), dot(xd, wd));
  }
  for (var k = K4; k < p.K; k++) {
    let wv = vec4<f32>(w1(ra, k), w1(rb, k), w1(rc, k), w1(rd, k));
    c0 += x1(ma, k) * wv; c1 += x1(mb, k) * wv; c2 += x1(mc, k) * wv; c3 += x1(md, k) * wv;
  }
  for (var j = 0u; j < 4u; j++) {
    let r = r0 + j;
    if (r >= p.rows) { break; }
    if (m0 < p.M) { store(m0, r, c0[j]); }
    if (m0 + 1u < p.M) { store(m0 + 1u, r, c1[j]); }
    if (m0 + 2u < p.M) { store(m0 + 2u, r, c2[j]); }
    if (m0 + 3u < p.M) { store(m0 + 3u, r, c3[j]); }
  }
}
