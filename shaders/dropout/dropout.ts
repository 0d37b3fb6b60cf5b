// Dropout (host side) for LoRA training (PEFT: lora_B(lora_A(dropout(x))) · scaling): inverted
// dropout whose mask is a hash of (seed, element index), so the backward regenerates it.
// WGSL: shaders/dropout/dropout.wgsl · reference: dropout.ref.ts · checks: dropout.check.ts ·
// finite differences: dropout.test.ts.
//
// The mask cannot equal PyTorch's (its CPU/CUDA generators are not reproducible here); what
// matches is the distribution (each element kept with probability 1 − p, scaled by 1/(1 − p))
// and the forward/backward consistency. Forward: xd = dropout(x); H = xd·Aᵀ; dA = dHᵀ·xd.
// Backward: dX += dropout(dH·A) with the same seed (the map is its own transpose).
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import { LorafleetError, type ErrorCode } from '../lib/errors.ts';

/** Bad arguments from the calling code ('internal': a bug) or from user settings ('invalid_request'). */
const err = (m: string, code: ErrorCode = 'internal') => new LorafleetError(m, code);

export const DropoutParams = defineParams('DropoutParams', { n: 'u32', seed: 'u32', offset: 'u32', threshold: 'u32', scale: 'f32', accumulate: 'u32' });
type F = (typeof DropoutParams.fields)[number][0];
const kernel: Kernel<F> = { name: 'dropout', code: DropoutParams.wgsl + WGSL.dropout, params: DropoutParams };

/** The u32 threshold the kernel compares hashes with: drop when hash < round(p·2^32). */
export function dropoutThreshold(p: number): number {
  if (!(p >= 0 && p < 1)) throw err(`dropout: p must be in [0, 1), got ${p}`, 'invalid_request');
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

export interface DropoutOptions {
  /** out += ... instead of out = ... */
  accumulate?: boolean;
  /** Element index of x[0] in the mask's index space (default 0), to drop a slice consistently. */
  offset?: number;
}

/**
 * out[i] (+)= x[i] · keep(seed, offset + i) / (1 − p), i < n. The backward of a dropout is the
 * same call on the gradient with the same seed and offset. out must not alias x.
 */
export function dropout(rt: Runtime, x: GPUBuffer, out: GPUBuffer, n: number, p: number, seed: number, opts: DropoutOptions = {}): void {
  if (!(Number.isInteger(n) && n >= 0)) throw err(`dropout: bad n=${n}`);
  if (!Number.isInteger(seed)) throw err(`dropout: seed must be an integer, got ${seed}`);
  if (x === out) throw err('dropout: out must not alias x');
  if (x.size < n * 4 || out.size < n * 4) throw err('dropout: buffer too small');
  const threshold = dropoutThreshold(p);
  if (n === 0) return;
  rt.dispatch(kernel, {
    params: { n, seed: seed >>> 0, offset: (opts.offset ?? 0) >>> 0, threshold, scale: 1 / (1 - p), accumulate: opts.accumulate ? 1 : 0 },
    buffers: [x, out],
    workgroups: rt.grid(Math.ceil(n / 64)),
  });
}
