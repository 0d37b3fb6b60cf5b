import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { softmax, type SoftmaxOptions } from './softmax.ts';
import { softmaxRef } from './softmax.ref.ts';

const cases: Array<[number, number, SoftmaxOptions]> = [
  [1, 8, {}],
  [3, 63, { mode: 'row' }],
  [17, 172, { causal: { queryOffset: 155 } }],
  [3, 63, { mode: 'workgroup', variant: 'plain', causal: { queryOffset: 2 } }],
  [17, 576, { variant: 'subgroups' }],
  [1, 4099, { variant: 'plain', causal: { queryOffset: 4000 } }],
  [3, 4099, { variant: 'subgroups' }],
  // 4 heads × 5 queries stacked, prefix of 3 cached positions: row r is query r % 5.
  [20, 8, { causal: { queryOffset: 3, queryRows: 5 } }],
  [20, 300, { mode: 'workgroup', causal: { queryOffset: 3, queryRows: 5 } }],
  [6, 300, { mode: 'row', causal: { queryOffset: 0, queryRows: 3 } }],
];

export const checks: KernelCheck[] = cases.map(([rows, cols, opts]) => ({
  name: `softmax ${rows}x${cols} ${opts.mode ?? 'auto'} ${opts.variant ?? 'default'}${opts.causal ? ` causal+${opts.causal.queryOffset}/${opts.causal.queryRows ?? rows}` : ''}`,
  async run(rt) {
    if (opts.variant === 'subgroups' && !rt.info.features.subgroups) return { maxRelErr: 0, bound: 1, detail: 'skipped: no subgroups' };
    const x = randomArray(rows * cols, 51 + cols, 8);
    for (let c = 0; c < cols; c++) x[c] += 100; // row 0 overflows exp() without the max subtraction
    const g = rt.upload(x);
    softmax(rt, g, rows, cols, opts);
    const out = await rt.readF32(g, rows * cols);
    rt.destroy(g);
    const ref = softmaxRef(x, rows, cols, opts.causal);
    // Per-row relative error (a peaked row must not hide a flat one), then the whole tensor.
    let worst = 0;
    for (let r = 0; r < rows; r++) {
      const a = result(out.subarray(r * cols, (r + 1) * cols), ref.subarray(r * cols, (r + 1) * cols), 1e-5);
      let mr = 0;
      for (let c = 0; c < cols; c++) mr = Math.max(mr, ref[r * cols + c]);
      if (mr === 0) { for (let c = 0; c < cols; c++) if (out[r * cols + c] !== 0) worst = Infinity; }
      else worst = Math.max(worst, a.maxRelErr);
    }
    const whole = result(out, ref, 1e-5);
    return { ...whole, maxRelErr: Math.max(whole.maxRelErr, worst) };
  },
}));
