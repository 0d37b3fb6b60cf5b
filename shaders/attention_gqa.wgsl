// Paged causal attention, GQA-shared variant: one invocation per (token, kv head, group of G q heads).
// Each K and V row is loaded once and used by G query heads (G divides numHeads / numKvHeads).
// Same bindings, params and layouts as attention.wgsl; the host prepends `alias V`, `const W`,
// `fn vdot`, `const HDV`, `const G` and the params struct.

@group(0) @binding(0) var<uniform> p: AttnParams;
@group(0) @binding(1) var<storage, read> qkv: array<V>;
@group(0) @binding(2) var<storage, read> kc: array<V>;
@group(0) @binding(3) var<storage, read> vc: array<V>;
@group(0) @binding(4) var<storage, read> bmeta: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<V>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  let chunks = p.numHeads / G; // q-head chunks per token
  if (i >= p.numTokens * chunks) { return; }
  let t = i / chunks;
  let h0 = (i - t * chunks) * G;
  let kvh = h0 / p.group;
  let rec = p.tokenBase + 4u * t;
  let tableStart = bmeta[rec];
  let pos = bmeta[rec + 1u];

  var q: array<V, G * HDV>;
  var acc: array<V, G * HDV>;
  var m: array<f32, G>;
  var l: array<f32, G>;
  let qo = t * p.qStride + p.qCol + h0 * HDV;
  for (var d = 0u; d < G * HDV; d++) {
    q[d] = qkv[qo + d] * p.scale;
    acc[d] = V(0.0);
  }
  for (var g = 0u; g < G; g++) { m[g] = -3.0e38; l[g] = 0.0; }

  var start = 0u;
  if (p.window > 0u && pos + 1u > p.window) { start = pos + 1u - p.window; }
  let headStride = p.blockSize * HDV;
  let blockStride = p.numKvHeads * headStride;
  var j = start;
  loop {
    if (j > pos) { break; }
    let bi = j / p.blockSize;
    let block = bmeta[tableStart + bi];
    let end = min(pos + 1u, (bi + 1u) * p.blockSize);
    var base = block * blockStride + kvh * headStride + (j - bi * p.blockSize) * HDV;
    for (; j < end; j++) {
      var s: array<f32, G>;
      for (var g = 0u; g < G; g++) { s[g] = 0.0; }
      for (var d = 0u; d < HDV; d++) {
        let kd = kc[base + d];
        for (var g = 0u; g < G; g++) { s[g] += vdot(q[g * HDV + d], kd); }
      }
      var e: array<f32, G>;
      for (var g = 0u; g < G; g++) {
        if (s[g] > m[g]) {
          let c = exp(m[g] - s[g]);
          l[g] *= c;
          for (var d = 0u; d < HDV; d++) { acc[g * HDV + d] *= c; }
          m[g] = s[g];
        }
        e[g] = exp(s[g] - m[g]);
        l[g] += e[g];
      }
      for (var d = 0u; d < HDV; d++) {
        let vd = vc[base + d];
        for (var g = 0u; g < G; g++) { acc[g * HDV + d] += e[g] * vd; }
      }
      base += HDV;
    }
  }

  let oo = t * p.outStride + p.outCol + h0 * HDV;
  for (var g = 0u; g < G; g++) {
    let inv = 1.0 / l[g];
    for (var d = 0u; d < HDV; d++) { out[oo + g * HDV + d] = acc[g * HDV + d] * inv; }
  }
}
