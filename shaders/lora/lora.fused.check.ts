// Checks of the fused multi-LoRA kernels (shaders/lora/lora.fused.ts) against lora.fused.ref.ts at
// awkward sizes: odd rows and features, banks of 1-3 modules of odd widths, ranks 1..64 mixed in one
// step, rows without adapter (must stay bit-identical to the plain kernel), modules an adapter does
// not target, shuffled pages with garbage in the unused ones, weight formats f32 / f16 / q8, every
// matmul variant, and weights split into parts.
import type { KernelCheck, CheckResult } from '../lib/check.ts';
import { randomArray, relErr } from '../lib/check.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { bankLayout, type LoraBank } from './lora.ts';
import { fusedTLayout, packFusedMeta, releaseFusedStep, uploadFusedStep, type LoraFusedStep } from './lora.fused.ts';
import { fusedExpandRef, fusedShrinkRef, type FusedRefAdapter } from './lora.fused.ref.ts';
import { matmul } from '../matmul/matmul.ts';
import { uploadWeight, destroyWeight, type WeightFormat } from '../matmul/weights.ts';
import { rmsnorm } from '../rmsnorm/rmsnorm.ts';
import { rmsnormRef } from '../rmsnorm/rmsnorm.ref.ts';
import { siluMul } from '../silu_mul/silu_mul.ts';
import { siluMulFusedRef } from '../silu_mul/silu_mul.ref.ts';

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
  const { meta, nEnt } = packFusedMeta(rowSlots, ranks.map((rank, s) => ({ rank, scale: scales[s]!, masks: masks[s]!, pages: pagesOf[s]! })), LAYERS);
  const step = uploadFusedStep(rt, meta, nEnt, rowSlots.length, LAYERS, rMax);
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
  return { banks: out, step, destroyAll: () => (out.forEach((b) => b.destroy()), releaseFusedStep(rt, step)) };
}

/** Rows whose adapter adds nothing to column range must equal the plain result bit for bit; the rest: deltas vs float64. */
function compareDelta(got: ArrayLike<number>, plain: ArrayLike<number>, dRef: Float64Array, bound: number): CheckResult {
  const dGpu = new Float64Array(dRef.length);
  for (let i = 0; i < dRef.length; i++) {
    if (dRef[i] === 0 && !Object.is(got[i], plain[i])) return { maxRelErr: Infinity, bound, detail: `element ${i} without LoRA delta changed: ${plain[i]} → ${got[i]}` };
    dGpu[i] = got[i]! - plain[i]!;
  }
  return { maxRelErr: relErr(dGpu, dRef), bound };
}

/** t entries the kernel had to write vs float64 (entries it must not write are ignored). */
function compareT(got: ArrayLike<number>, ref: Float64Array, bound: number): CheckResult {
  const g: number[] = [], r: number[] = [];
  for (let i = 0; i < ref.length; i++) if (!Number.isNaN(ref[i]!)) (g.push(got[i]!), r.push(ref[i]!));
  if (!r.length) return { maxRelErr: Infinity, bound, detail: 'no t entry expected: the case checks nothing' };
  return { maxRelErr: relErr(g, r), bound };
}

const worst = (...rs: CheckResult[]): CheckResult => rs.reduce((a, b) => (b.maxRelErr > a.maxRelErr || Number.isNaN(b.maxRelErr) ? b : a));

// ---------------------------------------------------------------- matmul epilogue (expand)

interface EpiCase {
  name: string;
  M: number;
  K: number;
  bank: BankSpec;
  /** output row width (≥ outOff + Σ outDims) and where the bank's columns start */
  N: number;
  outOff: number;
  ranks: number[];
  rowSlots: number[];
  off: Array<[number, number]>;
  format: WeightFormat;
  variant?: string;
  bias?: boolean;
  accumulate?: boolean;
  maxPartBytes?: number;
}

async function epiCase(rt: Runtime, c: EpiCase, seed: number): Promise<CheckResult> {
  const S = setup(rt, [c.bank], c.ranks, c.rowSlots, c.off, seed);
  const { bank, step, rowAd } = S.banks[0]!;
  const t = randomArray(c.M * step.tStride, seed + 5);
  const tOff = fusedTLayout(step.rMax).tOff.gate_up; // any group's columns
  rt.write(step.t, t);
  const x = randomArray(c.M * c.K, seed + 6);
  const w = randomArray(c.N * c.K, seed + 7, 0.5);
  const bias = c.bias ? randomArray(c.N, seed + 8) : undefined;
  const prev = randomArray(c.M * c.N, seed + 9);
  const gx = rt.upload(x);
  const gw = uploadWeight(rt, 'w', w, c.N, c.K, c.format, { bias, maxPartBytes: c.maxPartBytes });
  const run = async (lora: boolean) => {
    const go = rt.upload(prev);
    matmul(rt, gx, gw, go, c.M, { accumulate: c.accumulate, variant: c.variant, lora: lora ? { step, bank, layer: LAYER, tOff, outOff: c.outOff } : undefined });
    const r = await rt.readF32(go, c.M * c.N);
    rt.destroy(go);
    return r;
  };
  const plain = await run(false), got = await run(true);
  const parts = gw.parts.length;
  rt.destroy(gx);
  destroyWeight(rt, gw);
  S.destroyAll();
  if (c.maxPartBytes && parts < 2) return { maxRelErr: Infinity, bound: 1e-5, detail: 'the weight did not split into parts' };
  const dRef = fusedExpandRef(t, c.M, c.bank.outDims, rowAd, { rMax: step.rMax, tStride: step.tStride, tOff, outOff: c.outOff, outWidth: c.N });
  return compareDelta(got, plain, dRef, 1e-5);
}

