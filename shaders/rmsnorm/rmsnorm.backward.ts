// RMSNorm backward (host side). WGSL: shaders/rmsnorm/rmsnorm.backward.wgsl · reference:
// rmsnorm.ref.ts (rmsnormBackwardRef) · checks: rmsnorm.backward.check.ts · finite differences:
// rmsnorm.backward.test.ts.
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import { LorafleetError, type ErrorCode } from '../lib/errors.ts';

/** Bad arguments from the calling code ('internal': a bug) or from user settings ('invalid_request'). */
const err = (m: string, code: ErrorCode = 'internal') => new LorafleetError(m, code);

export const RmsNormBwdParams = defineParams('RmsNormBwdParams', { rows: 'u32', dim: 'u32', eps: 'f32', flags: 'u32' });
type F = (typeof RmsNormBwdParams.fields)[number][0];
const code = RmsNormBwdParams.wgsl + WGSL['rmsnorm.backward'];
const kDx: Kernel<F> = { name: 'rmsnorm_backward', code, params: RmsNormBwdParams };
const kDw: Kernel<F> = { name: 'rmsnorm_backward_dw', code, entryPoint: 'main_dw', params: RmsNormBwdParams };

export interface RmsNormBackwardArgs {
  /** Saved forward input x [rows, dim]. */
  x: GPUBuffer;
  /** Norm weight w [dim]. */
  w: GPUBuffer;
  /** Upstream gradient dy [rows, dim]. */
  dy: GPUBuffer;
  /** Input gradient dx [rows, dim] (must not alias x or dy). */
  dx: GPUBuffer;
  rows: number;
  dim: number;
  eps: number;
  /** dx += ... (the residual stream's gradient) instead of dx = ... */
  accumulate?: boolean;
  /** Scratch rstd [rows] (written); from the pool when omitted. */
  rstd?: GPUBuffer;
  /** dw [dim]: when given, the weight gradient too. */
  dw?: GPUBuffer;
  accumulateDw?: boolean;
}

/** dx (+)= ∂L/∂x of y = rmsnorm(x)·w given dy; optionally dw (+)= ∂L/∂w. */
export function rmsnormBackward(rt: Runtime, g: RmsNormBackwardArgs): void {
  const { rows, dim } = g;
  if (!(Number.isInteger(rows) && rows >= 0 && Number.isInteger(dim) && dim > 0)) throw err(`rmsnormBackward: bad shape rows=${rows} dim=${dim}`);
  if (g.dx === g.x || g.dx === g.dy) throw err('rmsnormBackward: dx must not alias x or dy');
  const n = rows * dim * 4;
  if (g.x.size < n || g.dy.size < n || g.dx.size < n || g.w.size < dim * 4) throw err('rmsnormBackward: buffer too small');
  if (g.dw && g.dw.size < dim * 4) throw err('rmsnormBackward: dw too small');
  if (rows === 0) return;
  const rstd = g.rstd ?? rt.acquire(rows * 4);
  rt.dispatch(kDx, { params: { rows, dim, eps: g.eps, flags: g.accumulate ? 1 : 0 }, buffers: [g.x, g.w, g.dy, g.dx, rstd], workgroups: rt.grid(Math.ceil(rows / 64)) });
  if (g.dw) rt.dispatch(kDw, { params: { rows, dim, eps: g.eps, flags: g.accumulateDw ? 1 : 0 }, buffers: [g.x, g.w, g.dy, g.dw, rstd], workgroups: rt.grid(Math.ceil(dim / 64)) });
  if (!g.rstd) rt.release(rstd);
}
