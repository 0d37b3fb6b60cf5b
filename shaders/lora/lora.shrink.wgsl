// LoRA shrink: t[row, m, k] = x[row, 0..in) · A[page(slot, k), m, 0..in). See lora.common.wgsl.
// One invocation per (shrink entry, module m of the bank's range [mFirst, mFirst + mCount)).
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> pages: array<u32>;
@group(0) @binding(4) var<storage, read> slotInfo: array<u32>;
@group(0) @binding(5) var<storage, read> items: array<u32>;
@group(0) @binding(6) var<storage, read_write> t: array<f32>;

fn xq(b: u32) -> vec4<f32> {
  return vec4<f32>(x[b], x[b + 1u], x[b + 2u], x[b + 3u]);
}
// The last partial vec4 of a row (in % 4 elements), without reading past the row.
fn xtail(b: u32, n: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (n > 0u) { v.x = x[b]; }
  if (n > 1u) { v.y = x[b + 1u]; }
  if (n > 2u) { v.z = x[b + 2u]; }
  return v;
}

// Rank lanes are processed 4 at a time (k0 .. k0 + 3, k0 < rank from the entry): every x vec4
// loaded is used for 4 lanes. Lanes past the adapter's rank re-read its last rank row and are not
// stored.
fn laneBase(slot: u32, k: u32, rank: u32, m: u32) -> u32 {
  return pageOf(slot, min(k, rank - 1u)) * p.aPage4 + m * p.inP4;
}
fn tIndex(row: u32, m: u32, k: u32) -> u32 { return row * p.tStride + m * p.rMax + k; }

// One row, 4 rank lanes k0 .. k0 + 3 of module m (bgmv entries, and sgmv tiles of a single row).
fn shrinkRow(row: u32, slot: u32, k0: u32, rank: u32, m: u32) {
  let a0 = laneBase(slot, k0, rank, m);
  let a1 = laneBase(slot, k0 + 1u, rank, m);
  let a2 = laneBase(slot, k0 + 2u, rank, m);
  let a3 = laneBase(slot, k0 + 3u, rank, m);
  let xb = row * p.xStride;
  let n4 = p.inDim / 4u;
  var l0 = vec4<f32>(0.0);
  var l1 = vec4<f32>(0.0);
  var l2 = vec4<f32>(0.0);
  var l3 = vec4<f32>(0.0);
  for (var c = 0u; c < n4; c++) {
    let xv = xq(xb + 4u * c);
    l0 += A[a0 + c] * xv;
    l1 += A[a1 + c] * xv;
    l2 += A[a2 + c] * xv;
    l3 += A[a3 + c] * xv;
  }
  let rem = p.inDim - 4u * n4;
  if (rem > 0u) {
    let xv = xtail(xb + 4u * n4, rem);
    l0 += A[a0 + n4] * xv;
    l1 += A[a1 + n4] * xv;
    l2 += A[a2 + n4] * xv;
    l3 += A[a3 + n4] * xv;
  }
  let tb = tIndex(row, m, k0);
  t[tb] = l0.x + l0.y + l0.z + l0.w;
  if (k0 + 1u < rank) { t[tb + 1u] = l1.x + l1.y + l1.z + l1.w; }
  if (k0 + 2u < rank) { t[tb + 2u] = l2.x + l2.y + l2.z + l2.w; }
  if (k0 + 3u < rank) { t[tb + 3u] = l3.x + l3.y + l3.z + l3.w; }
}

// Entry (row, slot, k0, 0): one row, 4 rank lanes.
@compute @workgroup_size(64)
fn bgmv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearId(gid, nwg);
  let e = i / p.mCount;
  let m = p.mFirst + i % p.mCount;
  if (e >= p.nItems) { return; }
  let row = item(4u * e);
  let slot = item(4u * e + 1u);
  let k0 = item(4u * e + 2u);
  if (!slotTargets(slot, m)) { return; }
  let rank = slotRank(slot);
  if (k0 >= rank) { return; }
  shrinkRow(row, slot, k0, rank, m);
}

