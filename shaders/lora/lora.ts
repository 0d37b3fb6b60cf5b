// Multi-LoRA SGMV / BGMV (host side). WGSL: lora.{common,shrink,expand}.wgsl · reference: lora.ref.ts
// · checks: lora.check.ts · pool/layout: engine/lora/pool.ts.
//
//   out[row, oc_m + j] += scale_a · Σ_k (x[row] · A_a,m[k]) · B_a,m[j, k]   for rows with adapter a
//
// for every module m of a bank: modules that read the same input (q|k|v of the normed hidden,
// gate|up of the post-attention norm) live in one bank (one A and one Bt buffer), so one shrink and
// one expand dispatch serve all of them and the expand writes straight into the fused output row.
// A step's rows come as segments (start, len, slot) of consecutive rows sharing an adapter slot;
// rows in no segment (base model) are never touched. The rows of each adapter (all its segments, in
// row order: a prefill chunk, or decode rows scattered over the batch) are cut into SGMV tiles of up
// to 4 rows that share every A / B load, when the adapter has ≥ SGMV_MIN_ROWS rows in the step; an
// adapter with fewer rows runs as BGMV (one row per item), or, when the step also has tiles, as 1-row
// tiles, so that a step never needs more than one shrink and one expand per bank. Shrink work is listed per (item, 4 rank
// rows below the item's own rank), so mixed ranks cost what each adapter needs, not the largest rank.
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';

export const LoraParams = defineParams('LoraParams', {
  nItems: 'u32',
  /** First u32 of this list in the step's items buffer. */
  itemBase: 'u32',
  inDim: 'u32',
  xStride: 'u32',
  /** One module's A row in vec4 (inP / 4). */
  inP4: 'u32',
  /** A page stride in vec4 (nMod · inP / 4). */
  aPage4: 'u32',
  /** Bt page stride in vec4. */
  btPage4: 'u32',
  outStride: 'u32',
  /** Modules of the bank this dispatch covers: [mFirst, mFirst + mCount) (shrink). */
  mFirst: 'u32',
  mCount: 'u32',
  /** Bt vec4 columns this dispatch covers: [c4First, c4First + c4Span) (expand). */
  c4First: 'u32',
  c4Span: 'u32',
  /** Bt vec4 column where bank module 1 / 2 starts (a huge value when the bank has fewer modules). */
  b41: 'u32',
  b42: 'u32',
  dim0: 'u32',
  dim1: 'u32',
  dim2: 'u32',
  /** Output column (inside an out row) of column 0 of module 0 / 1 / 2. */
  oc0: 'u32',
  oc1: 'u32',
  oc2: 'u32',
  /** Index of bank module 0 in the slot masks: module m has bit 1 << (mod0 + m). */
  mod0: 'u32',
  rMax: 'u32',
  /** t row stride (MAX_BANK_MODULES · rMax). */
  tStride: 'u32',
  slotStride: 'u32',
  layer: 'u32',
});
type F = (typeof LoraParams.fields)[number][0];

const mk = (stage: 'shrink' | 'expand', entryPoint: 'bgmv' | 'sgmv'): Kernel<F> => ({
  name: `lora_${stage}_${entryPoint}`,
  code: LoraParams.wgsl + WGSL['lora.common'] + WGSL[`lora.${stage}`],
  entryPoint,
  params: LoraParams,
});
const K = {
  shrinkB: mk('shrink', 'bgmv'),
  shrinkS: mk('shrink', 'sgmv'),
  expandB: mk('expand', 'bgmv'),
  expandS: mk('expand', 'sgmv'),
};

/** Segments at least this long run as SGMV tiles; shorter ones as BGMV rows. */
export const SGMV_MIN_ROWS = 2;
/** Rows per SGMV tile (register tile height in the kernels). */
export const SGMV_TILE = 4;
/** Most modules in one bank (q|k|v). */
export const MAX_BANK_MODULES = 3;

export const ceil4 = (n: number): number => Math.ceil(n / 4) * 4;

export interface LoraSegment {
  start: number;
  len: number;
  /** Slot in the adapter tables (pages / slotInfo). */
  slot: number;
}

/** Host-side work lists for one step (uploaded once per step, reused by every (layer, bank)). */
export interface LoraItemLists {
  /** expand: (row, slot) pairs. */
  bgmv: Uint32Array;
  /** expand: (slot, nRows, row0, row1, row2, row3, 0, 0) per tile. */
  sgmv: Uint32Array;
  /** shrink: (row, slot, k0, 0) for each bgmv item and k0 = 0, 4, .. < rank(slot). */
  bgmvShrink: Uint32Array;
  /** shrink: (slot, nRows, row0..row3, k0, 0) for each tile and k0 = 0, 4, .. < rank(slot). */
  sgmvShrink: Uint32Array;
}

