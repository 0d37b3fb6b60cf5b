import type { KernelCheck, CheckResult } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { buildItems, ceil4, loraApply, loraMerge, releaseItems, segmentsFromRowSlots, uploadItems, type LoraSegment } from './lora.ts';
import { loraMergeRef, loraRef, type RefRowAdapter } from './lora.ref.ts';
import type { Runtime } from '../gpu/runtime.ts';

interface Case {
  name: string;
  inDim: number;
  outDim: number;
  rows: number;
  xStride: number;
  outStride: number;
  outOff: number;
  ranks: number[];
  /** Slot whose mask bit is clear for the (layer, module) under test: its rows must stay untouched. */
  untargeted?: number;
  segments: LoraSegment[];
  sgmvMinRows?: number;
}

async function runCase(rt: Runtime, c: Case, seed: number): Promise<CheckResult> {
  const S = c.ranks.length;
  const rMax = Math.max(...c.ranks);
  const layers = 3;
  const layer = 1;
  const moduleBit = 1 << 4;
  const inP = ceil4(c.inDim);
  const outP = ceil4(c.outDim);
  const nPages = c.ranks.reduce((a, r) => a + r, 0) + 5; // a few unused pages
  // Pages shuffled so the page-table indirection is exercised.
  const order = Array.from({ length: nPages }, (_, i) => i);
  const rnd = randomArray(nPages, seed + 99);
  order.sort((a, b) => rnd[a] - rnd[b]);
  const Abuf = randomArray(nPages * inP, seed + 1, 10); // garbage in unused pages and padding... 
  const Btbuf = randomArray(nPages * outP, seed + 2, 10);
  const pages = new Uint32Array(S * rMax).fill(0xffffffff);
  const slotInfo = new Uint32Array(S * (2 + layers));
  const f = new Float32Array(1);
  const adapters: RefRowAdapter[] = [];
  let next = 0;
  c.ranks.forEach((r, s) => {
    const A = randomArray(r * c.inDim, seed + 10 + s);
    const B = randomArray(c.outDim * r, seed + 20 + s);
    const alpha = 2 * r + 1;
    const scale = s % 2 ? alpha / Math.sqrt(r) : alpha / r; // rsLoRA on odd slots
    f[0] = scale;
    adapters.push({ A, B, rank: r, scale: f[0] });
    for (let k = 0; k < r; k++) {
      const pg = order[next++];
      pages[s * rMax + k] = pg;
      // padding of A / Bt rows must be zero (the kernels read it as vec4 lanes)
      Abuf.fill(0, pg * inP, (pg + 1) * inP);
      Btbuf.fill(0, pg * outP, (pg + 1) * outP);
      for (let i = 0; i < c.inDim; i++) Abuf[pg * inP + i] = A[k * c.inDim + i];
      for (let j = 0; j < c.outDim; j++) Btbuf[pg * outP + j] = B[j * r + k];
    }
    slotInfo[s * (2 + layers)] = r;
    slotInfo[s * (2 + layers) + 1] = new Uint32Array(f.buffer)[0];
    for (let l = 0; l < layers; l++) slotInfo[s * (2 + layers) + 2 + l] = s === c.untargeted && l === layer ? 0x7f & ~moduleBit : 0x7f;
  });
  const x = randomArray((c.rows - 1) * c.xStride + c.inDim, seed + 3);
  const out0 = randomArray(c.rows * c.outStride, seed + 4);
  const rowAd: Array<RefRowAdapter | null> = Array(c.rows).fill(null);
  for (const sg of c.segments) for (let r = sg.start; r < sg.start + sg.len; r++) rowAd[r] = sg.slot === c.untargeted ? null : adapters[sg.slot];

  const gx = rt.upload(x), gout = rt.upload(out0);
  const bank = { A: rt.upload(Abuf), Bt: rt.upload(Btbuf), inDim: c.inDim, outDim: c.outDim };
  const tables = { pages: rt.upload(pages), slotInfo: rt.upload(slotInfo), rMax, slotStride: 2 + layers };
  // shrink lanes: the largest rank among the slots this step uses (< rMax in some cases)
  const kSpan = Math.max(1, ...c.segments.filter((s) => s.len > 0).map((s) => c.ranks[s.slot]));
  const step = uploadItems(rt, buildItems(c.segments, c.rows, c.sgmvMinRows), c.rows, rMax, kSpan);
  loraApply(rt, { x: gx, out: gout, bank, tables, step, layer, moduleBit, xStride: c.xStride, outStride: c.outStride, outOff: c.outOff });
  const got = await rt.readF32(gout, c.rows * c.outStride);
  releaseItems(rt, step);
  for (const b of [gx, gout, bank.A, bank.Bt, tables.pages, tables.slotInfo]) rt.destroy(b);

  // Rows without (an applicable) adapter, and columns outside [outOff, outOff+outDim), must be bit-identical.
  const touched = new Uint8Array(c.rows * c.outStride);
  rowAd.forEach((a, r) => {
    if (a) for (let j = 0; j < c.outDim; j++) touched[r * c.outStride + c.outOff + j] = 1;
  });
  for (let i = 0; i < got.length; i++) {
    if (!touched[i] && !Object.is(got[i], out0[i])) {
      return { maxRelErr: Infinity, bound: 1e-5, detail: `untouched element ${i} (row ${Math.floor(i / c.outStride)}) changed: ${out0[i]} → ${got[i]}` };
    }
  }
  // Compare the deltas (out - out0) so the error is relative to the LoRA contribution itself.
  const ref = loraRef(x, out0, rowAd, c);
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
    inDim: 63, outDim: 130, rows: 52, xStride: 67, outStride: 141, outOff: 5, ranks: [1, 4, 8, 16],
    segments: [
      { start: 0, len: 37, slot: 3 }, { start: 37, len: 0, slot: 1 }, { start: 37, len: 1, slot: 2 },
      { start: 41, len: 5, slot: 0 }, { start: 46, len: 1, slot: 1 }, { start: 47, len: 2, slot: 2 },
    ],
  },
  {
    name: 'lora decode 33 rows (gathered sgmv tiles + bgmv singletons), in 64 out 192, one untargeted adapter',
    inDim: 64, outDim: 192, rows: 33, xStride: 64, outStride: 64 * 3 + 192, outOff: 64, ranks: [16, 2, 8, 5], untargeted: 1,
    segments: decodeCase(33, 4, 7),
  },
  {
    name: 'lora sgmv prefill in 172 out 64, tails of 1..3 rows',
    inDim: 172, outDim: 64, rows: 23, xStride: 172, outStride: 64, outOff: 0, ranks: [3, 16],
    segments: [{ start: 0, len: 9, slot: 0 }, { start: 9, len: 6, slot: 1 }, { start: 15, len: 7, slot: 0 }],
  },
  {
    name: 'lora row slots → segments, all bgmv (sgmvMinRows ∞), in 130 out 63',
    inDim: 130, outDim: 63, rows: 20, xStride: 130, outStride: 63, outOff: 0, ranks: [7, 1, 12], sgmvMinRows: 1e9,
    segments: segmentsFromRowSlots([0, 0, 0, -1, 1, 1, 2, 2, 2, 2, -1, -1, 0, 1, 2, 0, 0, 0, 0, -1]),
  },
  {
    name: 'lora step rank span 5 < rMax 16 (rank-16 slot resident but unused), in 96 out 40',
    inDim: 96, outDim: 40, rows: 11, xStride: 96, outStride: 40, outOff: 0, ranks: [2, 16, 5],
    segments: segmentsFromRowSlots([0, 2, 2, 2, -1, 0, 0, 2, -1, 2, 0]),
  },
];

