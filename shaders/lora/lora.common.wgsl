// Multi-LoRA kernels, shared part. For the rows of a step that use adapter a, and each module m of
// a bank (modules that share an input: q|k|v, gate|up, or a single module):
//   out[row, oc_m + j] += scale_a · Σ_k (x[row] · A_a,m[k]) · B_a,m[j, k]
// in two barrier-free stages (lora.shrink.wgsl, lora.expand.wgsl), one dispatch each for all the
// bank's modules:
//   shrink:  t[row, m, k] = x[row] · A[page(a, k), m]                      (k < rank_a)
//   expand:  out[row, oc_m + j] += scale_a · Σ_k t[row, m, k] · Bt[page(a, k), col_m + j]
// Work items (host: lora.ts), two formats, one entry point each:
//   bgmv: one row (an adapter with a single row in the step)
//   sgmv: a tile of up to 4 rows that share an adapter (a prefill segment, or decode rows of the
//     same adapter gathered from anywhere in the batch); every A / Bt vec4 loaded serves all its rows.
// Shrink lists carry one entry per (item, group of 4 rank rows < the item's own rank): an item's
// work follows its adapter's rank, nothing is padded to the step's (or the pool's) largest rank.
//   bgmv shrink (row, slot, k0, 0) · sgmv shrink (slot, nRows, row0..row3, k0, 0)
//   bgmv expand (row, slot)        · sgmv expand (slot, nRows, row0..row3, 0, 0)
// Adapter storage ("unified paging": one page = one rank row; engine/lora/pool.ts), one bank per
// (layer, module group), so one binding serves every module of the group:
//   A  [pages, nMod, inP]  f32: page p, module m = row k of that module's lora_A, zero-padded to inP
//   Bt [pages, outP]       f32: page p = column k of every module's lora_B side by side, module m's
//                          columns from vec4 b4_m (each module padded to a multiple of 4)
//   pages    [slots, rMax] u32: page of rank row k of the adapter in slot s
//   slotInfo [slots, 2 + layers] u32: rank, bitcast<u32>(scale), per-layer module bit mask
//     (bank module m has bit 1 << (mod0 + m))
// A (row, module) whose adapter does not target (layer, module) returns at once; rows without an
// adapter are never in the item lists, so they cost nothing and stay untouched.
// Linear invocation index: gid.x + gid.y * nwg.x * 64 (2-D grid from Runtime.grid()).

@group(0) @binding(0) var<uniform> p: LoraParams;

fn linearId(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * 64u;
}
fn slotTargets(slot: u32, m: u32) -> bool {
  return (slotInfo[slot * p.slotStride + 2u + p.layer] & (1u << (p.mod0 + m))) != 0u;
}
fn slotRank(slot: u32) -> u32 { return slotInfo[slot * p.slotStride]; }
fn slotScale(slot: u32) -> f32 { return bitcast<f32>(slotInfo[slot * p.slotStride + 1u]); }
fn pageOf(slot: u32, k: u32) -> u32 { return pages[slot * p.rMax + k]; }
fn item(i: u32) -> u32 { return items[p.itemBase + i]; }
