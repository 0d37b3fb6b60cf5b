// RoPE on q and k + paged KV write, fused (decode steps: one dispatch instead of rope + kv_write).
// One invocation per (token t, head h < numHeads + numKvHeads, i < headDim/2):
//   - the pair (i, i + half) of head h rotates in place in the qkv row, angle = f32(pos) * invFreq[i]
//     (q heads at qCol + h*headDim, k heads at kCol + (h - numHeads)*headDim), as shaders/rope.wgsl;
//   - k heads also store the rotated pair, and the v pair (i, i + half) of the same kv head, into
//     the token's cache slot, as shaders/kv_write.wgsl.
// pos and slot come from the batch metadata token records (engine/kv/paged-cache.ts):
//   meta[tokenBase + t*4 + 1] = pos, meta[tokenBase + t*4 + 2] = slot (0xffffffff = skip the write).
// rope_cos_sin() is shaders/rope.wgsl's, prepended by the host (one copy of the polynomials).
@group(0) @binding(0) var<uniform> p: RopeKvWriteParams;
@group(0) @binding(1) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> recs: array<u32>;
@group(0) @binding(3) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(4) var<storage, read_write> kc: array<f32>;
@group(0) @binding(5) var<storage, read_write> vc: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  let half = p.headDim / 2u;
  let nh = p.numHeads + p.numKvHeads;
  if (idx >= p.numTokens * nh * half) { return; }
  let i = idx % half;
  let th = idx / half;
  let h = th % nh;
  let t = th / nh;
  let rec = p.tokenBase + t * 4u;
  let pos = recs[rec + 1u];
  let ang = f32(pos) * inv_freq[i];
  let cs = rope_cos_sin(ang);
  let row = t * p.rowStride;
  var base: u32;
  if (h < p.numHeads) {
    base = row + p.qCol + h * p.headDim + i;
  } else {
    base = row + p.kCol + (h - p.numHeads) * p.headDim + i;
  }
  let x1 = qkv[base];
  let x2 = qkv[base + half];
  let y1 = x1 * cs.x - x2 * cs.y;
  let y2 = x2 * cs.x + x1 * cs.y;
  qkv[base] = y1;
  qkv[base + half] = y2;
  if (h < p.numHeads) { return; }
  let slot = recs[rec + 2u];
  if (slot == 0xffffffffu) { return; }
  let kh = h - p.numHeads;
  let block = slot / p.blockSize;
  let off = slot - block * p.blockSize;
  let dst = ((block * p.numKvHeads + kh) * p.blockSize + off) * p.headDim + i;
  kc[dst] = y1;
  kc[dst + half] = y2;
  let vsrc = row + p.vCol + kh * p.headDim + i;
  vc[dst] = qkv[vsrc];
  vc[dst + half] = qkv[vsrc + half];
}
