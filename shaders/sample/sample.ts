// Token sampling on the GPU (host side). WGSL: shaders/sample.wgsl · reference: shaders/sample.ref.ts · check: shaders/sample.check.ts
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { reductionKernels, resolveVariant, type ReductionVariant } from '../lib/reduce.ts';
import { maskWords, withTokenMask, type TokenMaskBuffers } from '../lib/token-mask.ts';

export const SampleParamsLayout = defineParams('SampleParams', { rows: 'u32', vocab: 'u32', row_stride: 'u32', chunk: 'u32', phase: 'u32', ps: 'u32' });
// 64: SwiftShader's compile time of main_radix grows with the workgroup arrays (16 × WG bins).
const WG = 64;
const kernels = reductionKernels('sample', SampleParamsLayout, withTokenMask(WGSL.sample, false, 8), WG);
// Masked variant: + bindings 8 (mask bits) and 9 (per-row word offsets), see shaders/lib/token-mask.ts.
const maskedKernels = reductionKernels('sample_masked', SampleParamsLayout, withTokenMask(WGSL.sample, true, 8), WG);

/** Per-row sampling parameters (HF generate semantics). */
export interface SampleParams {
  /** <= 0: greedy (argmax after the repetition penalty). */
  temperature: number;
  /** 0 (or >= vocab): disabled. */
  topK?: number;
  /** >= 1: disabled. */
  topP?: number;
  /** 1: disabled. HF semantics: logit < 0 → logit * penalty, else logit / penalty. */
  repetitionPenalty?: number;
  /** Seed of the row's random stream (u32). */
  seed?: number;
  /** Draw counter (u32), e.g. the number of tokens generated so far: (seed, step) → one uniform. */
  step?: number;
  /** The row's context tokens for the repetition penalty: history[historyOffset .. + historyLength). */
  historyOffset?: number;
  historyLength?: number;
}

/** Bytes per row in the params buffer: {f32 temperature, u32 topK, f32 topP, f32 penalty, u32 seed, u32 step, u32 histOffset, u32 histLength}. */
export const SAMPLE_ROW_BYTES = 32;

/** Packs per-row SampleParams into the layout the kernel reads (upload with rt.upload / rt.write). */
export function packSampleParams(rows: SampleParams[]): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(1, rows.length) * SAMPLE_ROW_BYTES);
  const v = new DataView(buf);
  rows.forEach((r, i) => {
    const o = i * SAMPLE_ROW_BYTES;
    v.setFloat32(o, r.temperature, true);
    v.setUint32(o + 4, r.topK ?? 0, true);
    v.setFloat32(o + 8, r.topP ?? 1, true);
    v.setFloat32(o + 12, r.repetitionPenalty ?? 1, true);
    v.setUint32(o + 16, (r.seed ?? 0) >>> 0, true);
    v.setUint32(o + 20, (r.step ?? 0) >>> 0, true);
    v.setUint32(o + 24, r.historyOffset ?? 0, true);
    v.setUint32(o + 28, r.historyLength ?? 0, true);
  });
  return buf;
}

