// LoRA shrink: t[row, k] = x[row, 0..in) · A[page(slot, k), 0..in). See lora.common.wgsl.
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

// One invocation per (item = one row, rank lane k < kSpan = the largest rank in this step).
@compute @workgroup_size(64)
fn bgmv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearId(gid, nwg);
  let item = i / p.kSpan;
  let k = i % p.kSpan;
  if (item >= p.nItems) { return; }
  let row = items[2u * item];
  let slot = items[2u * item + 1u];
  if (!slotTargets(slot) || k >= slotRank(slot)) { return; }
  let a0 = pageOf(slot, k) * p.inP4;
  let xb = row * p.xStride;
  let n4 = p.inDim / 4u;
  var acc = vec4<f32>(0.0);
  for (var c = 0u; c < n4; c++) {
    acc += A[a0 + c] * xq(xb + 4u * c);
  }
  let rem = p.inDim - 4u * n4;
  if (rem > 0u) { acc += A[a0 + n4] * xtail(xb + 4u * n4, rem); }
  t[row * p.rMax + k] = acc.x + acc.y + acc.z + acc.w;
}

// One invocation per (item = tile of ≤ 4 rows sharing one adapter, rank lane k).
// Item: (slot, nRows, row0, row1, row2, row3, 0, 0); unused rows repeat row0 (results dropped).
@compute @workgroup_size(64)
fn sgmv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearId(gid, nwg);
  let item = i / p.kSpan;
  let k = i % p.kSpan;
  if (item >= p.nItems) { return; }
  let slot = items[8u * item];
  let nRows = items[8u * item + 1u];
  let r0 = items[8u * item + 2u];
  let r1 = items[8u * item + 3u];
  let r2 = items[8u * item + 4u];
  let r3 = items[8u * item + 5u];
  if (!slotTargets(slot) || k >= slotRank(slot)) { return; }
  let a0 = pageOf(slot, k) * p.inP4;
  let x0 = r0 * p.xStride;
  let x1 = r1 * p.xStride;
  let x2 = r2 * p.xStride;
  let x3 = r3 * p.xStride;
  let n4 = p.inDim / 4u;
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  for (var c = 0u; c < n4; c++) {
    let a = A[a0 + c];
    let o = 4u * c;
    c0 += a * xq(x0 + o);
    c1 += a * xq(x1 + o);
    c2 += a * xq(x2 + o);
    c3 += a * xq(x3 + o);
  }
  let rem = p.inDim - 4u * n4;
  if (rem > 0u) {
    let a = A[a0 + n4];
    let o = 4u * n4;
    c0 += a * xtail(x0 + o, rem);
    c1 += a * xtail(x1 + o, rem);
    c2 += a * xtail(x2 + o, rem);
    c3 += a * xtail(x3 + o, rem);
  }
  t[r0 * p.rMax + k] = c0.x + c0.y + c0.z + c0.w;
  if (nRows > 1u) { t[r1 * p.rMax + k] = c1.x + c1.y + c1.z + c1.w; }
  if (nRows > 2u) { t[r2 * p.rMax + k] = c2.x + c2.y + c2.z + c2.w; }
  if (nRows > 3u) { t[r3 * p.rMax + k] = c3.x + c3.y + c3.z + c3.w; }
}