/** Merge of one rank-5 adapter (slot 1, shuffled pages) into a fused weight split in two row parts. */
async function mergeCase(rt: Runtime): Promise<CheckResult> {
  const K = 63, outDim = 130, N = 200, rowOff = 17, r = 5, rMax = 8, split = 100;
  const inP = ceil4(K), outP = ceil4(outDim), nPages = 12;
  const pg = [9, 2, 7, 0, 11];
  const A = randomArray(r * K, 51), B = randomArray(outDim * r, 52), W = randomArray(N * K, 53);
  const Ab = new Float32Array(nPages * inP), Bb = new Float32Array(nPages * outP);
  for (let q = 0; q < r; q++) {
    Ab.set(A.subarray(q * K, (q + 1) * K), pg[q] * inP);
    for (let j = 0; j < outDim; j++) Bb[pg[q] * outP + j] = B[j * r + q];
  }
  const pages = new Uint32Array(2 * rMax);
  pages.set(pg, rMax);
  const bank = { A: rt.upload(Ab), Bt: rt.upload(Bb), inDim: K, outDim };
  const tables = { pages: rt.upload(pages), slotInfo: rt.upload(new Uint32Array(4)), rMax, slotStride: 2 };
  const parts = [rt.upload(W.subarray(0, split * K)), rt.upload(W.subarray(split * K))];
  const scale = 1.75;
  loraMerge(rt, { W: parts[0], partRowStart: 0, partRows: split, bank, tables, slot: 1, rank: r, scale, rowOff });
  loraMerge(rt, { W: parts[1], partRowStart: split, partRows: N - split, bank, tables, slot: 1, rank: r, scale, rowOff });
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
  { name: 'lora merge W += s·B·A, K 63, module rows 17..147 of a 200-row weight in 2 parts', run: mergeCase },
];
