// Matmul / matvec (host side): out[M, N] = x[M, K] · Wᵀ (+ bias) (+= out), for every GpuWeight
// format and across weight parts.
// WGSL: shaders/matmul.*.wgsl, composed per (variant, weight format, activation mode):
//   MatmulParams + matmul.common + matmul.x_<f32|vec4> + matmul.w_<f32|f32v4|f16|q8> + matmul.<variant>
// Reference: shaders/matmul.ref.ts · checks: shaders/matmul.check.ts · speed: bench/kernels.
//
// Variants (numbered as in llm.c dev/cuda; all stay selectable through opts.variant):
//   v1  naive: one output per invocation, scalar K loop (the baseline)
//   v2  register-tiled 4x4 outputs per invocation, vec4 loads along K, barrier-free
// The product path (`variant` omitted) picks by M: see pickVariant().
import { WGSL } from './wgsl.gen.ts';
import { defineParams } from '../engine/gpu/params.ts';
import type { Kernel, Runtime, Binding } from '../engine/gpu/runtime.ts';
import type { GpuWeight, WeightFormat } from './weights.ts';

export const MatmulParams = defineParams('MatmulParams', {
  M: 'u32',
  /** Output row stride (all of W's rows, not just this part's). */
  N: 'u32',
  K: 'u32',
  /** First output column of this weight part. */
  rowStart: 'u32',
  /** Rows of this weight part. */
  rows: 'u32',
  xOff: 'u32',
  outOff: 'u32',
  /** bit 0: accumulate into out, bit 1: add bias. */
  flags: 'u32',
  /** Weight row stride in the loader's units (f32: K, f32v4: K/4, f16: Kp/2, q8: Kp/4). */
  wStride: 'u32',
  /** Column tiles per row of tiles: ceil(rows / tileN). */
  tilesN: 'u32',
});
type F = (typeof MatmulParams.fields)[number][0];

type WLoader = 'f32' | 'f32v4' | 'f16' | 'q8';
type XLoader = 'f32' | 'vec4';

interface Variant {
  /** WGSL body: WGSL[`matmul.${body}`]. */
  body: string;
  /** Outputs per invocation along m (x rows) and along r (weight rows). */
  tileM: number;
  tileN: number;
  /** Workgroup size (WGSL override WG). */
  wg: number;
  description: string;
}

export const MATMUL_VARIANTS: Record<string, Variant> = {
  v1: { body: 'v1', tileM: 1, tileN: 1, wg: 64, description: 'naive: 1 output / invocation, scalar K loop' },
  v2: { body: 'v2', tileM: 4, tileN: 4, wg: 64, description: 'register-tiled 4x4, vec4 loads, barrier-free' },
};
export type MatmulVariant = keyof typeof MATMUL_VARIANTS;

const kernels = new Map<string, Kernel<F>>();

function kernelFor(variant: string, wl: WLoader, xl: XLoader): Kernel<F> {
  const key = `${variant}|${wl}|${xl}`;
  let k = kernels.get(key);
  if (k) return k;
  const v = MATMUL_VARIANTS[variant];
  const src = WGSL as Record<string, string>;
  const parts = ['matmul.common', `matmul.x_${xl}`, `matmul.w_${wl}`, `matmul.${v.body}`];
  for (const p of parts) if (!(p in src)) throw new Error(`matmul: missing WGSL ${p} (run node scripts/gen-shaders.mjs)`);
  k = {
    name: `matmul_${variant}_${wl}_x${xl}`,
    code: MatmulParams.wgsl + parts.map((p) => src[p]).join('\n'),
    params: MatmulParams,
    constants: { WG: v.wg },
  };
  kernels.set(key, k);
  return k;
}

/** The variant the product path uses for a given M. */
export function pickVariant(M: number, _w: GpuWeight, _rt?: Runtime): string {
  void M;
  return 'v2';
}

