// Cross-entropy fused with lm_head, in row chunks (host side). The full [T, V] logits never exist:
// each chunk of rows computes its logits [Tc, V] (the forward matmul, any GpuWeight format), the
// per-token log-sum-exp and label log-prob, and — for the backward — turns the chunk's logits into
// dlogits in place and adds dlogits·W into dh (f32 weight parts). Tc is picked so the chunk fits a
// byte budget (default 32 MiB).
// WGSL: shaders/cross_entropy/cross_entropy.wgsl · reference: cross_entropy.ref.ts · checks:
// cross_entropy.check.ts · finite differences: cross_entropy.test.ts.
//
// Objectives choose the reduction through `coef` (f32 [T]): the kernel's gradient is that of
// −Σ_t coef[t] · logp[t]. Causal-LM / SFT mean over the micro-batch's non-ignored tokens (TRL/HF):
// coef = 1/N on non-ignored tokens (meanCoefficients); DPO/ORPO: coef[t] = −∂objective/∂logp[t]
// after a first pass without coef has given the summed completion log-probs.
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { reductionKernels, resolveVariant, type ReductionVariant } from '../lib/reduce.ts';
import type { GpuWeight } from '../matmul/weights.ts';
import { matmul } from '../matmul/matmul.ts';
import { linearBackwardInput } from '../matmul/matmul.backward.ts';
import { LorafleetError, type ErrorCode } from '../lib/errors.ts';

/** Bad arguments from the calling code ('internal': a bug) or from user settings ('invalid_request'). */
const err = (m: string, code: ErrorCode = 'internal') => new LorafleetError(m, code);

export const CrossEntropyParams = defineParams('CrossEntropyParams', { rows: 'u32', V: 'u32', t0: 'u32', flags: 'u32' });
type F = (typeof CrossEntropyParams.fields)[number][0];
const kernels = reductionKernels('cross_entropy', CrossEntropyParams, WGSL.cross_entropy, 64);

/**
 * Default mode: 'row' (one invocation per row, no barriers) on CPU adapters — barriers cost
 * ~0.25 ms per workgroup on SwiftShader (see rmsnorm.ts) — and for short rows; 'workgroup' (one
 * workgroup per row) on GPUs for vocabularies ≥ 1024, where a few hundred rows would otherwise
 * leave most of the device idle (reasoned, not measured here: no GPU).
 */
export function crossEntropyMode(isCpu: boolean, V: number): 'row' | 'workgroup' {
  return !isCpu && V >= 1024 ? 'workgroup' : 'row';
}

export const IGNORE_INDEX = -100;

const dummy = new WeakMap<Runtime, GPUBuffer>();
function noCoef(rt: Runtime): GPUBuffer {
  let b = dummy.get(rt);
  if (!b) dummy.set(rt, (b = rt.createBuffer(16, 'cross-entropy-no-coef')));
  return b;
}

/** coef for the HF/TRL causal-LM loss: 1/N on each of the N non-ignored labels (labels < 0 ignored), 0 elsewhere. */
export function meanCoefficients(labels: ArrayLike<number>, N?: number): Float32Array {
  let n = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] >= 0) n++;
  const d = N ?? n;
  return Float32Array.from(labels, (y) => (y >= 0 && d > 0 ? 1 / d : 0));
}

export interface LmHeadCrossEntropyArgs {
  /** Final hidden states h [T, Hd] (after the final norm). */
  h: GPUBuffer;
  /** lm_head W [V, Hd] (frozen). dh needs f32 parts. */
  w: GpuWeight;
  /** i32 [T]: target of row t (the caller applies HF's shift); < 0 (−100) = ignored. Must be < V. */
  labels: GPUBuffer;
  T: number;
  /** f32 [T] out: log-sum-exp of row t's logits. */
  lse: GPUBuffer;
  /** f32 [T] out: log p(label_t) (0 where ignored). Loss = −Σ coef·logp. */
  logp: GPUBuffer;
  /** f32 [T]: per-token gradient coefficients; with dh, the backward runs. */
  coef?: GPUBuffer;
  /** dh [T, Hd] out: ∂(−Σ coef·logp)/∂h. */
  dh?: GPUBuffer;
  accumulateDh?: boolean;
  /** Rows per chunk (default: as many as fit maxChunkBytes of logits). */
  rowChunk?: number;
  maxChunkBytes?: number;
  /** Row kernel: see crossEntropyMode() (default) ; `variant` for 'workgroup' (default: subgroups when present). */
  mode?: 'row' | 'workgroup';
  variant?: ReductionVariant;
}

/** Rows per chunk for a logits budget. */
export function crossEntropyRowChunk(V: number, T: number, maxChunkBytes = 32 << 20): number {
  return Math.max(1, Math.min(T, Math.floor(maxChunkBytes / (V * 4))));
}

export function lmHeadCrossEntropy(rt: Runtime, a: LmHeadCrossEntropyArgs): void {
  const { T, w } = a;
  const V = w.N, Hd = w.K;
  if (!(Number.isInteger(T) && T >= 0)) throw err(`lmHeadCrossEntropy: bad T=${T}`);
  if (T === 0) return;
  if (!!a.dh !== !!a.coef) throw err('lmHeadCrossEntropy: dh and coef go together');
  if (a.h.size < T * Hd * 4 || a.labels.size < T * 4 || a.lse.size < T * 4 || a.logp.size < T * 4) throw err('lmHeadCrossEntropy: h/labels/lse/logp too small');
  if (a.coef && a.coef.size < T * 4) throw err('lmHeadCrossEntropy: coef too small');
  if (a.dh && a.dh.size < T * Hd * 4) throw err('lmHeadCrossEntropy: dh too small');
  if (a.dh && w.format !== 'f32') throw err(`lmHeadCrossEntropy: dh through ${w.name} needs f32 weight parts (got ${w.format})`, 'invalid_request');
  const Tc = a.rowChunk ?? crossEntropyRowChunk(V, T, a.maxChunkBytes);
  if (!(Number.isInteger(Tc) && Tc >= 1)) throw err(`lmHeadCrossEntropy: bad rowChunk ${Tc}`);
  const mode = a.mode ?? crossEntropyMode(rt.info.isCpu, V);
  const variant = resolveVariant(rt, a.variant);
  const logits = rt.acquire(Math.min(Tc, T) * V * 4);
  const coef = a.coef ?? noCoef(rt); // unread without FLAG_GRAD
  for (let t0 = 0; t0 < T; t0 += Tc) {
    const rows = Math.min(Tc, T - t0);
    // logits[rows, V] = h[t0 : t0+rows] · Wᵀ
    matmul(rt, a.h, w, logits, rows, { xOffsetElems: t0 * Hd });
    const params = { rows, V, t0, flags: a.dh ? 1 : 0 };
    const buffers = [logits, a.labels, coef, a.lse, a.logp];
    if (mode === 'row') rt.dispatch(kernels('plain'), { params, buffers, workgroups: rt.grid(Math.ceil(rows / 64)) });
    else rt.dispatch(kernels(variant, 'main_wg'), { params, buffers, workgroups: rt.grid(rows) });
    // dh[t0 : t0+rows] (+)= dlogits[rows, V] · W[V, Hd]
    if (a.dh) linearBackwardInput(rt, logits, w, a.dh, rows, { dxOffset: t0 * Hd, accumulate: a.accumulateDh });
  }
  rt.release(logits);
}
