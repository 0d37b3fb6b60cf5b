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

@compute @workgroup_size(64)
fn sgmv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linearId(gid, nwg);
  let item = i / p.outP4;
  let c4 = i % p.outP4;
  if (item >= p.nItems) { return; }
  let row0 = items[4u * item];
  let nRows = items[4u * item + 1u];
  let slot = items[4u * item + 2u];
  if (!slotTargets(slot)) { return; }
  let rank = slotRank(slot);
  let t0 = row0 * p.rMax;
  let t1 = select(row0, row0 + 1u, nRows > 1u) * p.rMax;
  let t2 = select(row0, row0 + 2u, nRows > 2u) * p.rMax;
  let t3 = select(row0, row0 + 3u, nRows > 3u) * p.rMax;
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
  addOut(row0, col0, s * c0);
  if (nRows > 1u) { addOut(row0 + 1u, col0, s * c1); }
  if (nRows > 2u) { addOut(row0 + 2u, col0, s * c2); }
  if (nRows > 3u) { addOut(row0 + 3u, col0, s * c3); }
}
