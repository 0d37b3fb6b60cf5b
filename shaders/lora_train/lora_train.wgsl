// LoRA training through merged weights (see lora_train.ts): shared part of the two entry points.
//   table [nEntries, 5] u32: per LoRA module (wOff, N, K, aOff, bOff) — its W[N, K] block at
//   wOff of a flat weight buffer (row-major), its A [r, K] at aOff and B [N, r] at bOff of the
//   flat LoRA buffer (the gradient buffer has the same layout).
// Both kernels are barrier-free: one invocation per 4x4 output block, workgroup y = entry.
@group(0) @binding(0) var<uniform> p: LoraTrainParams;
@group(0) @binding(1) var<storage, read> table: array<u32>;

struct Entry { wOff: u32, N: u32, K: u32, aOff: u32, bOff: u32 }

fn entry(e: u32) -> Entry {
  let o = e * 5u;
  return Entry(table[o], table[o + 1u], table[o + 2u], table[o + 3u], table[o + 4u]);
}
