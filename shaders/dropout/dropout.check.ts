// Checks for shaders/dropout against dropout.ref.ts: the mask bit for bit, the scaling, an offset
// slice, accumulation, and the kept fraction close to 1 − p.
import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { dropout } from './dropout.ts';
import { dropoutRef, dropoutKeepRef } from './dropout.ref.ts';

const cases: Array<[number, number, number, number, boolean]> = [
  [1, 0.5, 7, 0, false],
  [4099, 0.1, 12345, 0, false],
  [1037, 0.3, 99, 513, true],
  [77, 0, 5, 0, false],
];

export const checks: KernelCheck[] = cases.map(([n, p, seed, offset, acc]) => ({
  name: `dropout n=${n} p=${p} seed=${seed}${offset ? ` offset=${offset}` : ''}${acc ? ' acc' : ''}`,
  async run(rt) {
    const x = randomArray(n, 800 + n, 2), o0 = randomArray(n, 801 + n);
    const bx = rt.upload(x), bo = rt.upload(o0);
    dropout(rt, bx, bo, n, p, seed, { offset, accumulate: acc });
    const out = await rt.readF32(bo, n);
    rt.destroy(bx); rt.destroy(bo);
    const ref = dropoutRef(x, p, seed, offset).map((v, i) => v + (acc ? o0[i] : 0));
    // the mask must agree exactly: a dropped element is exactly o0 (or 0)
    const keep = dropoutKeepRef(n, p, seed, offset);
    let maskOk = true;
    for (let i = 0; i < n; i++) if (!keep[i] && out[i] !== (acc ? o0[i] : 0)) maskOk = false;
    const kept = keep.reduce((a, b) => a + b, 0) / n;
    const fracOk = n < 1000 || Math.abs(kept - (1 - p)) < 4 * Math.sqrt((p * (1 - p)) / n) + 1e-9;
    const r = result(out, ref, 1e-6);
    return maskOk && fracOk ? { ...r, detail: `kept ${kept.toFixed(4)}` } : { ...r, maxRelErr: Infinity, detail: `mask ${maskOk} kept fraction ${kept}` };
  },
}));
