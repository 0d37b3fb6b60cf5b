// Split-context attention, pass 2: merges the per-chunk partials (m, l, acc[HD]) written by the
// split mode of attention_sg.wgsl. One invocation per (token, head, element e):
//   M = max_c m_c,  L = sum_c l_c exp(m_c - M),  out = sum_c acc_c[e] exp(m_c - M) / L
// over the chunks c that cover the token's context (the others were not written).
// The host prepends the constant HD and the params struct.

@group(0) @binding(0) var<uniform> p: AttnParams;
@group(0) @binding(1) var<storage, read> bmeta: array<u32>;
@group(0) @binding(2) var<storage, read> part: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.numTokens * p.numHeads * HD) { return; }
  let th = i / HD;
  let e = i - th * HD;
  let t = th / p.numHeads;
  let h = th - t * p.numHeads;
  let pos = bmeta[p.tokenBase + 4u * t + 1u];
  var start = 0u;
  if (p.window > 0u && pos + 1u > p.window) { start = pos + 1u - p.window; }
  let n = (pos - start) / p.chunk + 1u; // chunks holding at least one key
  let base = th * p.numChunks * (HD + 2u);
  var mx = -3.0e38;
  for (var c = 0u; c < n; c++) { mx = max(mx, part[base + c * (HD + 2u)]); }
  var L = 0.0;
  var acc = 0.0;
  for (var c = 0u; c < n; c++) {
    let o = base + c * (HD + 2u);
    let w = exp(part[o] - mx);
    L += part[o + 1u] * w;
    acc += part[o + 2u + e] * w;
  }
  out[t * p.outStride + p.outCol + h * HD + e] = acc / L;
}
