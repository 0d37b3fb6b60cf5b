import type { KernelCheck, CheckResult } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { bankLayout, buildItems, loraApply, loraMerge, releaseItems, segmentsFromRowSlots, uploadItems, type LoraSegment } from './lora.ts';
import { loraMergeRef, loraRef, type RefRowAdapter } from './lora.ref.ts';
import type { Runtime } from '../gpu/runtime.ts';

interface Case {
  name: string;
  inDim: number;
  /** Output widths of the bank's modules (1 module, or 2-3 sharing the input: gate|up, q|k|v). */
  outDims: number[];
  rows: number;
  xStride: number;
  outStride: number;
  /** Output column of module mFirst. */
  outOff: number;
  /** Modules applied (default all). */
  mFirst?: number;
  mCount?: number;
  ranks: number[];
  /** [slot, module]: that slot's mask bit is clear for (layer, module): its rows there must stay untouched. */
  untargeted?: Array<[number, number]>;
  segments: LoraSegment[];
  sgmvMinRows?: number;
  /** Pool's largest rank (default the largest of ranks). */
  rMax?: number;
}

async function runCase(rt: Runtime, c: Case, seed: number): Promise<CheckResult> {
  const S = c.ranks.length;
  const rMax = c.rMax ?? Math.max(...c.ranks);
  const layers = 3;
  const layer = 1;
  const nMod = c.outDims.length;
  const mod0 = 4 - (nMod - 1); // bank modules have mask bits mod0 .. mod0 + nMod - 1
  const mFirst = c.mFirst ?? 0;
  const mCount = c.mCount ?? nMod - mFirst;
  const L = bankLayout(c.inDim, c.outDims);
  const nPages = c.ranks.reduce((a, r) => a + r, 0) + 5; // a few unused pages
  // Pages shuffled so the page-table indirection is exercised.
  const order = Array.from({ length: nPages }, (_, i) => i);
  const rnd = randomArray(nPages, seed + 99);
  order.sort((a, b) => rnd[a] - rnd[b]);
  const Abuf = randomArray(nPages * L.aPage, seed + 1, 10); // garbage in unused pages
  const Btbuf = randomArray(nPages * L.btPage, seed + 2, 10);
  const pages = new Uint32Array(S * rMax).fill(0xffffffff);
  const slotInfo = new Uint32Array(S * (2 + layers));
  const f = new Float32Array(1);
  // adapters[s][m]
  const adapters: RefRowAdapter[][] = [];
  let next = 0;
  c.ranks.forEach((r, s) => {
    const alpha = 2 * r + 1;
    const scale = s % 2 ? alpha / Math.sqrt(r) : alpha / r; // rsLoRA on odd slots
    f[0] = scale;
    const mods = c.outDims.map((outDim, m) => ({ A: randomArray(r * c.inDim, seed + 10 + 7 * s + m), B: randomArray(outDim * r, seed + 40 + 7 * s + m), rank: r, scale: f[0] }));
    adapters.push(mods);
    for (let k = 0; k < r; k++) {
      const pg = order[next++];
      pages[s * rMax + k] = pg;
      // padding of A rows must be zero (the kernels read it as vec4 lanes); Bt padding is never read into out
      Abuf.fill(0, pg * L.aPage, (pg + 1) * L.aPage);
      c.outDims.forEach((outDim, m) => {
        for (let i = 0; i < c.inDim; i++) Abuf[pg * L.aPage + m * L.inP + i] = mods[m].A[k * c.inDim + i];
        for (let j = 0; j < outDim; j++) Btbuf[pg * L.btPage + L.btCol[m] + j] = mods[m].B[j * r + k];
      });
    }
    slotInfo[s * (2 + layers)] = r;
    slotInfo[s * (2 + layers) + 1] = new Uint32Array(f.buffer)[0];
    for (let l = 0; l < layers; l++) {
      let mask = 0x7f;
      if (l === layer) for (const [us, um] of c.untargeted ?? []) if (us === s) mask &= ~(1 << (mod0 + um));
      slotInfo[s * (2 + layers) + 2 + l] = mask;
    }
  });
  const x = randomArray((c.rows - 1) * c.xStride + c.inDim, seed + 3);
  const out0 = randomArray(c.rows * c.outStride, seed + 4);

  const gx = rt.upload(x), gout = rt.upload(out0);
  const bank = { A: rt.upload(Abuf), Bt: rt.upload(Btbuf), inDim: c.inDim, outDims: c.outDims, mod0 };
  const tables = { pages: rt.upload(pages), slotInfo: rt.upload(slotInfo), rMax, slotStride: 2 + layers };
  const step = uploadItems(rt, buildItems(c.segments, c.rows, (s) => c.ranks[s], c.sgmvMinRows), c.rows, rMax);
  loraApply(rt, { x: gx, out: gout, bank, tables, step, layer, mFirst, mCount, xStride: c.xStride, outStride: c.outStride, outOff: c.outOff });
  const got = await rt.readF32(gout, c.rows * c.outStride);
  releaseItems(rt, step);
  for (const b of [gx, gout, bank.A, bank.Bt, tables.pages, tables.slotInfo]) rt.destroy(b);

  // float64 reference module by module; rows without (an applicable) adapter, and columns outside the
  // applied modules, must be bit-identical.
  let ref: Float64Array = Float64Array.from(out0);
  const touched = new Uint8Array(c.rows * c.outStride);
  for (let m = mFirst, oc = c.outOff; m < mFirst + mCount; oc += c.outDims[m], m++) {
    const rowAd: Array<RefRowAdapter | null> = Array(c.rows).fill(null);
    for (const sg of c.segments) {
      const un = (c.untargeted ?? []).some(([us, um]) => us === sg.slot && um === m);
      for (let r = sg.start; r < sg.start + sg.len; r++) rowAd[r] = un ? null : adapters[sg.slot][m];
    }
    ref = loraRef(x, ref, rowAd, { inDim: c.inDim, outDim: c.outDims[m], xStride: c.xStride, outStride: c.outStride, outOff: oc });
    rowAd.forEach((a, r) => {
      if (a) for (let j = 0; j < c.outDims[m]; j++) touched[r * c.outStride + oc + j] = 1;
    });
  }
  for (let i = 0; i < got.length; i++) {
    if (!touched[i] && !Object.is(got[i], out0[i])) {
      return { maxRelErr: Infinity, bound: 1e-5, detail: `untouched element ${i} (row ${Math.floor(i / c.outStride)}, col ${i % c.outStride}) changed: ${out0[i]} → ${got[i]}` };
    }
  }
  // Compare the deltas (out - out0) so the error is relative to the LoRA contribution itself.
  const dGpu = new Float64Array(got.length), dRef = new Float64Array(got.length);
  for (let i = 0; i < got.length; i++) {
    dGpu[i] = got[i] - out0[i];
    dRef[i] = ref[i] - out0[i];
  }
  return result(dGpu, dRef, 1e-5);
}

