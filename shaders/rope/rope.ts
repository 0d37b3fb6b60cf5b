// Rotary position embedding (host side). WGSL: shaders/rope.wgsl · reference: shaders/rope.ref.ts · check: shaders/rope.check.ts
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';

export const RopeParams = defineParams('RopeParams', { tokens: 'u32', heads: 'u32', head_dim: 'u32', row_stride: 'u32', col_offset: 'u32' });
type F = 'tokens' | 'heads' | 'head_dim' | 'row_stride' | 'col_offset';
const kernel: Kernel<F> = { name: 'rope', code: RopeParams.wgsl + WGSL.rope, params: RopeParams };

export interface RopeScalingSpec {
  type: 'llama3' | 'linear' | 'default';
  factor: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositions?: number;
}

export interface RopeConfig {
  headDim: number;
  ropeTheta: number;
  ropeScaling: null | RopeScalingSpec;
}

const f = Math.fround;

/**
 * RoPE inverse frequencies (headDim/2 values) exactly as HF computes them in float32:
 *   inv_freq = 1.0 / (base ** (arange(0, dim, 2).float() / dim))
 * then 'linear': inv_freq / factor; 'llama3': `_compute_llama3_parameters`:
 *   low_freq_wavelen = old_context_len / low_freq_factor; high_freq_wavelen = old_context_len / high_freq_factor
 *   wavelen = 2π / inv_freq
 *   inv_freq_llama = where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
 *   smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
 *   smoothed = (1 - smooth) * inv_freq_llama / factor + smooth * inv_freq_llama
 *   inv_freq_llama = where(!(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen), smoothed, inv_freq_llama)
 * Every tensor op is rounded to float32 in the same order as torch evaluates it
 * (python-float scalars stay double until they meet the tensor). 'default' = no scaling.
 */
export function ropeInvFreq(cfg: RopeConfig): Float32Array {
  const dim = cfg.headDim;
  if (!(dim > 0) || dim % 2) throw new Error(`ropeInvFreq: headDim ${dim} must be even`);
  const base = cfg.ropeTheta;
  const inv = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const expo = f((2 * i) / dim); // arange(...).float() / dim  (float32 tensor)
    const pw = f(base ** expo); // python float ** float32 tensor → float32
    inv[i] = f(1 / pw);
  }
  const rs = cfg.ropeScaling;
  if (!rs || rs.type === 'default') return inv;
  if (rs.type === 'linear') return inv.map((v) => f(v / rs.factor));
  if (rs.type !== 'llama3') throw new Error(`ropeInvFreq: unsupported rope scaling ${(rs as { type: string }).type}`);
  const factor = rs.factor;
  const low = rs.lowFreqFactor ?? 1;
  const high = rs.highFreqFactor ?? 4;
  const old = rs.originalMaxPositions ?? 8192;
  const lowWavelen = old / low; // python floats
  const highWavelen = old / high;
  return inv.map((v) => {
    const wavelen = f((2 * Math.PI) / v);
    const llama = wavelen > lowWavelen ? f(v / factor) : v;
    const smooth = f(f(f(old / wavelen) - low) / (high - low));
    const smoothed = f(f(f(f(1 - smooth) * llama) / factor) + f(smooth * llama));
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    return medium ? smoothed : llama;
  });
}

export interface RopeOptions {
  /** Elements between consecutive tokens' rows (default numHeads * headDim). */
  rowStride?: number;
  /** Element offset of head 0 inside a row (default 0), e.g. the k slice of a fused qkv row. */
  colOffset?: number;
}

/**
 * In-place RoPE on x: `tokens` rows, each holding `numHeads` heads of `headDim` at
 * x[t * rowStride + colOffset + h * headDim + j]. positions: u32 per token; invFreq: f32[headDim/2]
 * (from ropeInvFreq). angle = f32(pos) * invFreq[i] in f32.
 */
export function rope(
  rt: Runtime,
  x: GPUBuffer,
  positions: GPUBuffer,
  invFreq: GPUBuffer,
  tokens: number,
  numHeads: number,
  headDim: number,
  opts: RopeOptions = {},
): void {
  if (headDim % 2 || headDim <= 0) throw new Error(`rope: headDim ${headDim} must be even`);
  const rowStride = opts.rowStride ?? numHeads * headDim;
  const colOffset = opts.colOffset ?? 0;
  if (colOffset + numHeads * headDim > rowStride) throw new Error(`rope: colOffset ${colOffset} + ${numHeads}x${headDim} exceeds rowStride ${rowStride}`);
  if (tokens > 0 && x.size < ((tokens - 1) * rowStride + colOffset + numHeads * headDim) * 4) throw new Error('rope: x too small');
  if (positions.size < tokens * 4 || invFreq.size < (headDim / 2) * 4) throw new Error('rope: positions/invFreq too small');
  const n = tokens * numHeads * (headDim / 2);
  if (n === 0) return;
  rt.dispatch(kernel, {
    params: { tokens, heads: numHeads, head_dim: headDim, row_stride: rowStride, col_offset: colOffset },
    buffers: [x, positions, invFreq],
    workgroups: rt.grid(Math.ceil(n / 64)),
  });
}
