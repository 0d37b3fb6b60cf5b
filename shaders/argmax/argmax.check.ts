import type { KernelCheck } from '../lib/check.ts';
import { randomArray } from '../lib/check.ts';
import { argmax, type ArgmaxOptions } from './argmax.ts';
import { argmaxRef } from './argmax.ref.ts';
import { checkMasks, packTokenMasks } from '../lib/token-mask.ts';

/** Exact index comparison as a CheckResult: maxRelErr = number of mismatching rows. */
export function idsResult(gpu: ArrayLike<number>, ref: ArrayLike<number>, what = 'ids'): { maxRelErr: number; bound: number; detail?: string } {
  let bad = 0, first = -1;
  for (let i = 0; i < ref.length; i++) if (gpu[i] !== ref[i]) { bad++; if (first < 0) first = i; }
  return { maxRelErr: bad, bound: 0.5, detail: bad ? `${bad}/${ref.length} ${what} differ (first at ${first}: gpu ${gpu[first]} ref ${ref[first]})` : undefined };
}

const cases: Array<[number, number, ArgmaxOptions & { stridePad?: number; ties?: boolean }]> = [
  [1, 8, {}],
  [3, 63, { variant: 'plain', ties: true }],
  [17, 512, { variant: 'subgroups', ties: true }],
  [3, 4099, { variant: 'plain', stridePad: 5, ties: true }],
  [17, 4099, { variant: 'subgroups', stridePad: 64 }],
  [2, 151936, { ties: true }],
];

export const checks: KernelCheck[] = cases.map(([rows, vocab, o]) => ({
  name: `argmax rows=${rows} vocab=${vocab} ${o.variant ?? 'default'}${o.stridePad ? ' stride' : ''}${o.ties ? ' ties' : ''}`,
  async run(rt) {
    if (o.variant === 'subgroups' && !rt.info.features.subgroups) return { maxRelErr: 0, bound: 1, detail: 'skipped: no subgroups' };
    const stride = vocab + (o.stridePad ?? 0);
    const x = randomArray(rows * stride, 41 + vocab, 10);
    if (o.ties) {
      // Quantize so equal maxima occur; plant repeated maxima at awkward places, -inf and NaN too.
      for (let i = 0; i < x.length; i++) x[i] = Math.round(x[i]);
      for (let r = 0; r < rows; r++) {
        const b = r * stride;
        // Equal maxima in the same invocation's strided subset (a, a+64, a+128, a+256) and across.
        const a = (r * 37 + 3) % Math.max(1, vocab - 257);
        for (const d of [256, 128, 64, 0]) if (a + d < vocab) x[b + a + d] = 20;
        x[b + vocab - 1] = 20; x[b + ((r * 11 + 5) % vocab)] = 20;
        x[b] = r % 2 ? -Infinity : NaN;
      }
    }
    const gx = rt.upload(x), go = rt.createBuffer(rows * 4);
    argmax(rt, gx, rows, vocab, go, { rowStride: o.stridePad ? stride : undefined, variant: o.variant });
    const got = await rt.readU32(go, rows);
    rt.destroy(gx); rt.destroy(go);
    return idsResult(got, argmaxRef(x, rows, vocab, stride));
  },
}));

// Masked variant (grammar masks): rows without a mask, with the k lowest logits allowed, one
// token, half the vocabulary, a sparse set; vocab sizes that leave a partial last mask word.
const maskedCases: Array<[number, number, ArgmaxOptions & { stridePad?: number }]> = [
  [7, 63, { variant: 'plain' }],
  [11, 576, { variant: 'subgroups', stridePad: 3 }],
  [6, 4099, {}],
  [5, 151936, {}],
];
checks.push(...maskedCases.map(([rows, vocab, o]) => ({
  name: `argmax masked rows=${rows} vocab=${vocab} ${o.variant ?? 'default'}${o.stridePad ? ' stride' : ''}`,
  async run(rt: Parameters<KernelCheck['run']>[0]) {
    if (o.variant === 'subgroups' && !rt.info.features.subgroups) return { maxRelErr: 0, bound: 1, detail: 'skipped: no subgroups' };
    const stride = vocab + (o.stridePad ?? 0);
    const x = randomArray(rows * stride, 43 + vocab, 10);
    const masks = checkMasks(x, rows, vocab, stride, 5 + vocab);
    const packed = packTokenMasks(masks, vocab)!;
    const gx = rt.upload(x), go = rt.createBuffer(rows * 4), gb = rt.upload(packed.bits), gr = rt.upload(packed.rowOffsets);
    argmax(rt, gx, rows, vocab, go, { rowStride: o.stridePad ? stride : undefined, variant: o.variant, mask: { bits: gb, rowOffsets: gr } });
    const got = await rt.readU32(go, rows);
    rt.destroy(gx); rt.destroy(go); rt.destroy(gb); rt.destroy(gr);
    const ref = argmaxRef(x, rows, vocab, stride, masks);
    const unmasked = argmaxRef(x, rows, vocab, stride);
    const r = idsResult(got, ref, 'masked ids');
    // the masks must matter (else the check could not fail on an ignored mask)
    const changed = masks.filter((m, i) => m && ref[i] !== unmasked[i]).length;
    return { ...r, maxRelErr: changed === 0 ? 1 : r.maxRelErr, detail: `${r.detail ?? ''} ${changed} rows changed by their mask` };
  },
})));
