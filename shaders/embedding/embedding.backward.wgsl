// Embedding backward, deterministic scatter-add without atomics: the host groups token indices by
// id (CSR: `order` = token indices sorted by (id, position), `groups[2u]` = (id, first index into
// order), groups[2U] = T), and one invocation per (group u, column k) sums its tokens' gradient
// rows in position order:  dEmb[id, k] += Σ_{t in group u} dx[t, k].
@group(0) @binding(0) var<uniform> p: EmbeddingBwdParams;
@group(0) @binding(1) var<storage, read> dx: array<f32>;
@group(0) @binding(2) var<storage, read> order: array<u32>;
@group(0) @binding(3) var<storage, read> groups: array<u32>;
@group(0) @binding(4) var<storage, read_write> demb: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= p.U * p.Hd) { return; }
  let u = idx / p.Hd;
  let k = idx % p.Hd;
  let id = groups[2u * u];
  let end = groups[2u * u + 2u + 1u];
  var s = 0.0;
  for (var i = groups[2u * u + 1u]; i < end; i++) { s += dx[order[i] * p.Hd + k]; }
  demb[id * p.Hd + k] += s;
}
