// RMSNorm (host side). WGSL: shaders/rmsnorm.wgsl · reference: shaders/rmsnorm.ref.ts · check: shaders/rmsnorm.check.ts
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { reductionKernels, resolveVariant, type ReductionVariant } from '../lib/reduce.ts';

export const RmsNormParams = defineParams('RmsNormParams', { rows: 'u32', dim: 'u32', eps: 'f32' });
const WG = 64;
const kernels = reductionKernels('rmsnorm', RmsNormParams, WGSL.rmsnorm, WG);

/** Rows at or below this dim use one invocation per row (no barriers) unless `mode` says otherwise. */
export const RMSNORM_ROWS_MAX_DIM = 256;

/**
 * Default mode. Measured on SwiftShader (2 cores): a workgroup per row costs ~0.25 ms of barrier
 * scheduling per row (128 rows × 576: 27-37 ms vs 9 ms one-invocation-per-row), so CPU adapters
 * use 'row' except for a few long rows (1 row × 576: 0.8 vs 1.6 ms). GPUs: 'row' up to dim 256.
 */
export function rmsnormMode(isCpu: boolean, rows: number, dim: number): 'row' | 'workgroup' {
  if (dim <= RMSNORM_ROWS_MAX_DIM) return 'row';
  return isCpu && rows >= 4 ? 'row' : 'workgroup';
}

export interface RmsNormOptions {
  /** 'row' = one invocation per row; 'workgroup' = one workgroup per row. Default: rmsnormMode(). */
  mode?: 'row' | 'workgroup';
  /** Reduction variant for 'workgroup' mode (default: subgroups when the device has them). */
  variant?: ReductionVariant;
}

/**
 * out[r, :] = x[r, :] * rsqrt(mean(x[r, :]²) + eps) * weight, for `rows` rows of `dim` f32.
 * `out` must be a different buffer from `x` (WebGPU forbids binding one buffer as both
 * read-only and writable storage in one dispatch).
 */
export function rmsnorm(
  rt: Runtime,
  x: GPUBuffer,
  weight: GPUBuffer,
  out: GPUBuffer,
  rows: number,
  dim: number,
  eps: number,
  opts: RmsNormOptions = {},
): void {
  if (!(rows >= 0 && dim > 0) || !Number.isInteger(rows) || !Number.isInteger(dim)) throw new Error(`rmsnorm: bad shape rows=${rows} dim=${dim}`);
  if (x === out) throw new Error('rmsnorm: out must not alias x');
  if (x.size < rows * dim * 4 || out.size < rows * dim * 4 || weight.size < dim * 4) throw new Error('rmsnorm: buffer too small');
  if (rows === 0) return;
  const mode = opts.mode ?? rmsnormMode(rt.info.isCpu, rows, dim);
  const variant = resolveVariant(rt, opts.variant);
  const params = { rows, dim, eps };
  if (mode === 'row') {
    rt.dispatch(kernels(variant, 'main_rows'), { params, buffers: [x, weight, out], workgroups: rt.grid(Math.ceil(rows / 64)) });
  } else {
    rt.dispatch(kernels(variant), { params, buffers: [x, weight, out], workgroups: rt.grid(rows) });
  }
}