const dummyBias = new WeakMap<Runtime, GPUBuffer>();
function noBias(rt: Runtime): GPUBuffer {
  let b = dummyBias.get(rt);
  if (!b) dummyBias.set(rt, (b = rt.createBuffer(16, 'matmul-no-bias')));
  return b;
}

export interface MatmulOptions {
  /** out += x·Wᵀ (+ bias) instead of out = ... */
  accumulate?: boolean;
  /** x row m starts at element xOffsetElems + m*K. */
  xOffsetElems?: number;
  /** out row m starts at element outOffsetElems + m*N. */
  outOffsetElems?: number;
  /** Force a variant (tests, bench): a key of MATMUL_VARIANTS. */
  variant?: string;
}

/**
 * out[M, N] = x[M, K] · Wᵀ (+ w.bias) (+= out when accumulate). x rows have stride K,
 * out rows stride N (N = w.N, K = w.K). `x` and `out` must be different buffers.
 */
export function matmul(rt: Runtime, x: GPUBuffer, w: GpuWeight, out: GPUBuffer, M: number, opts: MatmulOptions = {}): void {
  const { N, K } = w;
  const xOff = opts.xOffsetElems ?? 0;
  const outOff = opts.outOffsetElems ?? 0;
  if (!Number.isInteger(M) || M < 0) throw new Error(`matmul ${w.name}: bad M=${M}`);
  if (!Number.isInteger(xOff) || xOff < 0 || !Number.isInteger(outOff) || outOff < 0)
    throw new Error(`matmul ${w.name}: bad offsets x=${xOff} out=${outOff}`);
  if (M === 0) return;
  if (x === out) throw new Error(`matmul ${w.name}: x and out must be different buffers`);
  if ((xOff + M * K) * 4 > x.size) throw new Error(`matmul ${w.name}: x holds ${x.size / 4} floats, needs ${xOff + M * K} (M=${M}, K=${K}, offset ${xOff})`);
  if ((outOff + M * N) * 4 > out.size) throw new Error(`matmul ${w.name}: out holds ${out.size / 4} floats, needs ${outOff + M * N} (M=${M}, N=${N}, offset ${outOff})`);
  const variant = opts.variant ?? pickVariant(M, w, rt);
  const v = MATMUL_VARIANTS[variant];
  if (!v) throw new Error(`matmul: unknown variant '${variant}' (have ${Object.keys(MATMUL_VARIANTS).join(', ')})`);

  const wl: WLoader = w.format === 'f32' ? (K % 4 === 0 ? 'f32v4' : 'f32') : w.format;
  const xl: XLoader = K % 4 === 0 && xOff % 4 === 0 ? 'vec4' : 'f32';
  const kernel = kernelFor(variant, wl, xl);
  const wStride = wl === 'f32' ? K : wl === 'f32v4' ? K / 4 : w.format === 'f16' ? w.Kp / 2 : w.Kp / 4;
  const flags = (opts.accumulate ? 1 : 0) | (w.bias ? 2 : 0);
  const bias: Binding = w.bias ?? noBias(rt);
  for (const part of w.parts) {
    const tilesN = Math.ceil(part.rows / v.tileN);
    const threads = Math.ceil(M / v.tileM) * tilesN;
    const buffers: Binding[] = [x, bias, out, part.data];
    if (w.format === 'q8') {
      if (!part.scales) throw new Error(`matmul ${w.name}: q8 part without scales`);
      buffers.push(part.scales);
    }
    rt.dispatch(kernel, {
      params: { M, N, K, rowStart: part.rowStart, rows: part.rows, xOff, outOff, flags, wStride, tilesN },
      buffers,
      workgroups: rt.grid(Math.ceil(threads / v.wg)),
    });
  }
}

/** Bytes a matmul call moves at minimum (weights once, x once, out once or twice), for the bench. */
export function matmulBytes(w: GpuWeight, M: number, accumulate = false): number {
  return w.bytes + 4 * M * w.K + 4 * M * w.N * (accumulate ? 2 : 1);
}

export type { WeightFormat };
