// Multi-LoRA kernels, shared part. For the rows of a step that use adapter a:
//   out[row, outOff + j] += scale_a · Σ_k (x[row] · A_a[k]) · B_a[j, k]
// in two barrier-free stages (shaders/lora.shrink.wgsl, shaders/lora.expand.wgsl):
//   shrink:  t[row, k] = x[row] · A[page(a, k)]                        (k < rank_a)
//   expand:  out[row, outOff + j] += scale_a · Σ_k t[row, k] · Bt[page(a, k), j]
// Two work-item formats (host: shaders/lora.ts), one entry point each:
//   bgmv: items = (row, slot) u32 pairs, one row per invocation (an adapter with one row in the step).
//   sgmv: items = (slot, nRows ≤ 4, row0, row1, row2, row3, 0, 0): a tile of up to 4 rows that share
//     an adapter — consecutive rows of a prefill segment, or decode rows of the same adapter gathered
//     from anywhere in the batch; each A / Bt vec4 loaded is used for every row of the tile.
// Adapter storage ("unified paging": one page = one rank row; engine/lora/pool.ts):
//   A  [pages, inP]  f32: page p holds one rank row of some adapter's A, zero-padded to inP = ceil4(in)
//   Bt [pages, outP] f32: the matching column of B, zero-padded to outP = ceil4(out)
//   pages    [slots, rMax] u32: page of rank row k of the adapter in slot s
//   slotInfo [slots, 2 + layers] u32: rank, bitcast<u32>(scale), per-layer module bit mask
// A row whose adapter does not target (layer, module) (mask bit clear) returns at once; rows
// without an adapter are never in the item lists, so they cost nothing and stay untouched.
// Linear invocation index: gid.x + gid.y * nwg.x * 64 (2-D grid from Runtime.grid()).

@group(0) @binding(0) var<uniform> p: LoraParams;

fn linearId(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * 64u;
}
fn slotTargets(slot: u32) -> bool {
  return (slotInfo[slot * p.slotStride + 2u + p.layer] & p.moduleBit) != 0u;
}
fn slotRank(slot: u32) -> u32 { return slotInfo[slot * p.slotStride]; }
fn slotScale(slot: u32) -> f32 { return bitcast<f32>(slotInfo[slot * p.slotStride + 1u]); }
fn pageOf(slot: u32, k: u32) -> u32 { return pages[slot * p.rMax + k]; }
