// Checks for shaders/lora_train/lora_train.ts against lora_train.ref.ts (float64): a table of
// modules of awkward sizes (not multiples of the 4x4 block) at scattered offsets of flat buffers.
import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { loraTable, loraMerge, loraGradsFromDw, type LoraTrainEntry } from './lora_train.ts';
import { loraMergeRef, loraGradsFromDwRef } from './lora_train.ref.ts';

// [r, modules as [N, K]]
const cases: Array<[number, Array<[number, number]>]> = [
  [3, [[45, 27], [1, 5], [10, 7]]],
  [16, [[64, 64], [33, 64], [19, 172]]],
  [5, [[6, 13]]],
];

function layout(r: number, mods: Array<[number, number]>) {
  const entries: LoraTrainEntry[] = [];
  let w = 3, l = 7; // offsets with gaps: untouched floats between blocks
  for (const [N, K] of mods) {
    entries.push({ wOff: w, N, K, aOff: l, bOff: l + r * K + 2 });
    w += N * K + 5;
    l += r * K + 2 + N * r + 3;
  }
  return { entries, wFloats: w, loraFloats: l };
}

export const checks: KernelCheck[] = cases.map(([r, mods]) => ({
  name: `lora_train merge + grads from dW r=${r} modules ${mods.map(([n, k]) => `${n}x${k}`).join(',')}`,
  async run(rt) {
    const s = 1.3;
    const { entries, wFloats, loraFloats } = layout(r, mods);
    const base = randomArray(wFloats, 11 + r), lora = randomArray(loraFloats, 12 + r, 0.5), dw = randomArray(wFloats, 13 + r);
    const eff0 = randomArray(wFloats, 14 + r), g0 = randomArray(loraFloats, 15 + r);
    const t = loraTable(rt, entries, r);
    const gBase = rt.upload(base), gLora = rt.upload(lora), gDw = rt.upload(dw), gEff = rt.upload(eff0), gG = rt.upload(g0);
    loraMerge(rt, t, gBase, gLora, gEff, s);
    loraGradsFromDw(rt, t, gDw, gLora, gG, s);
    const eff = await rt.readF32(gEff, wFloats), g = await rt.readF32(gG, loraFloats);
    for (const b of [t.buffer, gBase, gLora, gDw, gEff, gG]) rt.destroy(b);
    // expected: eff0 / g0 everywhere except the modules' blocks
    const effRef = Float64Array.from(eff0), gRef = Float64Array.from(g0);
    for (const e of entries) {
      const sl = (v: Float32Array, o: number, n: number) => v.subarray(o, o + n);
      const A = sl(lora, e.aOff, r * e.K), B = sl(lora, e.bOff, e.N * r);
      effRef.set(loraMergeRef(sl(base, e.wOff, e.N * e.K), A, B, e.N, e.K, r, s), e.wOff);
      const { dA, dB } = loraGradsFromDwRef(sl(dw, e.wOff, e.N * e.K), A, B, e.N, e.K, r, s);
      gRef.set(dA, e.aOff);
      gRef.set(dB, e.bOff);
    }
    const em = result(eff, effRef, 1e-5), eg = result(g, gRef, 1e-5);
    return { maxRelErr: Math.max(em.maxRelErr, eg.maxRelErr), bound: 1e-5, detail: `merge ${em.maxRelErr.toExponential(1)} grads ${eg.maxRelErr.toExponential(1)}` };
  },
}));
