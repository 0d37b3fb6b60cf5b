// Training backward, dq entry point (see attention.backward.wgsl): bindings; `main` is generated
// by genDq() in attention.backward.ts — per (t, g, HG q heads): D = rowsum(dO∘O) (also written to
// dsum for the dkv pass), then over keys j: P = exp(scale·q·k_j − lse), dS = P·(dO·v_j − D),
// dq = scale·Σ_j dS·k_j.
@group(0) @binding(5) var<storage, read> o: array<f32>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;
@group(0) @binding(7) var<storage, read> dout: array<f32>;
@group(0) @binding(8) var<storage, read_write> dsum: array<f32>;
@group(0) @binding(9) var<storage, read_write> dq: array<f32>;