/** Work lists of a step; `rankOf(slot)` is the rank of the adapter in that slot (shrink entries per item). */
export function buildItems(segments: readonly LoraSegment[], rows: number, rankOf: (slot: number) => number, sgmvMinRows = SGMV_MIN_ROWS): LoraItemLists {
  const b: number[] = [], s: number[] = [], bs: number[] = [], ss: number[] = [];
  const seen = new Uint8Array(rows);
  const bySlot = new Map<number, number[]>();
  for (const seg of segments) {
    if (seg.len < 0 || seg.start < 0 || seg.start + seg.len > rows) throw new Error(`lora: segment [${seg.start}, +${seg.len}) outside ${rows} rows`);
    if (!Number.isInteger(seg.slot) || seg.slot < 0) throw new Error(`lora: bad slot ${seg.slot}`);
    for (let r = seg.start; r < seg.start + seg.len; r++) {
      if (seen[r]) throw new Error(`lora: row ${r} is in two segments`);
      seen[r] = 1;
    }
    if (seg.len === 0) continue;
    let list = bySlot.get(seg.slot);
    if (!list) bySlot.set(seg.slot, (list = []));
    for (let r = seg.start; r < seg.start + seg.len; r++) list.push(r);
  }
  // A step with both tiles and singletons runs everything as tiles (a singleton = a 1-row tile, which
  // the SGMV kernels serve with their one-row path): one shrink + one expand per bank, not two of each.
  const lists = [...bySlot.values()];
  const allTiles = lists.some((l) => l.length >= sgmvMinRows) && lists.some((l) => l.length < sgmvMinRows);
  for (const [slot, list] of bySlot) {
    const rank = rankOf(slot);
    if (!(Number.isInteger(rank) && rank >= 1)) throw new Error(`lora: slot ${slot} has rank ${rank}`);
    if (list.length >= sgmvMinRows || allTiles) {
      for (let i = 0; i < list.length; i += SGMV_TILE) {
        const n = Math.min(SGMV_TILE, list.length - i);
        const r0 = list[i]!;
        const tile = [slot, n, r0, n > 1 ? list[i + 1]! : r0, n > 2 ? list[i + 2]! : r0, n > 3 ? list[i + 3]! : r0];
        s.push(...tile, 0, 0);
        for (let k0 = 0; k0 < rank; k0 += 4) ss.push(...tile, k0, 0);
      }
    } else {
      for (const r of list) {
        b.push(r, slot);
        for (let k0 = 0; k0 < rank; k0 += 4) bs.push(r, slot, k0, 0);
      }
    }
  }
  return { bgmv: Uint32Array.from(b), sgmv: Uint32Array.from(s), bgmvShrink: Uint32Array.from(bs), sgmvShrink: Uint32Array.from(ss) };
}

/** Consecutive rows with the same non-negative slot → segments (slot < 0 = no adapter). */
export function segmentsFromRowSlots(rowSlots: ArrayLike<number>): LoraSegment[] {
  const segs: LoraSegment[] = [];
  for (let r = 0; r < rowSlots.length; ) {
    const s = rowSlots[r];
    let e = r + 1;
    while (e < rowSlots.length && rowSlots[e] === s) e++;
    if (s >= 0) segs.push({ start: r, len: e - r, slot: s });
    r = e;
  }
  return segs;
}

/**
 * GPU storage of one (layer, module group) for all resident adapters: pages of rank rows. The
 * group's modules share the input (inDim); their outputs sit side by side (outDims, in order).
 */
export interface LoraBank {
  /** [pages, nMod, ceil4(inDim)] f32 */
  A: GPUBuffer;
  /** [pages, Σ_m ceil4(outDims[m])] f32 (Bᵀ rows of every module side by side) */
  Bt: GPUBuffer;
  inDim: number;
  outDims: readonly number[];
  /** Bit of module m in the slot masks: 1 << (mod0 + m). */
  mod0: number;
}

/** Strides of a bank: A page (floats), Bt page (floats), and where module m's columns start in a Bt page (floats). */
export function bankLayout(inDim: number, outDims: readonly number[]): { inP: number; aPage: number; btPage: number; btCol: number[] } {
  if (!outDims.length || outDims.length > MAX_BANK_MODULES) throw new Error(`lora: a bank holds 1..${MAX_BANK_MODULES} modules, got ${outDims.length}`);
  const inP = ceil4(inDim);
  const btCol: number[] = [];
  let c = 0;
  for (const d of outDims) {
    btCol.push(c);
    c += ceil4(d);
  }
  return { inP, aPage: outDims.length * inP, btPage: c, btCol };
}

/** Per-slot tables shared by every bank. */
export interface LoraTables {
  /** [slots, rMax] u32 */
  pages: GPUBuffer;
  /** [slots, 2 + layers] u32: rank, f32 bits of scale, per-layer module mask */
  slotInfo: GPUBuffer;
  rMax: number;
  slotStride: number;
}