/** PCG hash (32-bit), identical to `pcg` in shaders/sample.wgsl. */
export function pcgHash(x: number): number {
  const state = (Math.imul(x >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The uniform in [0, 1) the kernel draws for (seed, step): 24 bits, exact in f32 and f64. */
export function sampleUniform(seed: number, step: number): number {
  return (pcgHash((pcgHash(seed >>> 0) + (step >>> 0)) >>> 0) >>> 8) / 16777216;
}

export interface SampleOptions {
  /** Elements between rows of `logits` (default vocab). */
  rowStride?: number;
  /** u32 token ids; each row reads history[historyOffset .. historyOffset + historyLength). Required when any row has historyLength > 0 and a penalty. */
  history?: GPUBuffer;
  variant?: ReductionVariant;
  /**
   * The SampleParams the params buffer was packed from (optional). When given, phases that no row
   * uses are not dispatched: all-greedy batches run 1 dispatch instead of 28, temperature-only
   * batches 10. Must describe exactly the rows in `params`.
   */
  rowParams?: readonly SampleParams[];
  /**
   * Grammar masks (shaders/lib/token-mask.ts): rows with a mask sample only among their allowed
   * tokens (the others read as -inf logits); the masked kernel variant runs only when given.
   */
  mask?: TokenMaskBuffers;
}

/**
 * Samples one token per row into out (u32[rows]): repetition penalty → greedy (temperature <= 0)
 * or temperature → top-k → top-p → seeded draw (see shaders/sample.wgsl for the exact procedure
 * and shaders/sample.ref.ts for its float64 reference). `params` holds packSampleParams(rows).
 * Uses pooled scratch: rows × vocab f32 (penalized logits) and rows × 3 × vocab u32 (compacted sets).
 */
export function sample(
  rt: Runtime,
  logits: GPUBuffer,
  rows: number,
  vocab: number,
  params: GPUBuffer,
  out: GPUBuffer,
  opts: SampleOptions = {},
): void {
  const rowStride = opts.rowStride ?? vocab;
  if (vocab <= 0 || rowStride < vocab) throw new Error(`sample: bad vocab ${vocab} / rowStride ${rowStride}`);
  if (rows === 0) return;
  if (logits.size < ((rows - 1) * rowStride + vocab) * 4) throw new Error('sample: logits too small');
  if (params.size < rows * SAMPLE_ROW_BYTES) throw new Error(`sample: params holds ${Math.floor(params.size / SAMPLE_ROW_BYTES)} rows, need ${rows} (packSampleParams)`);
  if (out.size < rows * 4) throw new Error('sample: out too small');
  const listBytes = rows * 3 * vocab * 4;
  const maxBinding = rt.device.limits.maxStorageBufferBindingSize;
  if (listBytes > maxBinding) throw new Error(`sample: ${rows} rows × vocab ${vocab} need ${listBytes} bytes of list scratch, over maxStorageBufferBindingSize ${maxBinding}; sample fewer rows per call`);
  if (opts.rowParams && !opts.history && opts.rowParams.some((r) => (r.historyLength ?? 0) > 0 && (r.repetitionPenalty ?? 1) !== 1)) {
    throw new Error('sample: a row has a repetition penalty and historyLength > 0 but no opts.history buffer was given');
  }
  const scratch = rt.acquire(rows * vocab * 4);
  const state = rt.acquire(rows * 16 * 4);
  const lists = rt.acquire(listBytes);
  const history = opts.history ?? rt.acquire(16);
  const variant = resolveVariant(rt, opts.variant);
  const mask = opts.mask;
  if (mask && mask.rowOffsets.size < rows * 4) throw new Error(`sample: mask rowOffsets holds ${mask.rowOffsets.size / 4} rows, need ${rows}`);
  if (mask && mask.bits.size < maskWords(vocab) * 4) throw new Error('sample: mask bits smaller than one row');
  const buffers = mask ? [logits, params, history, scratch, out, state, lists, mask.bits, mask.rowOffsets] : [logits, params, history, scratch, out, state, lists];
  const K = mask ? maskedKernels : kernels;
  const workgroups = rt.grid(rows);
  const base = { rows, vocab, row_stride: rowStride, chunk: Math.ceil(vocab / WG), phase: 0, ps: 0 };
  rt.dispatch(K(variant, 'main_prep'), { params: base, buffers, workgroups });
  // main_radix / main_select use no subgroup operations: one pipeline for both variants.
  // Phases whose rows all skip them return at once (one uniform check per workgroup); with
  // opts.rowParams they are not dispatched at all.
  const rp = opts.rowParams;
  if (rp && rp.length !== rows) throw new Error(`sample: rowParams has ${rp.length} rows, expected ${rows}`);
  const sampled = rp?.filter((r) => r.temperature > 0);
  const need = [
    !sampled || sampled.some((r) => (r.topK ?? 0) > 0 && (r.topK ?? 0) < vocab),
    !sampled || sampled.some((r) => Math.fround(r.topP ?? 1) < 1),
    !sampled || sampled.length > 0,
  ];
  for (let phase = 0; phase < 3; phase++) {
    if (!need[phase]) continue;
    for (let ps = 0; ps < 8; ps++) {
      rt.dispatch(K('plain', 'main_radix'), { params: { ...base, phase, ps }, buffers, workgroups });
      // After pass 2 the 12-bit key prefix (sign, exponent, 3 mantissa bits) is known: passes
      // 3..7 and the select scan only the elements that match it.
      if (ps === 2) rt.dispatch(K('plain', 'main_compact'), { params: { ...base, phase, ps: 2 }, buffers, workgroups });
    }
    rt.dispatch(K('plain', 'main_select'), { params: { ...base, phase }, buffers, workgroups });
    if (phase < 2) rt.dispatch(K('plain', 'main_compact'), { params: { ...base, phase, ps: 0 }, buffers, workgroups });
  }
  rt.release(scratch);
  rt.release(state);
  rt.release(lists);
  if (history !== opts.history) rt.release(history);
}
