// Row argmax (host side). WGSL: shaders/argmax.wgsl · reference: shaders/argmax.ref.ts · check: shaders/argmax.check.ts
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { reductionKernels, resolveVariant, type ReductionVariant } from '../lib/reduce.ts';

export const ArgmaxParams = defineParams('ArgmaxParams', { rows: 'u32', vocab: 'u32', row_stride: 'u32' });
const kernels = reductionKernels('argmax', ArgmaxParams, WGSL.argmax, 128);

export interface ArgmaxOptions {
  /** Elements between rows of `logits` (default vocab). */
  rowStride?: number;
  variant?: ReductionVariant;
}

/** out[r] (u32) = index of the max of row r (ties → lowest index, like a CPU argmax; NaNs ignored). */
export function argmax(rt: Runtime, logits: GPUBuffer, rows: number, vocab: number, out: GPUBuffer, opts: ArgmaxOptions = {}): void {
  const rowStride = opts.rowStride ?? vocab;
  if (vocab <= 0 || rowStride < vocab) throw new Error(`argmax: bad vocab ${vocab} / rowStride ${rowStride}`);
  if (rows === 0) return;
  if (logits.size < ((rows - 1) * rowStride + vocab) * 4 || out.size < rows * 4) throw new Error('argmax: buffer too small');
  rt.dispatch(kernels(resolveVariant(rt, opts.variant)), { params: { rows, vocab, row_stride: rowStride }, buffers: [logits, out], workgroups: rt.grid(rows) });
}