type List = { base: number; count: number } | null;
/** Uploaded item lists + the shrink scratch of one step. */
export interface LoraStepBuffers {
  /** Every list of the step in one buffer (null when the step has no adapter row). */
  items: GPUBuffer | null;
  bgmv: List;
  sgmv: List;
  bgmvShrink: List;
  sgmvShrink: List;
  /** [rows, MAX_BANK_MODULES, rMax] f32 scratch for the shrink result. */
  t: GPUBuffer;
  rows: number;
  rMax: number;
}

export function uploadItems(rt: Runtime, items: LoraItemLists, rows: number, rMax: number): LoraStepBuffers {
  if (!(Number.isInteger(rMax) && rMax >= 1)) throw new Error(`lora: rMax ${rMax}`);
  const parts = [items.bgmv, items.sgmv, items.bgmvShrink, items.sgmvShrink];
  const per = [2, 8, 4, 8];
  const total = parts.reduce((n, a) => n + a.length, 0);
  const lists: List[] = [];
  let buffer: GPUBuffer | null = null;
  if (total) {
    const all = new Uint32Array(total);
    let o = 0;
    parts.forEach((a, i) => {
      all.set(a, o);
      lists.push(a.length ? { base: o, count: a.length / per[i]! } : null);
      o += a.length;
    });
    buffer = rt.acquire(all.byteLength, undefined, 'lora-items');
    rt.write(buffer, all);
  } else lists.push(null, null, null, null);
  return {
    items: buffer,
    bgmv: lists[0]!,
    sgmv: lists[1]!,
    bgmvShrink: lists[2]!,
    sgmvShrink: lists[3]!,
    t: rt.acquire(Math.max(1, rows * MAX_BANK_MODULES * rMax) * 4, undefined, 'lora-t'),
    rows,
    rMax,
  };
}

export function releaseItems(rt: Runtime, s: LoraStepBuffers): void {
  if (s.items) rt.release(s.items);
  rt.release(s.t);
}

export interface LoraApplyArgs {
  x: GPUBuffer;
  out: GPUBuffer;
  bank: LoraBank;
  tables: LoraTables;
  step: LoraStepBuffers;
  layer: number;
  /** Modules of the bank to apply: [mFirst, mFirst + mCount) (default all). */
  mFirst?: number;
  mCount?: number;
  xStride?: number;
  outStride?: number;
  /** Output column of module mFirst; the following modules follow it in order (fused rows). */
  outOff?: number;
  /** Record only the expand (the shrink ran as the tail of the base matmul: lora.fused.ts). */
  expandOnly?: boolean;
}

