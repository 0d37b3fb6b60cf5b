// Checks of the multi-LoRA shrink tail of the base matmul (shaders/lora/lora.fused.ts, matmul.ts
// opts.loraShrink) against lora.fused.ref.ts at awkward sizes: odd M and K, banks of 1-3 modules,
// ranks 1..64 mixed in one step, tiles of 1-4 rows (an adapter's rows scattered over the batch), rows
// without adapter (t untouched), modules an adapter does not target, shuffled pages with garbage in the
// unused ones, f32 / f16 / q8 weights, the matmul variants (the output must stay bit-identical to the
// plain kernel), weights split into parts.
import type { KernelCheck, CheckResult } from '../lib/check.ts';
import { randomArray, relErr } from '../lib/check.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { bankLayout, type LoraBank } from './lora.ts';
import { packFusedMeta, releaseFusedStep, uploadFusedStep, type LoraFusedStep } from './lora.fused.ts';
import { fusedShrinkRef, type FusedRefAdapter } from './lora.fused.ref.ts';
import { matmul } from '../matmul/matmul.ts';
import { uploadWeight, destroyWeight, type WeightFormat } from '../matmul/weights.ts';

const LAYERS = 3;
const LAYER = 1;

interface BankSpec {
  inDim: number;
  outDims: number[];
  /** mask bit of module 0 (q|k|v 0, o 3, gate|up 4, down 6) */
  mod0: number;
}

interface Setup {
  bank: LoraBank;
  step: LoraFusedStep;
  rowAd: Array<FusedRefAdapter | null>;
  destroy(): void;
}

/**
 * A step over `rowSlots` (adapter index or -1) of adapters with `ranks`; `off` lists [adapter, module]
 * pairs the adapter does not target at LAYER. Several banks can share the adapters (same pages).
 */
function setup(rt: Runtime, banks: BankSpec[], ranks: number[], rowSlots: number[], off: Array<[number, number, number?]>, seed: number, rMax = Math.max(...ranks)): { banks: Setup[]; step: LoraFusedStep; destroyAll(): void } {
  const nPages = ranks.reduce((a, r) => a + r, 0) + 7;
  const order = Array.from({ length: nPages }, (_, i) => i);
  const rnd = randomArray(nPages, seed + 99);
  order.sort((a, b) => rnd[a]! - rnd[b]!);
  const pagesOf: number[][] = [];
  let next = 0;
  for (const r of ranks) pagesOf.push(order.slice(next, (next += r)));
  const f = new Float32Array(1);
  const scales = ranks.map((r, s) => ((f[0] = s % 2 ? (2 * r + 1) / Math.sqrt(r) : (2 * r + 1) / r), f[0]!));
  // masks[l]: everything on except the `off` pairs at LAYER (bank index b, module m)
  const masks = ranks.map((_, s) => Array.from({ length: LAYERS }, (_, l) => {
    let mask = 0x7f;
    if (l === LAYER) for (const [a, m, b] of off) if (a === s) mask &= ~(1 << (banks[b ?? 0]!.mod0 + m));
    return mask;
  }));
  const { meta, nTiles } = packFusedMeta(rowSlots, ranks.map((rank, s) => ({ rank, scale: scales[s]!, masks: masks[s]!, pages: pagesOf[s]! })), LAYERS);
  const t = rt.createBuffer(rowSlots.length * 3 * rMax * 4, 'check-t');
  const step = uploadFusedStep(rt, meta, nTiles, t, rowSlots.length, LAYERS, rMax);
  const out: Setup[] = banks.map((b, bi) => {
    const L = bankLayout(b.inDim, b.outDims);
    const Ab = randomArray(nPages * L.aPage, seed + 1 + bi, 10); // garbage in unused pages
    const Bb = randomArray(nPages * L.btPage, seed + 2 + bi, 10);
    const ads = ranks.map((r, s) => {
      const A = b.outDims.map((_, m) => randomArray(r * b.inDim, seed + 10 + 7 * s + m + 100 * bi));
      const B = b.outDims.map((d, m) => randomArray(d * r, seed + 40 + 7 * s + m + 100 * bi));
      for (let k = 0; k < r; k++) {
        const pg = pagesOf[s]![k]!;
        Ab.fill(0, pg * L.aPage, (pg + 1) * L.aPage); // the pool zero-pads A rows and Bt columns
        Bb.fill(0, pg * L.btPage, (pg + 1) * L.btPage);
        b.outDims.forEach((d, m) => {
          for (let i = 0; i < b.inDim; i++) Ab[pg * L.aPage + m * L.inP + i] = A[m]![k * b.inDim + i]!;
          for (let j = 0; j < d; j++) Bb[pg * L.btPage + L.btCol[m]! + j] = B[m]![j * r + k]!;
        });
      }
      const on = b.outDims.map((_, m) => !!(masks[s]![LAYER]! & (1 << (b.mod0 + m))));
      return { rank: r, scale: scales[s]!, A, B, on };
    });
    const bank: LoraBank = { A: rt.upload(Ab), Bt: rt.upload(Bb), inDim: b.inDim, outDims: b.outDims, mod0: b.mod0 };
    return { bank, step, rowAd: rowSlots.map((s) => (s < 0 ? null : ads[s]!)), destroy: () => (rt.destroy(bank.A), rt.destroy(bank.Bt)) };
  });
  return { banks: out, step, destroyAll: () => (out.forEach((b) => b.destroy()), releaseFusedStep(rt, step), rt.destroy(t)) };
}

