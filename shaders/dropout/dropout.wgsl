// Inverted dropout with a counter-based mask (PEFT's lora_dropout on the LoRA branch's input),
// so the backward regenerates the forward's mask from (seed, index) instead of storing it:
//   keep(i) = pcg(pcg(seed) + offset + i) >= threshold,   threshold = round(p · 2^32)
//   main:     out[i] (+)= x[i] · keep(i) / (1 − p)        (forward; p = 0 copies)
//   The backward is the same map applied to the gradient (dx = dy · keep / (1 − p)), so one entry
//   point serves both; accumulate for dX += dropout⁻ᵀ(dH·A).
// pcg: the PCG-RXS-M-XS 32-bit output permutation (Jarzynski & Olano, "Hash Functions for GPU
// Rendering", 2020); the CPU twin is dropoutKeepRef() in dropout.ref.ts (bit-identical).
@group(0) @binding(0) var<uniform> p: DropoutParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;

fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) { return; }
  let keep = pcg(pcg(p.seed) + p.offset + i) >= p.threshold;
  var v = select(0.0, x[i] * p.scale, keep);
  if (p.accumulate != 0u) { v += o[i]; }
  o[i] = v;
}
