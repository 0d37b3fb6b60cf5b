import type { KernelCheck } from '../lib/check.ts';
import { randomArray } from '../lib/check.ts';
import { topk, type TopkOptions } from './topk.ts';
import { topkRef } from './topk.ref.ts';

interface Case { rows: number; vocab: number; k: number; o: TopkOptions & { pad?: number; ties?: boolean } }
const cases: Case[] = [
  { rows: 1, vocab: 8, k: 8, o: {} }, // k == vocab: a full sort
  { rows: 3, vocab: 63, k: 5, o: { variant: 'plain', ties: true } },
  { rows: 17, vocab: 512, k: 7, o: { variant: 'subgroups', ties: true, pad: 3 } },
  { rows: 3, vocab: 4099, k: 40, o: { variant: 'plain', ties: true } },
  { rows: 1, vocab: 151936, k: 20, o: { ties: true } },
  { rows: 2, vocab: 5, k: 9, o: {} }, // k > vocab: padding
];

export const checks: KernelCheck[] = cases.map(({ rows, vocab, k, o }) => ({
  name: `topk rows=${rows} vocab=${vocab} k=${k} ${o.variant ?? 'default'}${o.ties ? ' ties' : ''}${o.pad ? ' stride' : ''}`,
  async run(rt) {
    if (o.variant === 'subgroups' && !rt.info.features.subgroups) return { maxRelErr: 0, bound: 1, detail: 'skipped: no subgroups' };
    const stride = vocab + (o.pad ?? 0);
    const x = randomArray(rows * stride, 61 + vocab, 10);
    if (o.ties) {
      for (let i = 0; i < x.length; i++) x[i] = Math.round(x[i] * 4) / 4; // many equal values
      for (let r = 0; r < rows; r++) {
        const b = r * stride;
        const a = (r * 29 + 1) % Math.max(1, vocab - 257);
        for (const d of [256, 128, 64, 0]) if (a + d < vocab) x[b + a + d] = 20; // equal maxima, same invocation
        x[b + vocab - 1] = 19;
        x[b + (r % vocab)] = NaN;
      }
    }
    const gx = rt.upload(x), gv = rt.createBuffer(rows * k * 4), gi = rt.createBuffer(rows * k * 4);
    topk(rt, gx, rows, vocab, k, gv, gi, { rowStride: o.pad ? stride : undefined, variant: o.variant });
    const vals = await rt.readF32(gv, rows * k), ids = await rt.readU32(gi, rows * k);
    rt.destroy(gx); rt.destroy(gv); rt.destroy(gi);
    const ref = topkRef(x, rows, vocab, k, stride);
    let bad = 0, first = '';
    for (let j = 0; j < rows * k; j++) {
      if (ids[j] !== ref.indices[j] || vals[j] !== ref.values[j]) {
        bad++;
        if (!first) first = `at ${j}: gpu (${vals[j]}, ${ids[j]}) ref (${ref.values[j]}, ${ref.indices[j]})`;
      }
    }
    return { maxRelErr: bad, bound: 0.5, detail: bad ? `${bad} picks differ, first ${first}` : undefined };
  },
}));