/** t entries the kernel had to write vs float64 (entries it must not write are ignored). */
function compareT(got: ArrayLike<number>, ref: Float64Array, bound: number): CheckResult {
  const g: number[] = [], r: number[] = [];
  for (let i = 0; i < ref.length; i++) if (!Number.isNaN(ref[i]!)) (g.push(got[i]!), r.push(ref[i]!));
  if (!r.length) return { maxRelErr: Infinity, bound, detail: 'no t entry expected: the case checks nothing' };
  return { maxRelErr: relErr(g, r), bound };
}

const QKV = (inDim: number, q: number, kv: number): BankSpec => ({ inDim, outDims: [q, kv, kv], mod0: 0 });

// ---------------------------------------------------------------- matmul shrink tail

interface TailCase { name: string; M: number; K: number; N: number; bank?: BankSpec; ranks: number[]; rowSlots: number[]; off: Array<[number, number]>; format: WeightFormat; variant?: string; maxPartBytes?: number; bias?: boolean }

async function tailCase(rt: Runtime, c: TailCase, seed: number): Promise<CheckResult> {
  const spec: BankSpec = c.bank ?? { inDim: c.K, outDims: [c.N], mod0: 3 };
  const S = setup(rt, [spec], c.ranks, c.rowSlots, c.off, seed);
  const { bank, step, rowAd } = S.banks[0]!;
  const tOff = 0;
  const t0 = new Float32Array(c.M * step.tStride).fill(-7);
  rt.write(step.t, t0);
  const x = randomArray(c.M * c.K, seed + 6);
  const w = randomArray(c.N * c.K, seed + 7, 0.5);
  const prev = randomArray(c.M * c.N, seed + 9);
  const gx = rt.upload(x);
  const gw = uploadWeight(rt, 'w', w, c.N, c.K, c.format, { maxPartBytes: c.maxPartBytes, bias: c.bias ? randomArray(c.N, seed + 8) : undefined });
  const run = async (lora: boolean) => {
    const go = rt.upload(prev);
    // with a tail, split-K (mv2) runs as mv1: the plain run uses mv1 too so the outputs compare bit for bit
    const variant = !lora && c.variant === 'mv2' ? 'mv1' : c.variant;
    matmul(rt, gx, gw, go, c.M, { accumulate: true, variant, loraShrink: lora ? { step, bank, layer: LAYER, tOff } : undefined });
    const r = await rt.readF32(go, c.M * c.N);
    rt.destroy(go);
    return r;
  };
  const plain = await run(false), got = await run(true);
  const t = await rt.readF32(step.t, c.M * step.tStride);
  const parts = gw.parts.length;
  rt.destroy(gx);
  destroyWeight(rt, gw);
  S.destroyAll();
  if (c.maxPartBytes && parts < 2) return { maxRelErr: Infinity, bound: 1e-5, detail: 'the weight did not split into parts' };
  for (let i = 0; i < plain.length; i++) if (!Object.is(plain[i], got[i])) return { maxRelErr: Infinity, bound: 1e-5, detail: `matmul output ${i} changed by the shrink tail` };
  const tRef = fusedShrinkRef(x, c.M, c.K, rowAd, { nMod: spec.outDims.length, rMax: step.rMax, tStride: step.tStride, tOff });
  for (let i = 0; i < t.length; i++) if (Number.isNaN(tRef[i]!) && t[i] !== -7) return { maxRelErr: Infinity, bound: 1e-5, detail: `t ${i} written (row ${Math.floor(i / step.tStride)}) though no adapter targets it` };
  return compareT(t, tRef, 1e-5);
}

