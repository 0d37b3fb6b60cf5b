// Rotary position embedding, in place, HF rotate-half layout: in each head the pairs
// (i, i + headDim/2) rotate by angle = f32(pos) * invFreq[i] (f32 product, as HF computes freqs).
// One invocation per (token, head, i < headDim/2). Element (t, h, j) lives at
//   x[t * rowStride + colOffset + h * headDim + j]
// so the q or k slice of a fused qkv row can be rotated directly.
// cos/sin use our own Cody-Waite reduction by pi/2 (4-part split, exact products for
// |angle| < 2^15 * pi/2 ≈ 51000) and Cephes sinf/cosf polynomials, so results do not depend on
// the quality of the platform's sin/cos for large arguments.
@group(0) @binding(0) var<uniform> p: RopeParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read> inv_freq: array<f32>;

fn rope_cos_sin(a: f32) -> vec2<f32> {
  let k = round(a * 0.63661977236758134);
  var r = a - k * 1.5703125;
  r = r - k * 0.00048351287841796875;
  r = r - k * 3.1385570764541625977e-7;
  r = r - k * 6.0770943832721968647e-11;
  let z = r * r;
  let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  let q = u32(i32(k) & 3);
  if (q == 0u) { return vec2<f32>(c, s); }
  if (q == 1u) { return vec2<f32>(-s, c); }
  if (q == 2u) { return vec2<f32>(-c, -s); }
  return vec2<f32>(s, -c);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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
  let x1 = x[base];
  let x2 = x[base + half];
  x[base] = x1 * cs.x - x2 * cs.y;
  x[base + half] = x2 * cs.x + x1 * cs.y;
}
