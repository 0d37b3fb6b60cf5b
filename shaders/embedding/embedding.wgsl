// Embedding gather: out[t, k] = table[ids[t], k] for a GpuWeight table of any format, one dispatch
// per row part. An invocation handles one stored u32 word of a row (f32: 1 element, packed f16:
// 2, int8 q8: 4). Ids outside this part are skipped; ids >= N (invalid) produce zeros, written
// by the dispatch of part 0 (p.first == 1).
@group(0) @binding(0) var<uniform> p: EmbeddingParams;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> data: array<u32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<storage, read> scales: array<f32>;

// Returns the part-local row of token t's id, or -1 when this dispatch does nothing for it
// (-2: invalid id, zero-fill).
fn emb_row(t: u32) -> i32 {
  let id = ids[t];
  if (id >= p.n) { return select(-1, -2, p.first == 1u); }
  if (id < p.row_start || id >= p.row_start + p.rows) { return -1; }
  return i32(id - p.row_start);
}

fn emb_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * 64u; }

@compute @workgroup_size(64)
fn main_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = emb_index(gid, nwg);
  if (idx >= p.tokens * p.words) { return; }
  let t = idx / p.words;
  let j = idx % p.words;
  let r = emb_row(t);
  if (r == -1) { return; }
  if (r == -2) { o[t * p.k + j] = 0.0; return; }
  o[t * p.k + j] = bitcast<f32>(data[u32(r) * p.words + j]);
}

@compute @workgroup_size(64)
fn main_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = emb_index(gid, nwg);
  if (idx >= p.tokens * p.words) { return; }
  let t = idx / p.words;
  let j = idx % p.words;
  let r = emb_row(t);
  if (r == -1) { return; }
  var v = vec2<f32>(0.0);
  if (r >= 0) { v = unpack2x16float(data[u32(r) * p.words + j]); }
  let k0 = 2u * j;
  o[t * p.k + k0] = v.x;
  if (k0 + 1u < p.k) { o[t * p.k + k0 + 1u] = v.y; }
}

@compute @workgroup_size(64)
fn main_q8(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = emb_index(gid, nwg);
  if (idx >= p.tokens * p.words) { return; }
  let t = idx / p.words;
  let j = idx % p.words;
  let r = emb_row(t);
  if (r == -1) { return; }
  var w = 0u;
  var s = 0.0;
  if (r >= 0) {
    w = data[u32(r) * p.words + j];
    s = scales[u32(r) * (p.words / 8u) + j / 8u]; // 32-element groups = 8 words
  }
  for (var b = 0u; b < 4u; b++) {
    let k = 4u * j + b;
    if (k < p.k) { o[t * p.k + k] = f32(bitcast<i32>(w << (24u - 8u * b)) >> 24u) * s; }
  }
}