const tailCases: TailCase[] = [
  { name: 'o shrink tail, M 9 (v3), K 61, ranks 1/16/64/5, base rows, one adapter off', M: 9, K: 61, N: 40, ranks: [1, 16, 64, 5], rowSlots: [0, 1, -1, 2, 3, 3, -1, 2, 0], off: [[3, 0]], format: 'f32' },
  { name: 'o shrink tail, M 2 (mv1), K 64, f16', M: 2, K: 64, N: 19, ranks: [7], rowSlots: [-1, 0], off: [], format: 'f16' },
  { name: 'o shrink tail, M 5 (v2), K 33, q8 in 2 parts', M: 5, K: 33, N: 21, ranks: [3, 33], rowSlots: [1, 0, 1, 1, -1], off: [], format: 'q8', maxPartBytes: 11 * 64 + 32 },
  { name: 'o shrink tail, M 33, K 172, variant v1', M: 33, K: 172, N: 13, ranks: [16, 2], rowSlots: Array.from({ length: 33 }, (_, i) => (i % 4 === 3 ? -1 : i % 2)), off: [], format: 'f32', variant: 'v1' },
  { name: 'q|k|v shrink tail (3 modules), M 7 (v2), K 63, bias, ranks 1/3/16/64/33 (tiles of 1..4 rows), k off for one adapter, v for another', M: 7, K: 63, N: 56, bank: QKV(63, 30, 13), ranks: [1, 3, 16, 64, 33], rowSlots: [4, -1, 0, 3, 4, 4, 1], off: [[2, 1], [4, 2]], format: 'f32', bias: true },
  { name: 'gate|up shrink tail (2 modules), M 33 (v4), K 64 (vec4 x), ranks 64/2/7, scattered rows, q8', M: 33, K: 64, N: 80, bank: { inDim: 64, outDims: [40, 40], mod0: 4 }, ranks: [64, 2, 7], rowSlots: Array.from({ length: 33 }, (_, i) => (i % 5 === 4 ? -1 : i % 3)), off: [[1, 0]], format: 'q8' },
  { name: 'down shrink tail, M 17 (v4), K 96, f16, every row its own adapter (ranks 1..64)', M: 17, K: 96, N: 43, bank: { inDim: 96, outDims: [43], mod0: 6 }, ranks: Array.from({ length: 17 }, (_, i) => 1 + ((i * 29) % 64)), rowSlots: Array.from({ length: 17 }, (_, i) => i), off: [[3, 0]], format: 'f16' },
  { name: 'q|k|v shrink tail, M 11, K 31, variant v3, prefill-like runs of one adapter', M: 11, K: 31, N: 34, bank: QKV(31, 20, 7), ranks: [2, 64], rowSlots: [0, 0, 0, 0, 0, 0, 1, 1, 1, -1, 1], off: [[1, 1]], format: 'f32', variant: 'v3' },
  { name: 'o shrink tail, M 1 (mv1), K 257, rank 5, mv2 requested (split-K has no tail: runs as mv1)', M: 1, K: 257, N: 9, ranks: [5], rowSlots: [0], off: [], format: 'f32', variant: 'mv2' },
];

export const checks: KernelCheck[] = tailCases.map((c, i) => ({ name: `lora fused: matmul ${c.name}`, run: (rt: Runtime) => tailCase(rt, c, 8000 + 100 * i) }));