const QKV = (inDim: number, q: number, kv: number): BankSpec => ({ inDim, outDims: [q, kv, kv], mod0: 0 });
const epiCases: EpiCase[] = [
  { name: 'q|k|v bank 30|13|13, M 7 (v2), K 63, bias, ranks 1/3/16/64/33, base rows, k off for one adapter, v for another', M: 7, K: 63, bank: QKV(63, 30, 13), N: 56, outOff: 0, ranks: [1, 3, 16, 64, 33], rowSlots: [4, -1, 0, 3, 2, 2, 1], off: [[2, 1], [4, 2]], format: 'f32', bias: true },
  { name: 'gate|up bank 37|37 at column 3 of an 80-wide row, M 33 (v4), K 64 (vec4), ranks 64/2/7', M: 33, K: 64, bank: { inDim: 64, outDims: [37, 37], mod0: 4 }, N: 80, outOff: 3, ranks: [64, 2, 7], rowSlots: Array.from({ length: 33 }, (_, i) => (i % 5 === 4 ? -1 : i % 3)), off: [[1, 0]], format: 'f32' },
  { name: 'down bank 67, M 1 (mv1), K 172, f16, accumulate', M: 1, K: 172, bank: { inDim: 172, outDims: [67], mod0: 6 }, N: 67, outOff: 0, ranks: [5], rowSlots: [0], off: [], format: 'f16', accumulate: true },
  { name: 'o bank 130, M 3 (mv1), K 257, q8 in 3 parts, accumulate, ranks 16/1', M: 3, K: 257, bank: { inDim: 257, outDims: [130], mod0: 3 }, N: 130, outOff: 0, ranks: [16, 1], rowSlots: [1, -1, 0], off: [], format: 'q8', accumulate: true, maxPartBytes: 130 * 288 / 3 + 64 },
  { name: 'q|k|v 24|8|8, M 9, K 13, variant v1, f32, two parts', M: 9, K: 13, bank: QKV(13, 24, 8), N: 40, outOff: 0, ranks: [12, 4, 9], rowSlots: [0, 1, 2, -1, 2, 1, 0, 0, -1], off: [[0, 0]], format: 'f32', variant: 'v1', maxPartBytes: 20 * 13 * 4 },
  { name: 'q|k|v 20|7|7, M 11, K 31, variant v3, f16, bias', M: 11, K: 31, bank: QKV(31, 20, 7), N: 34, outOff: 0, ranks: [2, 64], rowSlots: [0, 1, 1, 1, 0, -1, -1, 1, 0, 0, 1], off: [[1, 1]], format: 'f16', variant: 'v3', bias: true },
  { name: 'gate|up 43|43, M 17 (v4), K 96, q8, every row its own adapter (ranks 1..64)', M: 17, K: 96, bank: { inDim: 96, outDims: [43, 43], mod0: 4 }, N: 86, outOff: 0, ranks: Array.from({ length: 17 }, (_, i) => 1 + ((i * 29) % 64)), rowSlots: Array.from({ length: 17 }, (_, i) => i), off: [[3, 1], [8, 0]], format: 'q8' },
];

// ---------------------------------------------------------------- matmul shrink tail (o_proj)

interface TailCase { name: string; M: number; K: number; N: number; ranks: number[]; rowSlots: number[]; off: Array<[number, number]>; format: WeightFormat; variant?: string; maxPartBytes?: number }

