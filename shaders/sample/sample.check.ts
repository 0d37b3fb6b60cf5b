import type { KernelCheck } from '../lib/check.ts';
import { randomArray } from '../lib/check.ts';
import { sample, packSampleParams, sampleUniform, pcgHash, type SampleParams, type SampleOptions } from './sample.ts';
import { sampleRef } from './sample.ref.ts';
import { checkMasks, packTokenMasks } from '../lib/token-mask.ts';

interface Case {
  name: string;
  vocab: number;
  rows: SampleParams[];
  pad?: number;
  scale?: number;
  ties?: boolean;
  history?: number[];
  variant?: SampleOptions['variant'];
  hinted?: boolean;
  /** Grammar masks per row (checkMasks): the masked kernel variant. */
  masked?: boolean;
}

// Many (seed, step) draws per setting: exact token equality with the float64 reference.
function draws(n: number, p: Omit<SampleParams, 'seed' | 'step'>, seed0: number): SampleParams[] {
  return Array.from({ length: n }, (_, i) => ({ ...p, seed: seed0 + 7 * i, step: i * 13 }));
}

const hist = [3, 5, 5, 7, 11, 2, 60, 99999, 0, 1, 40, 41, 42];
const cases: Case[] = [
  { name: 'greedy+plain', vocab: 8, rows: [{ temperature: 0 }, ...draws(8, { temperature: 1 }, 1)] },
  { name: 'greedy only (rowParams hint)', vocab: 4099, rows: [{ temperature: 0 }, { temperature: -1 }, { temperature: 0, repetitionPenalty: 2, historyOffset: 0, historyLength: 13 }], history: hist, hinted: true },
  { name: 'temperature only (rowParams hint)', vocab: 576, rows: [{ temperature: 0 }, ...draws(5, { temperature: 0.9 }, 12)], hinted: true },
  { name: 'top-k only (rowParams hint)', vocab: 300, rows: draws(5, { temperature: 1.1, topK: 17 }, 13), hinted: true, variant: 'plain' },
  { name: 'temperature', vocab: 63, rows: [...draws(6, { temperature: 0.3 }, 2), ...draws(6, { temperature: 2.5 }, 3)], variant: 'plain' },
  { name: 'top-k', vocab: 172, rows: [...draws(6, { temperature: 1, topK: 5 }, 4), { temperature: 0.9, topK: 1, seed: 3 }, ...draws(4, { temperature: 1, topK: 171 }, 9)], variant: 'subgroups' },
  { name: 'top-p', vocab: 576, rows: [...draws(6, { temperature: 1, topP: 0.9 }, 5), { temperature: 1, topP: 0.001, seed: 1 }, ...draws(4, { temperature: 0.7, topP: 0.5 }, 6)] },
  { name: 'top-k+top-p', vocab: 4099, rows: draws(6, { temperature: 0.8, topK: 40, topP: 0.95 }, 7), pad: 13 },
  { name: 'repetition penalty', vocab: 63, history: hist, scale: 3, pad: 5, rows: [
    { temperature: 0, repetitionPenalty: 1.3, historyOffset: 0, historyLength: hist.length },
    { temperature: 0, repetitionPenalty: 0.7, historyOffset: 2, historyLength: 6 },
    ...draws(6, { temperature: 1, repetitionPenalty: 1.5, historyOffset: 0, historyLength: hist.length, topK: 20 }, 8),
  ] },
  { name: 'ties (quantized logits)', vocab: 300, ties: true, rows: [
    { temperature: 0 }, ...draws(4, { temperature: 1, topK: 7 }, 10), ...draws(4, { temperature: 1, topK: 30, topP: 0.6 }, 11),
  ], variant: 'plain' },
  // grammar masks: greedy, temperature, top-k, top-p and penalty rows, each with and without a mask
  { name: 'masked mixed', vocab: 63, masked: true, history: hist, rows: [
    { temperature: 0 }, { temperature: 0 }, { temperature: 0 }, { temperature: 0 }, { temperature: 0 },
    ...draws(5, { temperature: 1 }, 21), ...draws(5, { temperature: 0.8, topK: 7 }, 22),
    ...draws(5, { temperature: 1.2, topP: 0.7 }, 23),
    ...draws(5, { temperature: 1, repetitionPenalty: 1.4, historyOffset: 0, historyLength: hist.length }, 24),
  ] },
  { name: 'masked temperature', vocab: 4099, masked: true, pad: 7, rows: [...draws(5, { temperature: 1 }, 25), ...draws(5, { temperature: 0.6, topK: 50, topP: 0.9 }, 26)] },
  { name: 'masked greedy (rowParams hint)', vocab: 576, masked: true, hinted: true, rows: [{ temperature: 0 }, { temperature: 0 }, { temperature: 0 }, { temperature: 0 }, { temperature: 0 }] },
];