function decodeCase(rows: number, S: number, seed: number): LoraSegment[] {
  const r = randomArray(rows, seed);
  // every row its own slot or none (-1), as in decode
  const slots = Array.from(r, (v) => Math.floor(((v + 1) / 2) * (S + 1)) - 1);
  return slots.flatMap((s, i) => (s >= 0 ? [{ start: i, len: 1, slot: s }] : []));
}

const cases: Case[] = [
  {
    name: 'lora sgmv+bgmv mixed ranks 1/4/8/16, in 63 out 130, strided out',
    inDim: 63, outDims: [130], rows: 52, xStride: 67, outStride: 141, outOff: 5, ranks: [1, 4, 8, 16],
    segments: [
      { start: 0, len: 37, slot: 3 }, { start: 37, len: 0, slot: 1 }, { start: 37, len: 1, slot: 2 },
      { start: 41, len: 5, slot: 0 }, { start: 46, len: 1, slot: 1 }, { start: 47, len: 2, slot: 2 },
    ],
  },
  {
    name: 'lora decode 33 rows (gathered sgmv tiles + bgmv singletons), in 64 out 192, one untargeted adapter',
    inDim: 64, outDims: [192], rows: 33, xStride: 64, outStride: 64 * 3 + 192, outOff: 64, ranks: [16, 2, 8, 5], untargeted: [[1, 0]],
    segments: decodeCase(33, 4, 7),
  },
  {
    name: 'lora sgmv prefill in 172 out 64, tails of 1..3 rows',
    inDim: 172, outDims: [64], rows: 23, xStride: 172, outStride: 64, outOff: 0, ranks: [3, 16],
    segments: [{ start: 0, len: 9, slot: 0 }, { start: 9, len: 6, slot: 1 }, { start: 15, len: 7, slot: 0 }],
  },
  {
    name: 'lora row slots → segments, all bgmv (sgmvMinRows ∞), in 130 out 63',
    inDim: 130, outDims: [63], rows: 20, xStride: 130, outStride: 63, outOff: 0, ranks: [7, 1, 12], sgmvMinRows: 1e9,
    segments: segmentsFromRowSlots([0, 0, 0, -1, 1, 1, 2, 2, 2, 2, -1, -1, 0, 1, 2, 0, 0, 0, 0, -1]),
  },
  {
    name: 'lora step ranks 2/5 < rMax 16 (rank-16 slot resident but unused), in 96 out 40',
    inDim: 96, outDims: [40], rows: 11, xStride: 96, outStride: 40, outOff: 0, ranks: [2, 16, 5],
    segments: segmentsFromRowSlots([0, 2, 2, 2, -1, 0, 0, 2, -1, 2, 0]),
  },
  {
    name: 'lora fused q|k|v bank (out 30|13|13 in one row), ranks 1/3/16/64/33, k untargeted by one adapter, v by another',
    inDim: 63, outDims: [30, 13, 13], rows: 37, xStride: 65, outStride: 59, outOff: 1, ranks: [1, 3, 16, 64, 33], untargeted: [[2, 1], [4, 2]],
    segments: [...segmentsFromRowSlots([0, 1, 2, 3, 4, 4, 4, 4, 4, 2, 2, -1, 3, 3, 1, 0, 0, 0, 0, 0, 0, 4]), ...decodeCase(15, 5, 11).map((s) => ({ ...s, start: s.start + 22 }))],
  },
  {
    name: 'lora fused gate|up bank (out 37|37, outOff 3), prefill + decode rows, ranks 64/2/7',
    inDim: 41, outDims: [37, 37], rows: 29, xStride: 41, outStride: 80, outOff: 3, ranks: [64, 2, 7], untargeted: [[1, 0]],
    segments: segmentsFromRowSlots([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, -1, 2, 0, 1, 2, 2, 2, 2, 2, -1, 0, 1, 1, 1, 1, 1, 2, 0]),
  },
  {
    name: 'lora one module (k) of a q|k|v bank at its fused column, all bgmv, others untouched',
    inDim: 50, outDims: [24, 10, 10], mFirst: 1, mCount: 1, rows: 9, xStride: 50, outStride: 44, outOff: 24, ranks: [5, 12], sgmvMinRows: 1e9,
    segments: segmentsFromRowSlots([0, 1, -1, 1, 0, 0, 1, -1, 1]),
  },
];

