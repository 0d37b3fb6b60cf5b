// Paged causal attention with GQA over a mixed batch (prefill segments + decode tokens).
// Barrier-free: one invocation per (token, q head) walks the token's context [start, pos]
// through its sequence's block table with an online (flash-style) softmax in f32.
//
// The host prepends: `alias V` (f32 or vec4<f32>), `const W`, `fn vdot`, `const HDV` (= headDim / W)
// and the params struct. All strides/columns in params are in units of V.
//
//   qkv : [T, qStride]  q of token t, head h at t*qStride + qCol + h*HDV
//   kc/vc: [numBlocks, numKvHeads, blockSize, HDV]
//   bmeta: u32 words; token t record at tokenBase + 4t: (tableStart, pos, slot, seqIndex);
//         block i of the token's sequence is bmeta[tableStart + i]
//   out : [T, outStride]  token t, head h at t*outStride + outCol + h*HDV

@group(0) @binding(0) var<uniform> p: AttnParams;
@group(0) @binding(1) var<storage, read> qkv: array<V>;
@group(0) @binding(2) var<storage, read> kc: array<V>;
@group(0) @binding(3) var<storage, read> vc: array<V>;
@group(0) @binding(4) var<storage, read> bmeta: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<V>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.numTokens * p.numHeads) { return; }
  let t = i / p.numHeads;
  let h = i - t * p.numHeads;
  let kvh = h / p.group;
  let rec = p.tokenBase + 4u * t;
  let tableStart = bmeta[rec];
  let pos = bmeta[rec + 1u];

  var q: array<V, HDV>;
  var acc: array<V, HDV>;
  let qo = t * p.qStride + p.qCol + h * HDV;
  for (var d = 0u; d < HDV; d++) {
    q[d] = qkv[qo + d] * p.scale;
    acc[d] = V(0.0);
  }

  var start = 0u;
  if (p.window > 0u && pos + 1u > p.window) { start = pos + 1u - p.window; }
  let headStride = p.blockSize * HDV;
  let blockStride = p.numKvHeads * headStride;
  var m = -3.0e38;
  var l = 0.0;
  var j = start;
  loop {
    if (j > pos) { break; }
    let bi = j / p.blockSize;
    let block = bmeta[tableStart + bi];
    let end = min(pos + 1u, (bi + 1u) * p.blockSize);
    var base = block * blockStride + kvh * headStride + (j - bi * p.blockSize) * HDV;
    for (; j < end; j++) {
      var s = 0.0;
      for (var d = 0u; d < HDV; d++) { s += vdot(q[d], kc[base + d]); }
      if (s > m) {
        // new running max: rescale what has been accumulated so far
        let c = exp(m - s);
        l *= c;
        for (var d = 0u; d < HDV; d++) { acc[d] *= c; }
        m = s;
      }
      let e = exp(s - m);
      l += e;
      for (var d = 0u; d < HDV; d++) { acc[d] += e * vc[base + d]; }
      base += HDV;
    }
  }

  let inv = 1.0 / l;
  let oo = t * p.outStride + p.outCol + h * HDV;
  for (var d = 0u; d < HDV; d++) { out[oo + d] = acc[d] * inv; }
}