export const checks: KernelCheck[] = [
  {
    name: 'sample uniform hash (TS == documented PCG values)',
    async run() {
      // Fixed values guard against an accidental change of the stream (seeded runs must replay).
      const got = [pcgHash(0), pcgHash(1), pcgHash(0xffffffff), sampleUniform(42, 7)];
      const u = Array.from({ length: 1000 }, (_, i) => sampleUniform(1, i));
      const mean = u.reduce((a, b) => a + b, 0) / u.length;
      // PCG hash (Jarzynski & Olano 2020, "pcg_hash") of 0 and 1, and the (42, 7) draw.
      const ok = got[0] === 129708002 && got[1] === 2831084092 && got[3] === 14044408 / 16777216 && u.every((x) => x >= 0 && x < 1) && Math.abs(mean - 0.5) < 0.05 && new Set(u).size > 990;
      return { maxRelErr: ok ? 0 : 1, bound: 0.5, detail: `pcg(0)=${got[0]} pcg(1)=${got[1]} u(42,7)=${got[3]} mean=${mean}` };
    },
  },
  ...cases.map((c) => ({
    name: `sample ${c.name} vocab=${c.vocab} rows=${c.rows.length}${c.variant ? ' ' + c.variant : ''}`,
    async run(rt: Parameters<KernelCheck['run']>[0]) {
      if (c.variant === 'subgroups' && !rt.info.features.subgroups) return { maxRelErr: 0, bound: 1, detail: 'skipped: no subgroups' };
      const R = c.rows.length, V = c.vocab, stride = V + (c.pad ?? 0);
      const x = randomArray(R * stride, 71 + V, c.scale ?? 4);
      if (c.ties) for (let i = 0; i < x.length; i++) x[i] = Math.round(x[i] * 2) / 2;
      x[1] = NaN;
      const gx = rt.upload(x);
      const gp = rt.upload(new Uint8Array(packSampleParams(c.rows)));
      const gh = c.history ? rt.upload(Uint32Array.from(c.history)) : undefined;
      const go = rt.createBuffer(R * 4);
      const masks = c.masked ? checkMasks(x, R, V, stride, 9 + V) : null;
      const packed = masks ? packTokenMasks(masks, V)! : null;
      const gm = packed ? { bits: rt.upload(packed.bits), rowOffsets: rt.upload(packed.rowOffsets) } : undefined;
      sample(rt, gx, R, V, gp, go, { rowStride: c.pad ? stride : undefined, history: gh, variant: c.variant, rowParams: c.hinted ? c.rows : undefined, mask: gm });
      const got = await rt.readU32(go, R);
      rt.destroy(gx); rt.destroy(gp); rt.destroy(go); if (gh) rt.destroy(gh); if (gm) { rt.destroy(gm.bits); rt.destroy(gm.rowOffsets); }
      let bad = 0, detail = '', minMargin = Infinity, changed = 0;
      const seen = new Set<number>();
      for (let r = 0; r < R; r++) {
        const ref = sampleRef(x.subarray(r * stride, r * stride + V), V, c.rows[r], c.history ?? [], masks?.[r]);
        if (masks?.[r] && ref.token !== sampleRef(x.subarray(r * stride, r * stride + V), V, c.rows[r], c.history ?? []).token) changed++;
        minMargin = Math.min(minMargin, ref.margin);
        seen.add(ref.token);
        if (got[r] !== ref.token) { bad++; detail ||= `row ${r}: gpu ${got[r]} ref ${ref.token} (margin ${ref.margin.toExponential(2)}, kept ${ref.kept})`; }
      }
      // masked cases: the masks must change some results, or an ignored mask would pass
      if (masks && changed === 0) bad++;
      return { maxRelErr: bad, bound: 0.5, detail: `${detail} min margin ${minMargin.toExponential(2)}, ${seen.size} distinct tokens${masks ? `, ${changed} rows changed by their mask` : ''}` };
    },
  })),
];