async function tailCase(rt: Runtime, c: TailCase, seed: number): Promise<CheckResult> {
  const spec: BankSpec = { inDim: c.K, outDims: [c.N], mod0: 3 };
  const S = setup(rt, [spec], c.ranks, c.rowSlots, c.off, seed);
  const { bank, step, rowAd } = S.banks[0]!;
  const tOff = fusedTLayout(step.rMax).tOff.o_proj;
  const t0 = new Float32Array(c.M * step.tStride).fill(-7);
  rt.write(step.t, t0);
  const x = randomArray(c.M * c.K, seed + 6);
  const w = randomArray(c.N * c.K, seed + 7, 0.5);
  const prev = randomArray(c.M * c.N, seed + 9);
  const gx = rt.upload(x);
  const gw = uploadWeight(rt, 'w', w, c.N, c.K, c.format, { maxPartBytes: c.maxPartBytes });
  const run = async (lora: boolean) => {
    const go = rt.upload(prev);
    matmul(rt, gx, gw, go, c.M, { accumulate: true, variant: c.variant, loraShrink: lora ? { step, bank, layer: LAYER, tOff } : undefined });
    const r = await rt.readF32(go, c.M * c.N);
    rt.destroy(go);
    return r;
  };
  const plain = await run(false), got = await run(true);
  const t = await rt.readF32(step.t, c.M * step.tStride);
  rt.destroy(gx);
  destroyWeight(rt, gw);
  S.destroyAll();
  for (let i = 0; i < plain.length; i++) if (!Object.is(plain[i], got[i])) return { maxRelErr: Infinity, bound: 1e-5, detail: `matmul output ${i} changed by the shrink tail` };
  const tRef = fusedShrinkRef(x, c.M, c.K, rowAd, { nMod: 1, rMax: step.rMax, tStride: step.tStride, tOff });
  for (let i = 0; i < t.length; i++) if (Number.isNaN(tRef[i]!) && t[i] !== -7) return { maxRelErr: Infinity, bound: 1e-5, detail: `t ${i} written (row ${Math.floor(i / step.tStride)}) though no adapter targets it` };
  return compareT(t, tRef, 1e-5);
}

const tailCases: TailCase[] = [
  { name: 'o shrink tail, M 9 (v3), K 61, ranks 1/16/64/5, base rows, one adapter off', M: 9, K: 61, N: 40, ranks: [1, 16, 64, 5], rowSlots: [0, 1, -1, 2, 3, 3, -1, 2, 0], off: [[3, 0]], format: 'f32' },
  { name: 'o shrink tail, M 2 (mv1), K 64, f16', M: 2, K: 64, N: 19, ranks: [7], rowSlots: [-1, 0], off: [], format: 'f16' },
  { name: 'o shrink tail, M 5 (v2), K 33, q8 in 2 parts', M: 5, K: 33, N: 21, ranks: [3, 33], rowSlots: [1, 0, 1, 1, -1], off: [], format: 'q8', maxPartBytes: 11 * 64 + 32 },
  { name: 'o shrink tail, M 33 (v4), K 172, variant v1', M: 33, K: 172, N: 13, ranks: [16, 2], rowSlots: Array.from({ length: 33 }, (_, i) => (i % 4 === 3 ? -1 : i % 2)), off: [], format: 'f32', variant: 'v1' },
];

// ---------------------------------------------------------------- rmsnorm (+ o add, + shrink)

interface NormCase { name: string; rows: number; dim: number; shrink?: BankSpec; add: boolean; ranks: number[]; rowSlots: number[]; off: Array<[number, number, number?]> }

async function normCase(rt: Runtime, c: NormCase, seed: number): Promise<CheckResult> {
  const oSpec: BankSpec = { inDim: c.dim, outDims: [c.dim], mod0: 3 };
  const specs = [c.shrink ?? oSpec, oSpec];
  const S = setup(rt, specs, c.ranks, c.rowSlots, c.off, seed);
  const step = S.step;
  const tl = fusedTLayout(step.rMax);
  const tShrink = c.shrink?.mod0 === 0 ? tl.tOff.qkv : tl.tOff.gate_up;
  const t0 = randomArray(c.rows * step.tStride, seed + 5); // random t_o (what the o_proj tail wrote)
  rt.write(step.t, t0);
  const x = randomArray(c.rows * c.dim, seed + 6, 3);
  for (let i = 0; i < c.dim; i++) x[i] = x[i]! * 0.01; // one small row
  const w = randomArray(c.dim, seed + 7, 2);
  const eps = 1e-5;
  const gx = rt.upload(x), gw = rt.upload(w), gh = rt.createBuffer(c.rows * c.dim * 4), gxo = rt.createBuffer(c.rows * c.dim * 4);
  rmsnorm(rt, gx, gw, gh, c.rows, c.dim, eps, {
    lora: {
      shrink: c.shrink ? { step, bank: S.banks[0]!.bank, layer: LAYER, tOff: tShrink } : undefined,
      add: c.add ? { step, bank: S.banks[1]!.bank, layer: LAYER, tOff: tl.tOff.o_proj, outOff: 0 } : undefined,
      xOut: c.add ? gxo : undefined,
    },
  });
  const h = await rt.readF32(gh, c.rows * c.dim);
  const xo = c.add ? await rt.readF32(gxo, c.rows * c.dim) : null;
  const t = await rt.readF32(step.t, c.rows * step.tStride);
  for (const b of [gx, gw, gh, gxo]) rt.destroy(b);
  S.destroyAll();
  // x' = x + o delta; h = rmsnorm(x'); t = h · Aᵀ
  let xp: ArrayLike<number> = x;
  const rs: CheckResult[] = [];
  if (c.add) {
    const d = fusedExpandRef(t0, c.rows, [c.dim], S.banks[1]!.rowAd, { rMax: step.rMax, tStride: step.tStride, tOff: tl.tOff.o_proj, outOff: 0, outWidth: c.dim });
    const ref = Float64Array.from(x, (v, i) => v + d[i]!);
    rs.push({ maxRelErr: relErr(xo!, ref), bound: 1e-5, detail: "x'" });
    xp = ref;
  }
  const hRef = rmsnormRef(xp, w, c.rows, c.dim, eps);
  rs.push({ maxRelErr: relErr(h, hRef), bound: 1e-5, detail: 'h' });
  if (c.shrink) {
    const tRef = fusedShrinkRef(hRef, c.rows, c.dim, S.banks[0]!.rowAd, { nMod: c.shrink.outDims.length, rMax: step.rMax, tStride: step.tStride, tOff: tShrink });
    rs.push({ ...compareT(t, tRef, 1e-5), detail: 't' });
  }
  return worst(...rs);
}

