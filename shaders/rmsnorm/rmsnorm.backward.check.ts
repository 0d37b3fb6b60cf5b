// Checks for shaders/rmsnorm/rmsnorm.backward.ts against rmsnormBackwardRef (float64).
import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { rmsnormBackward } from './rmsnorm.backward.ts';
import { rmsnormBackwardRef } from './rmsnorm.ref.ts';

const cases: Array<[number, number, boolean]> = [[1, 8, false], [5, 63, true], [17, 172, true]];

export const checks: KernelCheck[] = cases.map(([rows, dim, acc]) => ({
  name: `rmsnorm backward rows=${rows} dim=${dim}${acc ? ' acc+dw' : ''}`,
  async run(rt) {
    const x = randomArray(rows * dim, 31 + dim, 3);
    for (let i = 0; i < dim; i++) x[i] *= 0.01;
    const w = randomArray(dim, 32 + dim, 2), dy = randomArray(rows * dim, 33 + dim), dx0 = randomArray(rows * dim, 34 + dim), dw0 = randomArray(dim, 35);
    const eps = 1e-5;
    const gx = rt.upload(x), gw = rt.upload(w), gdy = rt.upload(dy), gdx = rt.upload(dx0), gdw = rt.upload(dw0);
    rmsnormBackward(rt, { x: gx, w: gw, dy: gdy, dx: gdx, rows, dim, eps, accumulate: acc, dw: acc ? gdw : undefined, accumulateDw: acc });
    const dx = await rt.readF32(gdx, rows * dim), dw = await rt.readF32(gdw, dim);
    for (const b of [gx, gw, gdy, gdx, gdw]) rt.destroy(b);
    const ref = rmsnormBackwardRef(x, w, dy, rows, dim, eps);
    // Per-row relative error (rows differ in scale: the first is 100x smaller, its dx 100x larger).
    let worst = 0;
    for (let r = 0; r < rows; r++) {
      const o = dx.subarray(r * dim, (r + 1) * dim);
      const e = ref.dx.subarray(r * dim, (r + 1) * dim).map((v, i) => v + (acc ? dx0[r * dim + i] : 0));
      worst = Math.max(worst, result(o, e, 1e-4).maxRelErr);
    }
    const dwErr = acc ? result(dw, ref.dw.map((v, i) => v + dw0[i]), 1e-4).maxRelErr : 0;
    return { maxRelErr: Math.max(worst, dwErr), bound: 1e-4, detail: `dx ${worst.toExponential(1)} dw ${dwErr.toExponential(1)}` };
  },
}));
