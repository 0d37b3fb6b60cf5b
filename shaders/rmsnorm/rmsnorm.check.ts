import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { rmsnorm, type RmsNormOptions } from './rmsnorm.ts';
import { rmsnormRef } from './rmsnorm.ref.ts';

const cases: Array<[number, number, RmsNormOptions]> = [
  [1, 8, {}],
  [3, 63, { mode: 'row' }],
  [17, 172, {}],
  [3, 63, { mode: 'workgroup', variant: 'plain' }],
  [17, 172, { mode: 'workgroup', variant: 'subgroups' }],
  [1, 576, { variant: 'plain' }],
  [3, 576, { variant: 'subgroups' }],
  [3, 4099, { variant: 'plain' }],
  [1, 4099, { variant: 'subgroups' }],
  [2, 4099, { mode: 'row' }],
];

export const checks: KernelCheck[] = cases.map(([rows, dim, opts]) => ({
  name: `rmsnorm rows=${rows} dim=${dim} ${opts.mode ?? 'auto'} ${opts.variant ?? 'default'}`,
  async run(rt) {
    if (opts.variant === 'subgroups' && !rt.info.features.subgroups) return { maxRelErr: 0, bound: 1, detail: 'skipped: no subgroups' };
    const x = randomArray(rows * dim, 11 + dim, 3);
    // Shift one row's scale so rows differ in magnitude.
    for (let i = 0; i < dim; i++) x[i] *= 0.01;
    const w = randomArray(dim, 12 + dim, 2);
    const eps = 1e-5;
    const gx = rt.upload(x), gw = rt.upload(w), go = rt.createBuffer(rows * dim * 4);
    rmsnorm(rt, gx, gw, go, rows, dim, eps, opts);
    const out = await rt.readF32(go, rows * dim);
    rt.destroy(gx); rt.destroy(gw); rt.destroy(go);
    const ref = rmsnormRef(x, w, rows, dim, eps);
    // Per-row relative error (rows have different scales).
    let worst = 0;
    for (let r = 0; r < rows; r++) {
      let md = 0, mr = 0;
      for (let i = 0; i < dim; i++) {
        md = Math.max(md, Math.abs(out[r * dim + i] - ref[r * dim + i]) || (Number.isNaN(out[r * dim + i]) ? Infinity : 0));
        mr = Math.max(mr, Math.abs(ref[r * dim + i]));
      }
      worst = Math.max(worst, md / mr);
    }
    const whole = result(out, ref, 1e-5);
    return { ...whole, maxRelErr: Math.max(worst, whole.maxRelErr) };
  },
}));
