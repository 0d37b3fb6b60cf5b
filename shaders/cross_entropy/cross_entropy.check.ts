// Checks for shaders/cross_entropy against cross_entropy.ref.ts (float64): T = 1, row chunks with a
// remainder, ignored labels, lm_head split into weight parts, accumulate into dh.
import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { lmHeadCrossEntropy, meanCoefficients } from './cross_entropy.ts';
import { lmHeadCrossEntropyRef } from './cross_entropy.ref.ts';
import { uploadWeight, destroyWeight } from '../matmul/weights.ts';

type Mode = { mode?: 'row' | 'workgroup'; variant?: 'plain' | 'subgroups' };
const cases = [
  { T: 1, V: 67, Hd: 29, rowChunk: undefined as number | undefined, parts: false, mean: true, m: { mode: 'row' } as Mode },
  { T: 37, V: 67, Hd: 29, rowChunk: 8, parts: true, mean: false, m: { mode: 'row' } as Mode },
  { T: 13, V: 1037, Hd: 16, rowChunk: 5, parts: false, mean: true, m: { mode: 'row' } as Mode },
  { T: 13, V: 1037, Hd: 16, rowChunk: 5, parts: false, mean: false, m: { mode: 'workgroup', variant: 'plain' } as Mode },
  { T: 6, V: 67, Hd: 29, rowChunk: 4, parts: true, mean: true, m: { mode: 'workgroup', variant: 'subgroups' } as Mode },
];

export const checks: KernelCheck[] = cases.map((c) => ({
  name: `lm_head cross-entropy T=${c.T} V=${c.V} Hd=${c.Hd}${c.rowChunk ? ` chunk=${c.rowChunk}` : ''}${c.parts ? ' parts' : ''}${c.mean ? ' mean' : ' coef'} ${c.m.mode}${c.m.variant ? ' ' + c.m.variant : ''}`,
  async run(rt) {
    if (c.m.variant === 'subgroups' && !rt.info.features.subgroups) return { maxRelErr: 0, bound: 1, detail: 'skipped: no subgroups' };
    const { T, V, Hd } = c;
    const h = randomArray(T * Hd, 500 + T, 1), w = randomArray(V * Hd, 501 + V, 0.8);
    const u = randomArray(T, 502 + T);
    const labels = Int32Array.from(u, (x, t) => (t % 5 === 3 ? -100 : Math.floor(((x + 1) / 2) * V) % V));
    const coef = c.mean ? meanCoefficients(labels) : randomArray(T, 503, 2);
    const dh0 = randomArray(T * Hd, 504);
    const gw = uploadWeight(rt, 'lm_head', w, V, Hd, 'f32', { maxPartBytes: c.parts ? 20 * Hd * 4 : undefined });
    const gh = rt.upload(h), gl = rt.upload(labels), gc = rt.upload(coef), glse = rt.createBuffer(T * 4), glp = rt.createBuffer(T * 4), gdh = rt.upload(dh0);
    const accumulate = !c.mean;
    lmHeadCrossEntropy(rt, { h: gh, w: gw, labels: gl, T, lse: glse, logp: glp, coef: gc, dh: gdh, accumulateDh: accumulate, rowChunk: c.rowChunk, ...c.m });
    const lse = await rt.readF32(glse, T), logp = await rt.readF32(glp, T), dh = await rt.readF32(gdh, T * Hd);
    // forward only (no coef / dh) must give the same lse and logp
    const glp2 = rt.createBuffer(T * 4);
    lmHeadCrossEntropy(rt, { h: gh, w: gw, labels: gl, T, lse: glse, logp: glp2, rowChunk: c.rowChunk, ...c.m });
    const logp2 = await rt.readF32(glp2, T);
    for (const b of [gh, gl, gc, glse, glp, gdh, glp2]) rt.destroy(b);
    destroyWeight(rt, gw);
    const ref = lmHeadCrossEntropyRef(h, w, labels, T, V, Hd, coef);
    const errs: Array<[string, number]> = [
      ['lse', result(lse, ref.lse, 1e-4).maxRelErr],
      ['logp', result(logp, ref.logp, 1e-4).maxRelErr],
      ['logp fwd-only', result(logp2, ref.logp, 1e-4).maxRelErr],
      ['dh', result(dh, accumulate ? ref.dh.map((v, i) => v + dh0[i]) : ref.dh, 1e-4).maxRelErr],
    ];
    return { maxRelErr: Math.max(...errs.map((e) => e[1])), bound: 1e-4, detail: errs.map(([n, e]) => `${n} ${e.toExponential(1)}`).join(' ') };
  },
}));