const normCases: NormCase[] = [
  { name: 'rmsnorm + q|k|v shrink, 11 rows, dim 63, ranks 1/3/64/16, base rows, q off for one adapter', rows: 11, dim: 63, shrink: QKV(63, 30, 13), add: false, ranks: [1, 3, 64, 16], rowSlots: [0, 1, 2, 3, -1, 3, 3, 2, -1, 1, 0], off: [[3, 0]] },
  { name: 'rmsnorm + o add (x\') + gate|up shrink, 9 rows, dim 70, ranks 16/5/33, o off for one adapter, up for another', rows: 9, dim: 70, shrink: { inDim: 70, outDims: [23, 23], mod0: 4 }, add: true, ranks: [16, 5, 33], rowSlots: [2, 0, -1, 1, 1, 0, 2, -1, 0], off: [[1, 0, 1], [2, 1, 0]] },
  { name: 'rmsnorm + o add only, 4 rows, dim 64, rank 2', rows: 4, dim: 64, add: true, ranks: [2], rowSlots: [0, -1, 0, 0], off: [] },
];

// ---------------------------------------------------------------- silu·mul + down shrink

async function siluCase(rt: Runtime, rows: number, inter: number, ranks: number[], rowSlots: number[], seed: number): Promise<CheckResult> {
  const spec: BankSpec = { inDim: inter, outDims: [29], mod0: 6 };
  const S = setup(rt, [spec], ranks, rowSlots, [], seed);
  const { bank, step, rowAd } = S.banks[0]!;
  const tOff = fusedTLayout(step.rMax).tOff.down_proj;
  const gu = randomArray(rows * 2 * inter, seed + 6, 3);
  const ggu = rt.upload(gu), gact = rt.createBuffer(rows * inter * 4);
  siluMul(rt, ggu, ggu, gact, rows * inter, { rows, inter, lora: { step, bank, layer: LAYER, tOff } });
  const act = await rt.readF32(gact, rows * inter);
  const t = await rt.readF32(step.t, rows * step.tStride);
  rt.destroy(ggu);
  rt.destroy(gact);
  S.destroyAll();
  const aRef = siluMulFusedRef(gu, rows, inter);
  const tRef = fusedShrinkRef(aRef, rows, inter, rowAd, { nMod: 1, rMax: step.rMax, tStride: step.tStride, tOff });
  return worst({ maxRelErr: relErr(act, aRef), bound: 1e-5, detail: 'act' }, { ...compareT(t, tRef, 1e-5), detail: 't' });
}

export const checks: KernelCheck[] = [
  ...epiCases.map((c, i) => ({ name: `lora fused: matmul epilogue ${c.name}`, run: (rt: Runtime) => epiCase(rt, c, 7000 + 100 * i) })),
  ...tailCases.map((c, i) => ({ name: `lora fused: matmul ${c.name}`, run: (rt: Runtime) => tailCase(rt, c, 8000 + 100 * i) })),
  ...normCases.map((c, i) => ({ name: `lora fused: ${c.name}`, run: (rt: Runtime) => normCase(rt, c, 9000 + 100 * i) })),
  { name: 'lora fused: silu·mul + down shrink, 7 rows, inter 43, ranks 64/1/9, base rows', run: (rt) => siluCase(rt, 7, 43, [64, 1, 9], [0, -1, 1, 2, 2, -1, 0], 9900) },
];
