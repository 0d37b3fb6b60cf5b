// RoPE backward, in place: the inverse rotation (angle −θ) applied to the gradient, with the same
// angle and the same cos/sin as rope.wgsl (this entry point is appended to rope.wgsl's module, so
// it shares its bindings and rope_cos_sin). For y1 = x1·c − x2·s, y2 = x2·c + x1·s:
//   dx1 = dy1·c + dy2·s,  dx2 = dy2·c − dy1·s.
@compute @workgroup_size(64)
fn main_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  let half = p.head_dim / 2u;
  if (idx >= p.tokens * p.heads * half) { return; }
  let i = idx % half;
  let th = idx / half;
  let h = th % p.heads;
  let t = th / p.heads;
  let ang = f32(positions[t]) * inv_freq[i];
  let cs = rope_cos_sin(ang);
  let base = t * p.row_stride + p.col_offset + h * p.head_dim + i;
  let g1 = x[base];
  let g2 = x[base + half];
  x[base] = g1 * cs.x + g2 * cs.y;
  x[base + half] = g2 * cs.x - g1 * cs.y;
}
