// Weight matrices on the GPU, in the HF Linear layout W[N, K] (out_features × in_features),
// stored as f32, packed f16 (two halves per u32, read with unpack2x16float) or int8 groups
// (four int8 per u32, one f32 scale per GROUP consecutive K elements of a row).
// Matrices larger than maxStorageBufferBindingSize are split by rows into parts.
import type { Runtime } from '../gpu/runtime.ts';

import type { WeightFormat } from './format.ts';
export type { WeightFormat };

/** int8 group size along K (elements per f32 scale). */
export const Q8_GROUP = 32;

export interface WeightPart {
  /** First row (output feature) held by this part. */
  rowStart: number;
  rows: number;
  /** f32: [rows, K] f32 · f16: [rows, Kp/2] u32 (Kp = K rounded up to 2) · q8: [rows, Kp/4] u32 (Kp = K rounded up to Q8_GROUP). */
  data: GPUBuffer;
  /** q8 only: [rows, Kp / Q8_GROUP] f32. */
  scales?: GPUBuffer;
}

export interface GpuWeight {
  name: string;
  format: WeightFormat;
  /** Output features (rows). */
  N: number;
  /** Input features (columns). */
  K: number;
  /** Row stride in elements of the stored (padded) row. */
  Kp: number;
  parts: WeightPart[];
  /** Optional bias [N] f32 (Qwen2 q/k/v). */
  bias?: GPUBuffer;
  bytes: number;
}

export function paddedK(format: WeightFormat, K: number): number {
  if (format === 'f16') return Math.ceil(K / 2) * 2;
  if (format === 'q8') return Math.ceil(K / Q8_GROUP) * Q8_GROUP;
  return K;
}

// ------------------------------------------------------------------ CPU encoders

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** float32 → IEEE half bits, round to nearest even (matches pack2x16float on finite inputs). */
export function f32ToF16Bits(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

export function f16BitsToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Packs rows of W[N,K] as f16 pairs: u32 j of a row holds elements 2j (low half) and 2j+1. */
export function packF16(w: Float32Array, N: number, K: number): Uint32Array {
  const Kp = paddedK('f16', K);
  const out = new Uint32Array((N * Kp) / 2);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < Kp / 2; j++) {
      const k = 2 * j;
      const lo = f32ToF16Bits(w[n * K + k]);
      const hi = k + 1 < K ? f32ToF16Bits(w[n * K + k + 1]) : 0;
      out[(n * Kp) / 2 + j] = (lo | (hi << 16)) >>> 0;
    }
  }
  return out;
}

/** Symmetric int8 per group of Q8_GROUP along K: q = round(w / s), s = max|w| / 127. */
export function quantizeQ8(w: Float32Array, N: number, K: number): { q: Uint32Array; scales: Float32Array } {
  const Kp = paddedK('q8', K);
  const groups = Kp / Q8_GROUP;
  const q = new Uint32Array((N * Kp) / 4);
  const scales = new Float32Array(N * groups);
  const bytes = new Int8Array(q.buffer);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      let amax = 0;
      for (let i = 0; i < Q8_GROUP; i++) {
        const k = g * Q8_GROUP + i;
        if (k < K) amax = Math.max(amax, Math.abs(w[n * K + k]));
      }
      const s = amax / 127;
      scales[n * groups + g] = s;
      for (let i = 0; i < Q8_GROUP; i++) {
        const k = g * Q8_GROUP + i;
        bytes[n * Kp + k] = k < K && s > 0 ? Math.max(-127, Math.min(127, Math.round(w[n * K + k] / s))) : 0;
      }
    }
  }
  return { q, scales };
}

/** What the GPU will actually multiply by (dequantized), for references and error bounds. */
export function dequantized(w: Float32Array, N: number, K: number, format: WeightFormat): Float32Array {
  if (format === 'f32') return w;
  const out = new Float32Array(N * K);
  if (format === 'f16') {
    for (let i = 0; i < N * K; i++) out[i] = f16BitsToF32(f32ToF16Bits(w[i]));
    return out;
  }
  const { q, scales } = quantizeQ8(w, N, K);
  const Kp = paddedK('q8', K);
  const bytes = new Int8Array(q.buffer);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) out[n * K + k] = bytes[n * Kp + k] * scales[n * (Kp / Q8_GROUP) + Math.floor(k / Q8_GROUP)];
  return out;
}

// ------------------------------------------------------------------ upload

/** Bytes per stored row, for splitting. */
function rowBytes(format: WeightFormat, K: number): number {
  const Kp = paddedK(format, K);
  return format === 'f32' ? K * 4 : format === 'f16' ? Kp * 2 : Kp;
}

/**
 * Uploads W[N,K] (row-major f32) in the given format, split into row parts that each fit
 * the device's maxStorageBufferBindingSize (or `maxPartBytes` when smaller, for tests).
 */
export function uploadWeight(
  rt: Runtime,
  name: string,
  w: Float32Array,
  N: number,
  K: number,
  format: WeightFormat = 'f32',
  opts: { bias?: Float32Array; maxPartBytes?: number } = {},
): GpuWeight {
  if (w.length !== N * K) throw new Error(`${name}: expected ${N}x${K}=${N * K} values, got ${w.length}`);
  const Kp = paddedK(format, K);
  const limit = Math.min(rt.device.limits.maxStorageBufferBindingSize, opts.maxPartBytes ?? Infinity);
  const rb = rowBytes(format, K);
  const rowsPerPart = Math.max(1, Math.floor(limit / rb));
  const parts: WeightPart[] = [];
  let bytes = 0;
  for (let r0 = 0; r0 < N; r0 += rowsPerPart) {
    const rows = Math.min(rowsPerPart, N - r0);
    const slice = w.subarray(r0 * K, (r0 + rows) * K);
    if (format === 'f32') {
      parts.push({ rowStart: r0, rows, data: rt.upload(slice, `${name}[${r0}]`) });
      bytes += slice.byteLength;
    } else if (format === 'f16') {
      const packed = packF16(slice, rows, K);
      parts.push({ rowStart: r0, rows, data: rt.upload(packed, `${name}[${r0}]`) });
      bytes += packed.byteLength;
    } else {
      const { q, scales } = quantizeQ8(slice, rows, K);
      parts.push({ rowStart: r0, rows, data: rt.upload(q, `${name}[${r0}]`), scales: rt.upload(scales, `${name}.scales[${r0}]`) });
      bytes += q.byteLength + scales.byteLength;
    }
  }
  const bias = opts.bias ? rt.upload(opts.bias, `${name}.bias`) : undefined;
  if (opts.bias) bytes += opts.bias.byteLength;
  return { name, format, N, K, Kp, parts, bias, bytes };
}

export function destroyWeight(rt: Runtime, w: GpuWeight): void {
  for (const p of w.parts) {
    rt.destroy(p.data);
    if (p.scales) rt.destroy(p.scales);
  }
  if (w.bias) rt.destroy(w.bias);
}
