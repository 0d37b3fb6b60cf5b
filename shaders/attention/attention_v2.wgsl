// Paged causal attention v2 (no subgroups needed): one invocation per (token, G q heads sharing
// a kv head), keys 4 at a time, the head dimension fully unrolled into registers (no private
// arrays). Each K/V row is loaded once for the G heads (loads dominate on SwiftShader).
// This file is a template: the host (shaders/attention.ts) expands the {{...}} markers for the
// head dim (HDV lanes of type V) and G, and prepends `alias V`, `fn vdot`, the constants HDV,
// BS (block size), KVH (kv heads), G and the params.
// Per step of 4 keys and head: scores s (vec4), new max mn, one rescale exp(m - mn) of the running
// sum / accumulators, a vec4 exp for the 4 weights. Keys past pos are clamped for loading
// (always valid, finite rows) and masked to weight 0.
// Bindings and layouts as attention.wgsl.

@group(0) @binding(0) var<uniform> p: AttnParams;
@group(0) @binding(1) var<storage, read> qkv: array<V>;
@group(0) @binding(2) var<storage, read> kc: array<V>;
@group(0) @binding(3) var<storage, read> vc: array<V>;
@group(0) @binding(4) var<storage, read> bmeta: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<V>;

const HEAD_STRIDE: u32 = BS * HDV;
const BLOCK_STRIDE: u32 = KVH * BS * HDV;

fn rowBase(tableStart: u32, j: u32, hoff: u32) -> u32 {
  return bmeta[tableStart + j / BS] * BLOCK_STRIDE + hoff + (j % BS) * HDV;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  let subPerKv = (p.group + G - 1u) / G; // work items per kv head
  let groupsPerToken = p.numKvHeads * subPerKv;
  if (i >= p.numTokens * groupsPerToken) { return; }
  let t = i / groupsPerToken;
  let r = i - t * groupsPerToken;
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
  for (var j = start; j <= pos; j += 4u) {
    let b0 = rowBase(tableStart, j, hoff);
    let b1 = rowBase(tableStart, min(j + 1u, pos), hoff);
    let b2 = rowBase(tableStart, min(j + 2u, pos), hoff);
    let b3 = rowBase(tableStart, min(j + 3u, pos), hoff);
    let past = vec4<u32>(j, j + 1u, j + 2u, j + 3u) > vec4<u32>(pos);
{{STEP}}
  }
  let oo = t * p.outStride + p.outCol;
{{STORE}}
}
