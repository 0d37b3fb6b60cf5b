// Checks for shaders/embedding/embedding.backward.ts against embeddingBackwardRef (float64):
// repeated ids (including the first and last rows), T = 1, accumulation into existing gradients.
import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { embeddingBackward } from './embedding.backward.ts';
import { embeddingBackwardRef } from './embedding.ref.ts';

const cases: Array<[number[], number, number]> = [
  [[5], 7, 3],
  [[0, 12, 3, 12, 12, 0, 7, 3, 12, 1, 0, 12, 12], 13, 29],
];

export const checks: KernelCheck[] = cases.map(([ids, V, Hd]) => ({
  name: `embedding backward T=${ids.length} V=${V} Hd=${Hd}`,
  async run(rt) {
    const T = ids.length;
    const dx = randomArray(T * Hd, 600 + T), d0 = randomArray(V * Hd, 601);
    const bdx = rt.upload(dx), bd = rt.upload(d0);
    embeddingBackward(rt, ids, bdx, bd, V, Hd);
    const out = await rt.readF32(bd, V * Hd);
    rt.destroy(bdx); rt.destroy(bd);
    const ref = embeddingBackwardRef(ids, dx, V, Hd).map((v, i) => v + d0[i]);
    return result(out, ref, 1e-5);
  },
}));