/** Merge of one rank-5 adapter (slot 1, shuffled pages), module 1 of a 3-module bank, into a fused weight split in two row parts. */
async function mergeCase(rt: Runtime): Promise<CheckResult> {
  const K = 63, outDim = 130, N = 200, rowOff = 17, r = 5, rMax = 8, split = 100;
  const outDims = [21, outDim, 9];
  const L = bankLayout(K, outDims), nPages = 12;
  const pg = [9, 2, 7, 0, 11];
  const A = randomArray(r * K, 51), B = randomArray(outDim * r, 52), W = randomArray(N * K, 53);
  const Ab = randomArray(nPages * L.aPage, 54), Bb = randomArray(nPages * L.btPage, 55); // other modules: garbage
  for (let q = 0; q < r; q++) {
    Ab.fill(0, pg[q] * L.aPage + L.inP, pg[q] * L.aPage + 2 * L.inP);
    Ab.set(A.subarray(q * K, (q + 1) * K), pg[q] * L.aPage + L.inP);
    for (let j = 0; j < outDim; j++) Bb[pg[q] * L.btPage + L.btCol[1] + j] = B[j * r + q];
  }
  const pages = new Uint32Array(2 * rMax);
  pages.set(pg, rMax);
  const bank = { A: rt.upload(Ab), Bt: rt.upload(Bb), inDim: K, outDims, mod0: 0 };
  const tables = { pages: rt.upload(pages), slotInfo: rt.upload(new Uint32Array(4)), rMax, slotStride: 2 };
  const parts = [rt.upload(W.subarray(0, split * K)), rt.upload(W.subarray(split * K))];
  const scale = 1.75;
  loraMerge(rt, { W: parts[0], partRowStart: 0, partRows: split, bank, module: 1, tables, slot: 1, rank: r, scale, rowOff });
  loraMerge(rt, { W: parts[1], partRowStart: split, partRows: N - split, bank, module: 1, tables, slot: 1, rank: r, scale, rowOff });
  const got = new Float32Array(N * K);
  got.set(await rt.readF32(parts[0], split * K), 0);
  got.set(await rt.readF32(parts[1], (N - split) * K), split * K);
  for (const b of [...parts, bank.A, bank.Bt, tables.pages, tables.slotInfo]) rt.destroy(b);
  const ref = loraMergeRef(W, N, K, A, B, r, outDim, rowOff, scale);
  for (let i = 0; i < N * K; i++) {
    const row = Math.floor(i / K);
    if ((row < rowOff || row >= rowOff + outDim) && !Object.is(got[i], W[i])) return { maxRelErr: Infinity, bound: 1e-5, detail: `row ${row} outside the module changed` };
  }
  return result(got.map((v, i) => v - W[i]), ref.map((v, i) => v - W[i]), 1e-5);
}

export const checks: KernelCheck[] = [
  ...cases.map((c, i) => ({ name: c.name, run: (rt: Runtime) => runCase(rt, c, 1000 * (i + 1)) })),
  { name: 'lora merge W += s·B·A, module 1 of a 3-module bank, K 63, module rows 17..147 of a 200-row weight in 2 parts', run: mergeCase },
];
