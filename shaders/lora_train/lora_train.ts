// LoRA training through merged weights (host side). For Y = X·Wᵀ + s·(X·Aᵀ)·Bᵀ (no lora_dropout)
// the forward is one product with W_eff = W + s·B·A, the input gradient dX = dY·W_eff, and the
// LoRA gradients follow from the merged weight's gradient dW = dYᵀ·X [N, K]:
//   dB = s·dW·Aᵀ [N, r]      dA = s·Bᵀ·dW [r, K]
// (dB = s·dYᵀ·H with H = X·Aᵀ, dA = dHᵀ·X with dH = s·dY·B: the same products, reassociated).
// Both kernels take a table of modules so that every LoRA module of a model is one dispatch.
// WGSL: lora_train.wgsl + lora_train.{merge,grads}.wgsl · reference: lora_train.ref.ts ·
// checks: lora_train.check.ts · finite differences: lora_train.test.ts.
//
// Layouts (row-major f32): a flat weight buffer holds each module's W[N, K] at wOff; a flat LoRA
// buffer holds its A [r, K] at aOff and B [N, r] at bOff; a gradient buffer has the LoRA layout.
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import { LorafleetError } from '../lib/errors.ts';

const err = (m: string) => new LorafleetError(m, 'internal');

export const LoraTrainParams = defineParams('LoraTrainParams', { r: 'u32', scale: 'f32', nEntries: 'u32' });
type F = (typeof LoraTrainParams.fields)[number][0];

const mk = (which: 'merge' | 'grads'): Kernel<F> => ({
  name: `lora_train_${which}`,
  code: LoraTrainParams.wgsl + WGSL.lora_train + WGSL[`lora_train.${which}`],
  params: LoraTrainParams,
});
const mergeKernel = mk('merge'), gradsKernel = mk('grads');

/** One LoRA module: its W[N, K] at wOff (flat weights), A [r, K] at aOff and B [N, r] at bOff (flat LoRA). */
export interface LoraTrainEntry {
  wOff: number;
  N: number;
  K: number;
  aOff: number;
  bOff: number;
}

/** The module table on the GPU (upload once; entries are fixed for a model + adapter layout). */
export interface LoraTable {
  buffer: GPUBuffer;
  entries: LoraTrainEntry[];
  r: number;
  /** floats the flat weight / LoRA buffers must hold */
  wFloats: number;
  loraFloats: number;
}

export function loraTable(rt: Runtime, entries: LoraTrainEntry[], r: number): LoraTable {
  if (!(Number.isInteger(r) && r > 0)) throw err(`loraTable: bad rank ${r}`);
  if (!entries.length) throw err('loraTable: no modules');
  let wFloats = 0, loraFloats = 0;
  const t = new Uint32Array(entries.length * 5);
  entries.forEach((e, i) => {
    for (const [k, v] of Object.entries(e)) if (!Number.isInteger(v) || v < 0) throw err(`loraTable: entry ${i} bad ${k}=${v}`);
    if (e.N === 0 || e.K === 0) throw err(`loraTable: entry ${i} is empty (${e.N}x${e.K})`);
    wFloats = Math.max(wFloats, e.wOff + e.N * e.K);
    loraFloats = Math.max(loraFloats, e.aOff + r * e.K, e.bOff + e.N * r);
    t.set([e.wOff, e.N, e.K, e.aOff, e.bOff], i * 5);
  });
  return { buffer: rt.upload(t, 'lora-train-table'), entries, r, wFloats, loraFloats };
}

function check(t: LoraTable, w: GPUBuffer[], lora: GPUBuffer[], what: string): void {
  for (const b of w) if (b.size < t.wFloats * 4) throw err(`${what}: weight buffer holds ${b.size / 4} floats, table needs ${t.wFloats}`);
  for (const b of lora) if (b.size < t.loraFloats * 4) throw err(`${what}: LoRA buffer holds ${b.size / 4} floats, table needs ${t.loraFloats}`);
}

const blocks = (a: number, b: number) => Math.ceil(a / 4) * Math.ceil(b / 4);

/** eff = base + s·B·A on every module's block (the rest of eff is left as it is). eff must not alias base. */
export function loraMerge(rt: Runtime, t: LoraTable, base: GPUBuffer, lora: GPUBuffer, eff: GPUBuffer, scale: number): void {
  check(t, [base, eff], [lora], 'loraMerge');
  if (eff === base) throw err('loraMerge: eff must not alias base');
  const x = Math.max(...t.entries.map((e) => blocks(e.N, e.K)));
  rt.dispatch(mergeKernel, {
    params: { r: t.r, scale, nEntries: t.entries.length },
    buffers: [t.buffer, base, lora, eff],
    workgroups: [Math.ceil(x / 64), t.entries.length, 1],
  });
}

/** grads (LoRA layout) = (dA = s·Bᵀ·dW, dB = s·dW·Aᵀ) for every module, from dW (weight layout). Overwrites. */
export function loraGradsFromDw(rt: Runtime, t: LoraTable, dw: GPUBuffer, lora: GPUBuffer, grads: GPUBuffer, scale: number): void {
  check(t, [dw], [lora, grads], 'loraGradsFromDw');
  if (grads === lora) throw err('loraGradsFromDw: grads must not alias the LoRA weights');
  const x = Math.max(...t.entries.map((e) => Math.max(blocks(e.N, t.r), blocks(t.r, e.K))));
  rt.dispatch(gradsKernel, {
    params: { r: t.r, scale, nEntries: t.entries.length },
    buffers: [t.buffer, dw, lora, grads],
    workgroups: [Math.ceil(x / 64), 2 * t.entries.length, 1],
  });
}
