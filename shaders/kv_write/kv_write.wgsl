// Paged KV write: copies this step's k and v rows out of the qkv activation into their cache
// pages. One invocation per (token, element of the token's k row), in units of V (f32 or vec4,
// chosen by the host preamble, which also defines `alias V` and `const W` = floats per V).
//
//   qkv  : [T, rowStride]   k of token t at t*rowStride + kCol + h*headDim + d, v likewise at vCol
//   slots: u32 words; slot of token t at slotBase + t*slotStride; 0xffffffff = skip (padding)
//   kc/vc: [numBlocks, numKvHeads, blockSize, headDim]; slot = block*blockSize + offset
// All offsets/strides in params are in units of V.

@group(0) @binding(0) var<uniform> p: KvWriteParams;
@group(0) @binding(1) var<storage, read> qkv: array<V>;
@group(0) @binding(2) var<storage, read> slots: array<u32>;
@group(0) @binding(3) var<storage, read_write> kc: array<V>;
@group(0) @binding(4) var<storage, read_write> vc: array<V>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  let rowV = p.numKvHeads * p.headDimV;
  if (i >= p.numTokens * rowV) { return; }
  let t = i / rowV;
  let e = i - t * rowV;
  let slot = slots[p.slotBase + t * p.slotStride];
  if (slot == 0xffffffffu) { return; }
  let h = e / p.headDimV;
  let d = e - h * p.headDimV;
  let block = slot / p.blockSize;
  let off = slot - block * p.blockSize;
  let dst = ((block * p.numKvHeads + h) * p.blockSize + off) * p.headDimV + d;
  let src = t * p.rowStride + e;
  kc[dst] = qkv[src + p.kCol];
  vc[dst] = qkv[src + p.vCol];
}
