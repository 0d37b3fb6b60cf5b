// Training forward entry point (see attention.backward.wgsl): bindings; `main` is generated for
// the head dim by genFwd() in attention.backward.ts — per (token t, kv head g, HG q heads of g):
// online softmax over keys j ∈ [segStart[t], t], o[t, h, :] and lse[t, h] = m + log(l).
@group(0) @binding(5) var<storage, read_write> o: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