// Entry (slot, nRows, row0, row1, row2, row3, k0, 0): a tile of ≤ 4 rows sharing one adapter, 4 rank
// lanes: a 4-row × 4-lane register tile; each A vec4 is used for 4 rows and each x vec4 for 4 lanes.
// Unused rows repeat row0 (results dropped); a 1-row tile takes the one-row path.
@compute @workgroup_size(64)
fn sgmv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearId(gid, nwg);
  let e = i / p.mCount;
  let m = p.mFirst + i % p.mCount;
  if (e >= p.nItems) { return; }
  let slot = item(8u * e);
  let nRows = item(8u * e + 1u);
  let r0 = item(8u * e + 2u);
  let r1 = item(8u * e + 3u);
  let r2 = item(8u * e + 4u);
  let r3 = item(8u * e + 5u);
  let k0 = item(8u * e + 6u);
  if (!slotTargets(slot, m)) { return; }
  let rank = slotRank(slot);
  if (k0 >= rank) { return; }
  // A single-row tile (a singleton adapter in a step that also has tiles: one dispatch for both).
  if (nRows == 1u) {
    shrinkRow(r0, slot, k0, rank, m);
    return;
  }
  let a0 = laneBase(slot, k0, rank, m);
  let a1 = laneBase(slot, k0 + 1u, rank, m);
  let a2 = laneBase(slot, k0 + 2u, rank, m);
  let a3 = laneBase(slot, k0 + 3u, rank, m);
  let x0 = r0 * p.xStride;
  let x1 = r1 * p.xStride;
  let x2 = r2 * p.xStride;
  let x3 = r3 * p.xStride;
  let n4 = p.inDim / 4u;
  var c00 = vec4<f32>(0.0);
  var c01 = vec4<f32>(0.0);
  var c02 = vec4<f32>(0.0);
  var c03 = vec4<f32>(0.0);
  var c10 = vec4<f32>(0.0);
  var c11 = vec4<f32>(0.0);
  var c12 = vec4<f32>(0.0);
  var c13 = vec4<f32>(0.0);
  var c20 = vec4<f32>(0.0);
  var c21 = vec4<f32>(0.0);
  var c22 = vec4<f32>(0.0);
  var c23 = vec4<f32>(0.0);
  var c30 = vec4<f32>(0.0);
  var c31 = vec4<f32>(0.0);
  var c32 = vec4<f32>(0.0);
  var c33 = vec4<f32>(0.0);
  for (var c = 0u; c < n4; c++) {
    let o = 4u * c;
    let xv0 = xq(x0 + o);
    let xv1 = xq(x1 + o);
    let xv2 = xq(x2 + o);
    let xv3 = xq(x3 + o);
    let av0 = A[a0 + c];
    let av1 = A[a1 + c];
    let av2 = A[a2 + c];
    let av3 = A[a3 + c];
    c00 += av0 * xv0;
    c01 += av1 * xv0;
    c02 += av2 * xv0;
    c03 += av3 * xv0;
    c10 += av0 * xv1;
    c11 += av1 * xv1;
    c12 += av2 * xv1;
    c13 += av3 * xv1;
    c20 += av0 * xv2;
    c21 += av1 * xv2;
    c22 += av2 * xv2;
    c23 += av3 * xv2;
    c30 += av0 * xv3;
    c31 += av1 * xv3;
    c32 += av2 * xv3;
    c33 += av3 * xv3;
  }
  let rem = p.inDim - 4u * n4;
  if (rem > 0u) {
    let o = 4u * n4;
    let xv0 = xtail(x0 + o, rem);
    let xv1 = xtail(x1 + o, rem);
    let xv2 = xtail(x2 + o, rem);
    let xv3 = xtail(x3 + o, rem);
    let av0 = A[a0 + n4];
    let av1 = A[a1 + n4];
    let av2 = A[a2 + n4];
    let av3 = A[a3 + n4];
    c00 += av0 * xv0;
    c01 += av1 * xv0;
    c02 += av2 * xv0;
    c03 += av3 * xv0;
    c10 += av0 * xv1;
    c11 += av1 * xv1;
    c12 += av2 * xv1;
    c13 += av3 * xv1;
    c20 += av0 * xv2;
    c21 += av1 * xv2;
    c22 += av2 * xv2;
    c23 += av3 * xv2;
    c30 += av0 * xv3;
    c31 += av1 * xv3;
    c32 += av2 * xv3;
    c33 += av3 * xv3;
  }
  {
    let tb = tIndex(r0, m, k0);
    t[tb] = c00.x + c00.y + c00.z + c00.w;
    if (k0 + 1u < rank) { t[tb + 1u] = c01.x + c01.y + c01.z + c01.w; }
    if (k0 + 2u < rank) { t[tb + 2u] = c02.x + c02.y + c02.z + c02.w; }
    if (k0 + 3u < rank) { t[tb + 3u] = c03.x + c03.y + c03.z + c03.w; }
  }
  if (nRows > 1u) {
    let tb = tIndex(r1, m, k0);
    t[tb] = c10.x + c10.y + c10.z + c10.w;
    if (k0 + 1u < rank) { t[tb + 1u] = c11.x + c11.y + c11.z + c11.w; }
    if (k0 + 2u < rank) { t[tb + 2u] = c12.x + c12.y + c12.z + c12.w; }
    if (k0 + 3u < rank) { t[tb + 3u] = c13.x + c13.y + c13.z + c13.w; }
  }
  if (nRows > 2u) {
    let tb = tIndex(r2, m, k0);
    t[tb] = c20.x + c20.y + c20.z + c20.w;
    if (k0 + 1u < rank) { t[tb + 1u] = c21.x + c21.y + c21.z + c21.w; }
    if (k0 + 2u < rank) { t[tb + 2u] = c22.x + c22.y + c22.z + c22.w; }
    if (k0 + 3u < rank) { t[tb + 3u] = c23.x + c23.y + c23.z + c23.w; }
  }
  if (nRows > 3u) {
    let tb = tIndex(r3, m, k0);
    t[tb] = c30.x + c30.y + c30.z + c30.w;
    if (k0 + 1u < rank) { t[tb + 1u] = c31.x + c31.y + c31.z + c31.w; }
    if (k0 + 2u < rank) { t[tb + 2u] = c32.x + c32.y + c32.z + c32.w; }
    if (k0 + 3u < rank) { t[tb + 3u] = c33.x + c33.y + c33.z + c33.w; }
  }
}
