// LoRA expand: out[row, oc_m + j] += scale · Σ_{k < rank} t[row, m, k] · Bt[page(slot, k), col_m + j].
// See lora.common.wgsl. One invocation per (item, 4 Bt columns of the bank's range [c4First,
// c4First + c4Span)); the 4 columns always belong to one module (each module's columns are padded
// to a multiple of 4 in Bt). Writes are scalar because out's row stride and the module's output
// column need not be multiples of 4 (fused qkv / gate|up buffers).
@group(0) @binding(1) var<storage, read> t: array<f32>;
@group(0) @binding(2) var<storage, read> Bt: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> pages: array<u32>;
@group(0) @binding(4) var<storage, read> slotInfo: array<u32>;
@group(0) @binding(5) var<storage, read> items: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

struct Col {
  m: u32,
  /** column of this vec4 inside the module */
  j: u32,
  /** output column of module column j */
  oc: u32,
  /** valid columns left in the module from j (≥ 1) */
  n: u32,
}

// Which module the vec4 c4 of a Bt page belongs to, and where its columns go; n = 0: padding.
fn colOf(c4: u32) -> Col {
  let m = select(0u, 1u, c4 >= p.b41) + select(0u, 1u, c4 >= p.b42);
  let b4 = select(select(0u, p.b41, m == 1u), p.b42, m == 2u);
  let dim = select(select(p.dim0, p.dim1, m == 1u), p.dim2, m == 2u);
  let oc = select(select(p.oc0, p.oc1, m == 1u), p.oc2, m == 2u);
  let j = 4u * (c4 - b4);
  return Col(m, j, oc + j, select(0u, dim - j, j < dim));
}

fn addOut(row: u32, c: Col, v: vec4<f32>) {
  let b = row * p.outStride + c.oc;
  out[b] += v.x;
  if (c.n > 1u) { out[b + 1u] += v.y; }
  if (c.n > 2u) { out[b + 2u] += v.z; }
  if (c.n > 3u) { out[b + 3u] += v.w; }
}

// One row, 4 columns (bgmv items, and sgmv tiles of a single row).
fn expandRow(row: u32, slot: u32, c: Col, c4: u32) {
  let rank = slotRank(slot);
  let tb = row * p.tStride + c.m * p.rMax;
  var acc = vec4<f32>(0.0);
  for (var k = 0u; k < rank; k++) {
    acc += t[tb + k] * Bt[pageOf(slot, k) * p.btPage4 + c4];
  }
  addOut(row, c, slotScale(slot) * acc);
}

// Item (row, slot).
@compute @workgroup_size(64)
fn bgmv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearId(gid, nwg);
  let e = i / p.c4Span;
  let c4 = p.c4First + i % p.c4Span;
  if (e >= p.nItems) { return; }
  let row = item(2u * e);
  let slot = item(2u * e + 1u);
  let c = colOf(c4);
  if (c.n == 0u || !slotTargets(slot, c.m)) { return; }
  expandRow(row, slot, c, c4);
}

// Item (slot, nRows, row0..row3, 0, 0); a 4-row × 4-column register tile.
@compute @workgroup_size(64)
fn sgmv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearId(gid, nwg);
  let e = i / p.c4Span;
  let c4 = p.c4First + i % p.c4Span;
  if (e >= p.nItems) { return; }
  let slot = item(8u * e);
  let nRows = item(8u * e + 1u);
  let r0 = item(8u * e + 2u);
  let r1 = item(8u * e + 3u);
  let r2 = item(8u * e + 4u);
  let r3 = item(8u * e + 5u);
  let c = colOf(c4);
  if (c.n == 0u || !slotTargets(slot, c.m)) { return; }
  if (nRows == 1u) {
    expandRow(r0, slot, c, c4);
    return;
  }
  let rank = slotRank(slot);
  let mo = c.m * p.rMax;
  let t0 = r0 * p.tStride + mo;
  let t1 = r1 * p.tStride + mo;
  let t2 = r2 * p.tStride + mo;
  let t3 = r3 * p.tStride + mo;
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  for (var k = 0u; k < rank; k++) {
    let b = Bt[pageOf(slot, k) * p.btPage4 + c4];
    c0 += t[t0 + k] * b;
    c1 += t[t1 + k] * b;
    c2 += t[t2 + k] * b;
    c3 += t[t3 + k] * b;
  }
  let s = slotScale(slot);
  addOut(r0, c, s * c0);
  if (nRows > 1u) { addOut(r1, c, s * c1); }
  if (nRows > 2u) { addOut(r2, c, s * c2); }
  if (nRows > 3u) { addOut(r3, c, s * c3); }
}
