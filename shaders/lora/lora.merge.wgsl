// LoRA merge into an f32 weight part (the merge-and-swap baseline of bench/multi-lora, and
// offline merging): W[row - partRowStart, k] += scale · Σ_{r < rank} B[row - rowOff, r] · A[r, k]
// for the module's rows rowOff .. rowOff + outDim that fall into this part (a fused qkv / gate|up
// weight holds several modules at row offsets). A / B come from the adapter pool's pages through
// the slot's page table: module m of a bank has its A row at page · aPage4 + aOff4 (vec4) and its
// Bt columns at page · btP + btOff (see lora.common.wgsl).
// One invocation per (module row j, 4 consecutive k).
@group(0) @binding(0) var<uniform> p: LoraMergeParams;
@group(0) @binding(1) var<storage, read_write> W: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> Bt: array<f32>;
@group(0) @binding(4) var<storage, read> pages: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  let k4 = (p.K + 3u) / 4u;
  let j = i / k4;
  let c4 = i % k4;
  if (j >= p.outDim) { return; }
  let row = p.rowOff + j;
  if (row < p.partRowStart || row >= p.partRowStart + p.partRows) { return; }
  var acc = vec4<f32>(0.0);
  for (var r = 0u; r < p.rank; r++) {
    let pg = pages[p.slot * p.rMax + r];
    acc += Bt[pg * p.btP + p.btOff + j] * A[pg * p.aPage4 + p.aOff4 + c4];
  }
  acc *= p.scale;
  let b = (row - p.partRowStart) * p.K + 4u * c4;
  W[b] += acc.x;
  if (4u * c4 + 1u < p.K) { W[b + 1u] += acc.y; }
  if (4u * c4 + 2u < p.K) { W[b + 2u] += acc.z; }
  if (4u * c4 + 3u < p.K) { W[b + 3u] += acc.w; }
}
