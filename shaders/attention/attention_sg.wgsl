// Paged causal attention, subgroup variant ('sg'): one subgroup per (token, G q heads sharing a
// kv head; G = 1 for 'sg', more for 'sgg', so K/V rows are loaded once for G heads); lane l owns
// the head elements l, l+S, l+2S, ... (S = subgroup size), so the lanes of a subgroup read
// consecutive floats of every q/K/V row (one vector load on SIMD CPUs, coalesced on GPUs).
// Scores of 4 keys at a time: per-lane partial dots, one subgroupAdd(vec4) per head. The online
// softmax state (m, l per head) is subgroup-uniform; each lane rescales and accumulates its own
// elements. Per step: new max mn, one rescale exp(m - mn), a vec4 exp for the 4 weights; keys
// past `last` are clamped for loading (valid, finite rows) and masked to weight 0.
// Work items are walked in a subgroup-uniform loop, so any subgroup size >= 4 (WebGPU's minimum)
// is correct. Assumes subgroups are formed from consecutive local_invocation_index values of the
// 1-D workgroup (subgroup = li / S), as on every current backend (shaders/reduce_subgroups.wgsl
// relies on the same).
//
// Split-context mode (flash-decoding, when the host defines SPLIT = true): a work item is
// (token, head group, chunk c) and covers keys [start + c*p.chunk, start + (c+1)*p.chunk) ∩ [start, pos];
// instead of the normalised output it writes the partial (m, l, acc[HD]) to `part` (binding 5) at
// ((t*numHeads + h)*p.numChunks + c)*(HD + 2); attention_combine.wgsl merges the chunks.
//
// Template: the host (shaders/attention.ts) expands the {{...}} markers for NC = ceil(HD / MINS)
// elements per lane and G heads, and prepends `enable subgroups;`, the constants HD (head dim,
// floats), BS (block size), KVH (kv heads), G, WG, SPLIT and the params. Bindings and layouts as attention.wgsl,
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
  let subPerKv = (p.group + G - 1u) / G; // work items per kv head
  let groupsPerToken = p.numKvHeads * subPerKv;
  let items = p.numTokens * groupsPerToken * p.numChunks;
{{LANE_ELEMS}}
  for (var item = firstItem; item < items; item += itemStride) {
    let tg = item / p.numChunks;
    let chunk = item - tg * p.numChunks;
    let t = tg / groupsPerToken;
    let r = tg - t * groupsPerToken;
    let kvh = r / subPerKv;
    // q heads h0 .. h0+G-1 of kv head kvh; those >= hEnd (G not dividing the group) are computed
    // on a clamped head and not stored
    let h0 = kvh * p.group + (r - kvh * subPerKv) * G;
    let hEnd = (kvh + 1u) * p.group;
    let hoff = kvh * HEAD_STRIDE;
    let rec = p.tokenBase + 4u * t;
    let tableStart = bmeta[rec];
    let pos = bmeta[rec + 1u];
    let qo = t * p.qStride + p.qCol;
{{Q_LOAD}}
{{STATE_DECL}}
    var start = 0u;
    if (p.window > 0u && pos + 1u > p.window) { start = pos + 1u - p.window; }
    var last = pos;
    if (SPLIT) {
      start += chunk * p.chunk;
      if (start > pos) { continue; } // the token's context has fewer chunks
      last = min(pos, start + p.chunk - 1u);
    }
    for (var j = start; j <= last; j += 4u) {
      let b0 = rowBase(tableStart, j, hoff);
      let b1 = rowBase(tableStart, min(j + 1u, last), hoff);
      let b2 = rowBase(tableStart, min(j + 2u, last), hoff);
      let b3 = rowBase(tableStart, min(j + 3u, last), hoff);
      let past = vec4<u32>(j, j + 1u, j + 2u, j + 3u) > vec4<u32>(last);
{{STEP}}
    }
{{STORE}}
  }
}
