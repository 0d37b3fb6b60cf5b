// LoRA expand: out[row, outOff + j] += scale · Σ_{k < rank} t[row, k] · Bt[page(slot, k), j].
// See lora.common.wgsl. One invocation per (item, 4 output columns); writes are scalar because
// out's row stride and column offset need not be multiples of 4 (fused qkv / gate|up buffers).
@group(0) @binding(1) var<storage, read> t: array<f32>;
@group(0) @binding(2) var<storage, read> Bt: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> pages: array<u32>;
@group(0) @binding(4) var<storage, read> slotInfo: array<u32>;
@group(0) @binding(5) var<storage, read> items: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

fn addOut(row: u32, col0: u32, v: vec4<f32>) {
  let b = row * p.outStride + p.outOff + col0;
  out[b] += v.x;
  if (col0 + 1u < p.outDim) { out[b + 1u] += v.y; }
  if (col0 + 2u < p.outDim) { out[b + 2u] += v.z; }
  if (col0 + 3u < p.outDim) { out[b + 3u] += v.w; }
}

@compute @workgroup_size(64)
fn bgmv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearId(gid, nwg);
  let item = i / p.outP4;
  let c4 = i % p.outP4;
  if (item >= p.nItems) { return; }
  let row = items[2u * item];
  let slot = items[2u * item + 1u];
  if (!slotTargets(slot)) { return; }
  let rank = slotRank(slot);
  let tb = row * p.rMax;
  var acc = vec4<f32>(0.0);
  for (var k = 0u; k < rank; k++) {
    acc += t[tb + k] * Bt[pageOf(slot, k) * p.outP4 + c4];
  }
  addOut(row, 4u * c4, slotScale(slot) * acc);
}

// Item: (slot, nRows, row0..row3, 0, 0) as in shrink; a 4-row × 4-column register tile.
@compute @workgroup_size(64)
fn sgmv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearId(gid, nwg);
  let item = i / p.outP4;
  let c4 = i % p.outP4;
  if (item >= p.nItems) { return; }
  let slot = items[8u * item];
  let nRows = items[8u * item + 1u];
  let r0 = items[8u * item + 2u];
  let r1 = items[8u * item + 3u];
  let r2 = items[8u * item + 4u];
  let r3 = items[8u * item + 5u];
  if (!slotTargets(slot)) { return; }
  let rank = slotRank(slot);
  let t0 = r0 * p.rMax;
  let t1 = r1 * p.rMax;
  let t2 = r2 * p.rMax;
  let t3 = r3 * p.rMax;
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  for (var k = 0u; k < rank; k++) {
    let b = Bt[pageOf(slot, k) * p.outP4 + c4];
    c0 += t[t0 + k] * b;
    c1 += t[t1 + k] * b;
    c2 += t[t2 + k] * b;
    c3 += t[t3 + k] * b;
  }
  let s = slotScale(slot);
  let col0 = 4u * c4;
  addOut(r0, col0, s * c0);
  if (nRows > 1u) { addOut(r1, col0, s * c1); }
  if (nRows > 2u) { addOut(r2, col0, s * c2); }
  if (nRows > 3u) { addOut(r3, col0, s * c3); }
}
