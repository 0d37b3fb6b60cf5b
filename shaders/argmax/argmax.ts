// Row argmax (host side). WGSL: shaders/argmax.wgsl · reference: shaders/argmax.ref.ts · check: shaders/argmax.check.ts
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { reductionKernels, resolveVariant, type ReductionVariant } from '../lib/reduce.ts';
import { maskWords, withTokenMask, type TokenMaskBuffers } from '../lib/token-mask.ts';

export const ArgmaxParams = defineParams('ArgmaxParams', { rows: 'u32', vocab: 'u32', row_stride: 'u32' });
const kernels = reductionKernels('argmax', ArgmaxParams, withTokenMask(WGSL.argmax, false, 3), 128);
// Masked variant: + bindings 3 (mask bits) and 4 (per-row word offsets), see shaders/lib/token-mask.ts.
const maskedKernels = reductionKernels('argmax_masked', ArgmaxParams, withTokenMask(WGSL.argmax, true, 3), 128);

export interface ArgmaxOptions {
  /** Elements between rows of `logits` (default vocab). */
  rowStride?: number;
  variant?: ReductionVariant;
  /** Grammar masks: a masked row's argmax is taken over its allowed tokens only. */
  mask?: TokenMaskBuffers;
}

/** out[r] (u32) = index of the max of row r (ties → lowest index, like a CPU argmax; NaNs ignored). */
export function argmax(rt: Runtime, logits: GPUBuffer, rows: number, vocab: number, out: GPUBuffer, opts: ArgmaxOptions = {}): void {
  const rowStride = opts.rowStride ?? vocab;
  if (vocab <= 0 || rowStride < vocab) throw new Error(`argmax: bad vocab ${vocab} / rowStride ${rowStride}`);
  if (rows === 0) return;
  if (logits.size < ((rows - 1) * rowStride + vocab) * 4 || out.size < rows * 4) throw new Error('argmax: buffer too small');
  const m = opts.mask;
  if (m && (m.rowOffsets.size < rows * 4 || m.bits.size < maskWords(vocab) * 4)) throw new Error('argmax: mask buffers too small');
  const params = { rows, vocab, row_stride: rowStride };
  const v = resolveVariant(rt, opts.variant);
  if (m) rt.dispatch(maskedKernels(v), { params, buffers: [logits, out, m.bits, m.rowOffsets], workgroups: rt.grid(rows) });
  else rt.dispatch(kernels(v), { params, buffers: [logits, out], workgroups: rt.grid(rows) });
}
