// RoPE backward (host side). WGSL: shaders/rope/rope.backward.wgsl (entry point appended to
// rope.wgsl) · reference: rope.ref.ts (ropeBackwardRef) · checks: rope.backward.check.ts ·
// finite differences: rope.backward.test.ts.
import { WGSL } from '../lib/wgsl.gen.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import { RopeParams, type RopeOptions } from './rope.ts';
import { LorafleetError, type ErrorCode } from '../lib/errors.ts';

/** Bad arguments from the calling code ('internal': a bug) or from user settings ('invalid_request'). */
const err = (m: string, code: ErrorCode = 'internal') => new LorafleetError(m, code);

type F = (typeof RopeParams.fields)[number][0];
const kernel: Kernel<F> = { name: 'rope_backward', code: RopeParams.wgsl + WGSL.rope + WGSL['rope.backward'], entryPoint: 'main_backward', params: RopeParams };

/**
 * In place on the gradient dx (same layout as rope(): tokens rows, numHeads heads of headDim at
 * dx[t * rowStride + colOffset + h * headDim + j]): dx ← Rᵀ(θ) · dx, the adjoint of rope().
 */
export function ropeBackward(
  rt: Runtime, dx: GPUBuffer, positions: GPUBuffer, invFreq: GPUBuffer, tokens: number, numHeads: number, headDim: number, opts: RopeOptions = {},
): void {
  if (headDim % 2 || headDim <= 0) throw err(`ropeBackward: headDim ${headDim} must be even`);
  const rowStride = opts.rowStride ?? numHeads * headDim;
  const colOffset = opts.colOffset ?? 0;
  if (colOffset + numHeads * headDim > rowStride) throw err(`ropeBackward: colOffset ${colOffset} + ${numHeads}x${headDim} exceeds rowStride ${rowStride}`);
  if (tokens > 0 && dx.size < ((tokens - 1) * rowStride + colOffset + numHeads * headDim) * 4) throw err('ropeBackward: dx too small');
  if (positions.size < tokens * 4 || invFreq.size < (headDim / 2) * 4) throw err('ropeBackward: positions/invFreq too small');
  const n = tokens * numHeads * (headDim / 2);
  if (n === 0) return;
  rt.dispatch(kernel, {
    params: { tokens, heads: numHeads, head_dim: headDim, row_stride: rowStride, col_offset: colOffset },
    buffers: [dx, positions, invFreq],
    workgroups: rt.grid(Math.ceil(n / 64)),
  });
}