/** Records shrink + expand (BGMV and/or SGMV) for the modules [mFirst, mFirst + mCount) of one bank. */
export function loraApply(rt: Runtime, a: LoraApplyArgs): void {
  const { bank, tables, step } = a;
  const nMod = bank.outDims.length;
  const mFirst = a.mFirst ?? 0;
  const mCount = a.mCount ?? nMod - mFirst;
  if (!(Number.isInteger(mFirst) && Number.isInteger(mCount) && mFirst >= 0 && mCount >= 1 && mFirst + mCount <= nMod)) {
    throw new Error(`lora: modules [${mFirst}, +${mCount}) outside the bank's ${nMod}`);
  }
  if (step.rMax !== tables.rMax) throw new Error(`lora: step scratch for rMax ${step.rMax}, tables have ${tables.rMax}`);
  const inDim = bank.inDim;
  const L = bankLayout(inDim, bank.outDims);
  let width = 0;
  for (let m = mFirst; m < mFirst + mCount; m++) width += bank.outDims[m]!;
  const xStride = a.xStride ?? inDim;
  const outStride = a.outStride ?? width;
  const outOff = a.outOff ?? 0;
  if (xStride < inDim) throw new Error(`lora: xStride ${xStride} < inDim ${inDim}`);
  if (outOff + width > outStride) throw new Error(`lora: outColOffset ${outOff} + width ${width} exceeds out row stride ${outStride}`);
  if (!a.expandOnly && a.x.size < step.rows * xStride * 4 - (xStride - inDim) * 4) throw new Error(`lora: x buffer (${a.x.size} B) smaller than ${step.rows} rows × stride ${xStride}`);
  if (a.out.size < ((step.rows - 1) * outStride + outOff + width) * 4) throw new Error(`lora: out buffer (${a.out.size} B) smaller than ${step.rows} rows × stride ${outStride}`);
  if (!step.items) return;
  // Output column of column 0 of every bank module (modules before mFirst are never touched).
  const oc = [0, 0, 0];
  for (let m = mFirst, c = outOff; m < nMod; m++) {
    oc[m] = c;
    c += bank.outDims[m]!;
  }
  const BIG = 0x7fffffff;
  const c4First = L.btCol[mFirst]! / 4;
  const c4End = mFirst + mCount < nMod ? L.btCol[mFirst + mCount]! / 4 : L.btPage / 4;
  const params = {
    nItems: 0,
    itemBase: 0,
    inDim,
    xStride,
    inP4: L.inP / 4,
    aPage4: L.aPage / 4,
    btPage4: L.btPage / 4,
    outStride,
    mFirst,
    mCount,
    c4First,
    c4Span: c4End - c4First,
    b41: nMod > 1 ? L.btCol[1]! / 4 : BIG,
    b42: nMod > 2 ? L.btCol[2]! / 4 : BIG,
    dim0: bank.outDims[0]!,
    dim1: bank.outDims[1] ?? 0,
    dim2: bank.outDims[2] ?? 0,
    oc0: oc[0]!,
    oc1: oc[1]!,
    oc2: oc[2]!,
    mod0: bank.mod0,
    rMax: tables.rMax,
    tStride: MAX_BANK_MODULES * tables.rMax,
    slotStride: tables.slotStride,
    layer: a.layer,
  };
  const common = [tables.pages, tables.slotInfo, step.items];
  const lists: Array<[List, List, Kernel<F>, Kernel<F>]> = [
    [step.bgmvShrink, step.bgmv, K.shrinkB, K.expandB],
    [step.sgmvShrink, step.sgmv, K.shrinkS, K.expandS],
  ];
  for (const [sl, el, shrink, expand] of lists) {
    if (!sl || !el) continue;
    if (!a.expandOnly) rt.dispatch(shrink, {
      params: { ...params, nItems: sl.count, itemBase: sl.base },
      buffers: [a.x, bank.A, ...common, step.t],
      workgroups: rt.grid(Math.ceil((sl.count * mCount) / 64)),
    });
    rt.dispatch(expand, {
      params: { ...params, nItems: el.count, itemBase: el.base },
      buffers: [step.t, bank.Bt, ...common, a.out],
      workgroups: rt.grid(Math.ceil((el.count * params.c4Span) / 64)),
    });
  }
}

// ---------------------------------------------------------------- merge (W += s·B·A)

export const LoraMergeParams = defineParams('LoraMergeParams', {
  K: 'u32',
  outDim: 'u32',
  rowOff: 'u32',
  partRowStart: 'u32',
  partRows: 'u32',
  aPage4: 'u32',
  aOff4: 'u32',
  btP: 'u32',
  btOff: 'u32',
  rMax: 'u32',
  slot: 'u32',
  rank: 'u32',
  scale: 'f32',
});
type MF = (typeof LoraMergeParams.fields)[number][0];
const mergeKernel: Kernel<MF> = { name: 'lora_merge', code: LoraMergeParams.wgsl + WGSL['lora.merge'], params: LoraMergeParams };

export interface LoraMergeArgs {
  /** f32 weight part [partRows, K]. */
  W: GPUBuffer;
  partRowStart: number;
  partRows: number;
  bank: LoraBank;
  /** Module of the bank (index into bank.outDims; default 0). */
  module?: number;
  tables: LoraTables;
  slot: number;
  rank: number;
  /** scale = +scaling to merge, −scaling to unmerge (not bit-exact; keep a copy of W for exact restore). */
  scale: number;
  /** First row of this module inside the (possibly fused) weight. */
  rowOff: number;
}

/** W[rows of this module in this part] += scale · B·A (f32 weights only). */
export function loraMerge(rt: Runtime, a: LoraMergeArgs): void {
  const K = a.bank.inDim;
  const m = a.module ?? 0;
  const outDim = a.bank.outDims[m];
  if (outDim === undefined) throw new Error(`loraMerge: module ${m} outside the bank's ${a.bank.outDims.length}`);
  const L = bankLayout(K, a.bank.outDims);
  if (a.W.size < a.partRows * K * 4) throw new Error(`loraMerge: W (${a.W.size} B) smaller than ${a.partRows}×${K} f32`);
  if (a.rank > a.tables.rMax) throw new Error(`loraMerge: rank ${a.rank} > rMax ${a.tables.rMax}`);
  rt.dispatch(mergeKernel, {
    params: {
      K, outDim, rowOff: a.rowOff, partRowStart: a.partRowStart, partRows: a.partRows,
      aPage4: L.aPage / 4, aOff4: (m * L.inP) / 4, btP: L.btPage, btOff: L.btCol[m]!, rMax: a.tables.rMax, slot: a.slot, rank: a.rank, scale: a.scale,
    },
    buffers: [a.W, a.bank.A, a.bank.Bt, a.tables.pages],
    workgroups: rt.grid(Math.ceil((outDim * Math.ceil(K / 4)) / 64)),
  });
}
