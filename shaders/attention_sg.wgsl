// Paged causal attention, subgroup variant ('sg'): one subgroup per (token, q head); lane l owns
// the head elements l, l+S, l+2S, ... (S = subgroup size), so the lanes of a subgroup read
// consecutive floats of every q/K/V row (one vector load on SIMD CPUs, coalesced on GPUs).
// Scores of 4 keys at a time: per-lane partial dots, one subgroupAdd(vec4). The online softmax
// state (m, l) is subgroup-uniform; each lane rescales and accumulates its own elements.
// Work items are walked in a subgroup-uniform loop, so any subgroup size >= MINS is correct.
//
// Split-context mode (flash-decoding, when the host defines SPLIT = true): a work item is
// (token, head, chunk c) and covers keys [start + c*p.chunk, start + (c+1)*p.chunk) ∩ [start, pos];
// instead of the normalised output it writes the partial (m, l, acc[HD]) to `part` (binding 5) at
// ((t*numHeads + h)*p.numChunks + c)*(HD + 2); attention_combine.wgsl merges the chunks.
//
// Template: the host (shaders/attention.ts) expands the {{...}} markers for NC = ceil(HD / MINS)
// elements per lane and prepends `enable subgroups;`, the constants HD (head dim, floats),
// BS (block size), KVH (kv heads), WG, and the params. Bindings and layouts as attention.wgsl,
// but every buffer is array<f32> and strides/columns are in floats.

@group(0) @binding(0) var<uniform> p: AttnParams;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<f32>;
@group(0) @binding(3) var<storage, read> vc: array<f32>;
@group(0) @binding(4) var<storage, read> bmeta: array<u32>;
{{OUT_BINDING}}

const HEAD_STRIDE: u32 = BS * HD;
const BLOCK_STRIDE: u32 = KVH * BS * HD;

fn rowBase(tableStart: u32, j: u32, hoff: u32) -> u32 {
  return bmeta[tableStart + j / BS] * BLOCK_STRIDE + hoff + (j % BS) * HD;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_size) S: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let sgPerWg = WG / S;
  let firstItem = (wid.x + wid.y * nwg.x) * sgPerWg + li / S;
  let itemStride = nwg.x * nwg.y * sgPerWg;
  let items = p.numTokens * p.numHeads * p.numChunks;
{{LANE_ELEMS}}
  for (var item = firstItem; item < items; item += itemStride) {
    let th = item / p.numChunks;
    let chunk = item - th * p.numChunks;
    let t = th / p.numHeads;
    let h = th - t * p.numHeads;
    let hoff = (h / p.group) * HEAD_STRIDE;
    let rec = p.tokenBase + 4u * t;
    let tableStart = bmeta[rec];
    let pos = bmeta[rec + 1u];
    let qo = t * p.qStride + p.qCol + h * HD;
{{Q_LOAD}}
{{ACC_DECL}}
    var start = 0u;
    if (p.window > 0u && pos + 1u > p.window) { start = pos + 1u - p.window; }
    var last = pos;
    if (SPLIT) {
      start += chunk * p.chunk;
      if (start > pos) { continue; } // the token's context has fewer chunks
      last = min(pos, start + p.chunk - 1u);
    }
    var m = -3.0e38;
    var l = 0.0;
    for (var j = start; j <= last; j += 4u) {
      let b0 = rowBase(tableStart, j, hoff);
      let b1 = rowBase(tableStart, min(j + 1u, last), hoff);
      let b2 = rowBase(tableStart, min(j + 2u, last), hoff);
      let b3 = rowBase(tableStart, min(j + 3u, last), hoff);
      var sp = vec4<f32>(0.0);
{{SCORE}}
      var s = subgroupAdd(sp);
      s = select(s, vec4<f32>(-3.0e38), vec4<u32>(j, j + 1u, j + 2u, j + 3u) > vec4<u32>(last));
      let mn = max(m, max(max(s.x, s.y), max(s.z, s.w)));
      let c = exp(m - mn);
      let e = exp(s - mn);
      l = l * c + (e.x + e.y) + (e.z + e.w);
{{ACC_UPDATE}}
      m = mn;
    }
{{STORE}}
  }
}
