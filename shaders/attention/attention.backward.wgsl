// Causal self-attention with GQA for training, over whole (packed) sequences, barrier-free
// (FlashAttention-2's math, one invocation per row instead of tiles; the entry points are
// generated in attention.backward.ts with the head dim unrolled into vec4 registers, and fwd / dq
// take HG q heads of one kv head per invocation so that each key's k, v loads serve all of them):
//   forward  main      one invocation per (token t, q head h): online softmax over keys
//                      j ∈ [segStart[t], t]; writes o[t, h, :] and lse[t, h] = m + log(l)
//   backward main_dq   one invocation per (t, h): D = Σ dO∘O (stored in dsum[t, h]), then for each
//                      key j: P = exp(scale·q·k_j − lse), dP = dO·v_j, dS = P·(dP − D),
//                      dq = scale·Σ_j dS·k_j
//            main_dkv  one invocation per (key j, kv head g): for each q head h of the group and
//                      each query i ≥ j of the same document: dv += P·dO_i, dk += dS·q_i
//                      (dk scaled by `scale`); written to dkv (dk rows, then dv rows at dvOff)
// segStart[t] = first token of t's document (packed CPT blocks: no attention across documents);
// documents are contiguous, so i ≥ j is in j's document while segStart[i] == segStart[j].
// The host prepends the params struct and `const HD` (the head dim).
//   q [T, qStride] head h at t*qStride + qCol + h*HD; k, v likewise with kvh = h / group
//   o, dO [T, nh*HD] dense; lse, dsum [T, nh]
@group(0) @binding(0) var<uniform> p: AttnTrainParams;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> segStart: array<u32>;

fn qi(t: u32, h: u32) -> u32 { return t * p.qStride + p.qCol + h * HD; }
fn ki(t: u32, g: u32) -> u32 { return t * p.kStride + p.kCol + g * HD; }
fn vi(t: u32, g: u32) -> u32 { return t * p.vStride + p.vCol + g * HD; }
