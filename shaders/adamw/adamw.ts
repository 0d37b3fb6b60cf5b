// AdamW and global-norm gradient clipping (host side), as torch.optim.AdamW and
// torch.nn.utils.clip_grad_norm_. WGSL: shaders/adamw/adamw.wgsl, grad_norm.wgsl · reference:
// adamw.ref.ts · checks: adamw.check.ts · hand/PyTorch numbers: adamw.test.ts, README.md.
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import { LorafleetError, type ErrorCode } from '../lib/errors.ts';

/** Bad arguments from the calling code ('internal': a bug) or from user settings ('invalid_request'). */
const err = (m: string, code: ErrorCode = 'internal') => new LorafleetError(m, code);

export const AdamWParams = defineParams('AdamWParams', {
  n: 'u32', offset: 'u32', gradOffset: 'u32', flags: 'u32',
  decay: 'f32', beta1: 'f32', one_minus_beta1: 'f32', beta2: 'f32', one_minus_beta2: 'f32',
  bc2_sqrt: 'f32', eps: 'f32', step_size: 'f32',
});
type FA = (typeof AdamWParams.fields)[number][0];
const adamwKernel: Kernel<FA> = { name: 'adamw', code: AdamWParams.wgsl + WGSL.adamw, params: AdamWParams };

export const GradNormParams = defineParams('GradNormParams', { n: 'u32', offset: 'u32', outBase: 'u32', max_norm: 'f32' });
type FG = (typeof GradNormParams.fields)[number][0];
const gnCode = GradNormParams.wgsl + WGSL.grad_norm;
const sumsqKernel: Kernel<FG> = { name: 'grad_norm_sumsq', code: gnCode, params: GradNormParams };
const finalizeKernel: Kernel<FG> = { name: 'grad_norm_finalize', code: gnCode, entryPoint: 'finalize', params: GradNormParams };
export const GRAD_NORM_CHUNK = 256;

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** One tensor (or a slice of one flat buffer) the optimizer updates: param, grad, exp_avg, exp_avg_sq. */
export interface AdamWTensor {
  param: GPUBuffer;
  grad: GPUBuffer;
  /** exp_avg, exp_avg_sq: same layout as param (zero-initialised before step 1). */
  m: GPUBuffer;
  v: GPUBuffer;
  /** Elements to update. */
  n: number;
  /** Element offset into param, m and v (default 0). */
  offset?: number;
  /** Element offset into grad (default `offset`). */
  gradOffset?: number;
}

const ones = new WeakMap<Runtime, GPUBuffer>();
function noClip(rt: Runtime): GPUBuffer {
  let b = ones.get(rt);
  if (!b) ones.set(rt, (b = rt.upload(new Float32Array([0, 1, 0, 0]), 'adamw-no-clip')));
  return b;
}

/** The f32 scalars of step t (1-based), formed in float64 like torch's python floats. */
export function adamwScalars(h: AdamWHyper, step: number) {
  if (!(Number.isInteger(step) && step >= 1)) throw err(`adamw: step must be an integer >= 1, got ${step}`);
  const bc1 = 1 - h.beta1 ** step, bc2 = 1 - h.beta2 ** step;
  return {
    decay: 1 - h.lr * h.weightDecay, beta1: h.beta1, one_minus_beta1: 1 - h.beta1, beta2: h.beta2, one_minus_beta2: 1 - h.beta2,
    bc2_sqrt: Math.sqrt(bc2), eps: h.eps, step_size: h.lr / bc1,
  };
}

/**
 * One AdamW step (t = `step`, 1-based, the count after incrementing as torch does) on each tensor.
 * `clip`: the [total_norm, clip_coef] buffer written by gradNorm(); the gradient is multiplied
 * by clip[1] first (clip_grad_norm_ scales grads in place; here the grads are left as they are).
 */
export function adamwStep(rt: Runtime, tensors: AdamWTensor[], h: AdamWHyper, step: number, clip?: GPUBuffer): void {
  const s = adamwScalars(h, step);
  for (const t of tensors) {
    const off = t.offset ?? 0, goff = t.gradOffset ?? off;
    if (!(Number.isInteger(t.n) && t.n >= 0)) throw err(`adamw: bad n=${t.n}`);
    if ((off + t.n) * 4 > Math.min(t.param.size, t.m.size, t.v.size) || (goff + t.n) * 4 > t.grad.size) throw err('adamw: buffer too small for n + offset');
    if (t.param === t.grad || t.m === t.v || t.param === t.m || t.param === t.v) throw err('adamw: param, grad, m and v must be different buffers');
    if (t.n === 0) continue;
    rt.dispatch(adamwKernel, {
      params: { n: t.n, offset: off, gradOffset: goff, flags: clip ? 1 : 0, ...s },
      buffers: [t.param, t.grad, t.m, t.v, clip ?? noClip(rt)],
      workgroups: rt.grid(Math.ceil(t.n / 64)),
    });
  }
}

export interface GradSlice {
  buffer: GPUBuffer;
  n: number;
  offset?: number;
}

/**
 * Global L2 norm over every gradient slice (torch.nn.utils.clip_grad_norm_, norm_type 2) into
 * out[0] = total_norm (before clipping: the logged grad_norm) and out[1] = clip_coef_clamped =
 * min(max_norm / (total_norm + 1e-6), 1) (1 when maxNorm is 0: clipping off). `out` holds ≥ 2
 * floats; pass it to adamwStep(). One dispatch per slice plus one: keep grads in one flat buffer.
 */
export function gradNorm(rt: Runtime, grads: GradSlice[], maxNorm: number, out: GPUBuffer): void {
  if (!(maxNorm >= 0)) throw err(`gradNorm: max_norm must be >= 0, got ${maxNorm}`, 'invalid_request');
  if (out.size < 8) throw err('gradNorm: out must hold 2 floats');
  let count = 0;
  for (const g of grads) count += Math.ceil(g.n / GRAD_NORM_CHUNK);
  const partial = rt.acquire(Math.max(1, count) * 4);
  let base = 0;
  for (const g of grads) {
    const off = g.offset ?? 0;
    if ((off + g.n) * 4 > g.buffer.size) throw err('gradNorm: slice exceeds its buffer');
    const chunks = Math.ceil(g.n / GRAD_NORM_CHUNK);
    if (chunks === 0) continue;
    rt.dispatch(sumsqKernel, { params: { n: g.n, offset: off, outBase: base, max_norm: maxNorm }, buffers: [g.buffer, partial], workgroups: rt.grid(Math.ceil(chunks / 64)) });
    base += chunks;
  }
  if (base === 0) rt.write(partial, new Float32Array([0]));
  rt.dispatch(finalizeKernel, { params: { n: Math.max(base, 1), offset: 0, outBase: 0, max_norm: maxNorm }, buffers: [partial, out], workgroups: [1] });
  rt.release(partial);
}
