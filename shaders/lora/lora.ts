// Multi-LoRA SGMV / BGMV (host side). WGSL: shaders/lora.{common,shrink,expand}.wgsl ·
// reference: shaders/lora.ref.ts · checks: shaders/lora.check.ts · pool/layout: engine/lora/pool.ts.
//
//   out[row, outOff + j] += scale_a · Σ_k (x[row] · A_a[k]) · B_a[j, k]   for rows with adapter a
//
// A step's rows come as segments (start, len, slot) of consecutive rows sharing an adapter slot;
// rows in no segment (base model) are never touched. The rows of each adapter (all its segments, in
// row order: a prefill chunk, or decode rows scattered over the batch) are cut into SGMV tiles of up
// to 4 rows that share every A / B load, when the adapter has ≥ SGMV_MIN_ROWS rows in the step; an
// adapter with fewer rows runs as BGMV (one (row, slot) item per row). Empty segments produce no work.
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';

export const LoraParams = defineParams('LoraParams', {
  nItems: 'u32',
  inDim: 'u32',
  xStride: 'u32',
  /** A row stride in vec4 (inP / 4). */
  inP4: 'u32',
  outDim: 'u32',
  outStride: 'u32',
  outOff: 'u32',
  /** Bt row stride in vec4 (outP / 4). */
  outP4: 'u32',
  rMax: 'u32',
  /** Largest rank used in this step (≤ rMax): shrink dispatches ceil(kSpan / 4) lane groups per item. */
  kSpan: 'u32',
  slotStride: 'u32',
  layer: 'u32',
  moduleBit: 'u32',
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

export const ceil4 = (n: number): number => Math.ceil(n / 4) * 4;

export interface LoraSegment {
  start: number;
  len: number;
  /** Slot in the adapter tables (pages / slotInfo). */
  slot: number;
}

/** Host-side work lists for one step (uploaded once per step, reused by every (layer, module)). */
export interface LoraItemLists {
  /** (row, slot) pairs. */
  bgmv: Uint32Array;
  /** (slot, nRows, row0, row1, row2, row3, 0, 0) per tile. */
  sgmv: Uint32Array;
}

export function buildItems(segments: readonly LoraSegment[], rows: number, sgmvMinRows = SGMV_MIN_ROWS): LoraItemLists {
  const b: number[] = [];
  const s: number[] = [];
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
  for (const [slot, list] of bySlot) {
    if (list.length >= sgmvMinRows) {
      for (let i = 0; i < list.length; i += SGMV_TILE) {
        const n = Math.min(SGMV_TILE, list.length - i);
        const r0 = list[i]!;
        s.push(slot, n, r0, n > 1 ? list[i + 1]! : r0, n > 2 ? list[i + 2]! : r0, n > 3 ? list[i + 3]! : r0, 0, 0);
      }
    } else {
      for (const r of list) b.push(r, slot);
    }
  }
  return { bgmv: Uint32Array.from(b), sgmv: Uint32Array.from(s) };
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

/** GPU storage of one (layer, module) for all resident adapters: pages of rank rows. */
export interface LoraBank {
  /** [pages, ceil4(inDim)] f32 */
  A: GPUBuffer;
  /** [pages, ceil4(outDim)] f32 (Bᵀ rows) */
  Bt: GPUBuffer;
  inDim: number;
  outDim: number;
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

/** Uploaded item lists + the shrink scratch of one step. */
export interface LoraStepBuffers {
  bgmv: { buffer: GPUBuffer; count: number } | null;
  sgmv: { buffer: GPUBuffer; count: number } | null;
  /** [rows, rMax] f32 scratch for the shrink result. */
  t: GPUBuffer;
  rows: number;
  /** Largest rank of an adapter used in this step (shrink lanes per item). */
  kSpan: number;
}

export function uploadItems(rt: Runtime, items: LoraItemLists, rows: number, rMax: number, kSpan = rMax): LoraStepBuffers {
  if (!(kSpan >= 1 && kSpan <= rMax)) throw new Error(`lora: kSpan ${kSpan} outside [1, rMax = ${rMax}]`);
  const up = (a: Uint32Array, per: number) => {
    if (!a.length) return null;
    const buffer = rt.acquire(a.byteLength, undefined, 'lora-items');
    rt.write(buffer, a);
    return { buffer, count: a.length / per };
  };
  return { bgmv: up(items.bgmv, 2), sgmv: up(items.sgmv, 8), t: rt.acquire(Math.max(1, rows * rMax) * 4, undefined, 'lora-t'), rows, kSpan };
}

export function releaseItems(rt: Runtime, s: LoraStepBuffers): void {
  if (s.bgmv) rt.release(s.bgmv.buffer);
  if (s.sgmv) rt.release(s.sgmv.buffer);
  rt.release(s.t);
}

export interface LoraApplyArgs {
  x: GPUBuffer;
  out: GPUBuffer;
  bank: LoraBank;
  tables: LoraTables;
  step: LoraStepBuffers;
  layer: number;
  /** Bit of this module in the slotInfo layer masks. */
  moduleBit: number;
  xStride?: number;
  outStride?: number;
  outOff?: number;
}

/** Records shrink + expand (BGMV and/or SGMV) for one projection. */
export function loraApply(rt: Runtime, a: LoraApplyArgs): void {
  const { bank, tables, step } = a;
  const inDim = bank.inDim;
  const outDim = bank.outDim;
  const xStride = a.xStride ?? inDim;
  const outStride = a.outStride ?? outDim;
  const outOff = a.outOff ?? 0;
  if (xStride < inDim) throw new Error(`lora: xStride ${xStride} < inDim ${inDim}`);
  if (outOff + outDim > outStride) throw new Error(`lora: outColOffset ${outOff} + outDim ${outDim} exceeds out row stride ${outStride}`);
  if (a.x.size < step.rows * xStride * 4 - (xStride - inDim) * 4) throw new Error(`lora: x buffer (${a.x.size} B) smaller than ${step.rows} rows × stride ${xStride}`);
  if (a.out.size < ((step.rows - 1) * outStride + outOff + outDim) * 4) throw new Error(`lora: out buffer (${a.out.size} B) smaller than ${step.rows} rows × stride ${outStride}`);
  const base = {
    inDim,
    xStride,
    inP4: ceil4(inDim) / 4,
    outDim,
    outStride,
    outOff,
    outP4: ceil4(outDim) / 4,
    rMax: tables.rMax,
    kSpan: step.kSpan,
    slotStride: tables.slotStride,
    layer: a.layer,
    moduleBit: a.moduleBit,
  };
  const common = [tables.pages, tables.slotInfo];
  const lists: Array<[{ buffer: GPUBuffer; count: number } | null, Kernel<F>, Kernel<F>]> = [
    [step.bgmv, K.shrinkB, K.expandB],
    [step.sgmv, K.shrinkS, K.expandS],
  ];
  for (const [list, shrink, expand] of lists) {
    if (!list) continue;
    const params = { ...base, nItems: list.count };
    rt.dispatch(shrink, { params, buffers: [a.x, bank.A, ...common, list.buffer, step.t], workgroups: rt.grid(Math.ceil((list.count * Math.ceil(step.kSpan / 4)) / 64)) });
    rt.dispatch(expand, { params, buffers: [step.t, bank.Bt, ...common, list.buffer, a.out], workgroups: rt.grid(Math.ceil((list.count * base.outP4) / 64)) });
  }
}

// ---------------------------------------------------------------- merge (W += s·B·A)

export const LoraMergeParams = defineParams('LoraMergeParams', {
  K: 'u32',
  outDim: 'u32',
  rowOff: 'u32',
  partRowStart: 'u32',
  partRows: 'u32',
  inP: 'u32',
  outP: 'u32',
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
  const outDim = a.bank.outDim;
  if (a.W.size < a.partRows * K * 4) throw new Error(`loraMerge: W (${a.W.size} B) smaller than ${a.partRows}×${K} f32`);
  if (a.rank > a.tables.rMax) throw new Error(`loraMerge: rank ${a.rank} > rMax ${a.tables.rMax}`);
  rt.dispatch(mergeKernel, {
    params: {
      K, outDim, rowOff: a.rowOff, partRowStart: a.partRowStart, partRows: a.partRows,
      inP: ceil4(K), outP: ceil4(outDim), rMax: a.tables.rMax, slot: a.slot, rank: a.rank, scale: a.scale,
    },
    buffers: [a.W, a.bank.A, a.bank.Bt, a.tables.pages],
    workgroups: rt.grid(Math.ceil((outDim * Math.ceil(K / 4)) / 64)),
  });
}
