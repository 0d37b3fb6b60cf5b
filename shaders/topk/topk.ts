// Row top-k (host side). WGSL: shaders/topk.wgsl · reference: shaders/topk.ref.ts · check: shaders/topk.check.ts
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { reductionKernels, resolveVariant, type ReductionVariant } from '../lib/reduce.ts';

export const TopkParams = defineParams('TopkParams', { rows: 'u32', vocab: 'u32', row_stride: 'u32', k: 'u32' });
const kernels = reductionKernels('topk', TopkParams, WGSL.topk, 128);

export interface TopkOptions {
  rowStride?: number;
  variant?: ReductionVariant;
}

/**
 * outValues f32[rows*k], outIndices u32[rows*k]: per row the k largest logits sorted descending,
 * ties by lowest index; NaNs are never selected (missing picks: -inf / 0xffffffff).
 * Cost is k passes over the row (meant for small k: logprob reports, candidates).
 */
export function topk(
  rt: Runtime,
  logits: GPUBuffer,
  rows: number,
  vocab: number,
  k: number,
  outValues: GPUBuffer,
  outIndices: GPUBuffer,
  opts: TopkOptions = {},
): void {
  const rowStride = opts.rowStride ?? vocab;
  if (vocab <= 0 || rowStride < vocab || !(k >= 1) || !Number.isInteger(k)) throw new Error(`topk: bad vocab ${vocab} / k ${k} / rowStride ${rowStride}`);
  if (rows === 0) return;
  if (logits.size < ((rows - 1) * rowStride + vocab) * 4 || outValues.size < rows * k * 4 || outIndices.size < rows * k * 4) throw new Error('topk: buffer too small');
  rt.dispatch(kernels(resolveVariant(rt, opts.variant)), {
    params: { rows, vocab, row_stride: rowStride, k },
    buffers: [logits, outValues, outIndices],
    workgroups: rt.grid(rows),
  });
}
