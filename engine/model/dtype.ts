// Exact float16 / bfloat16 <-> float32 conversion (bit level, no lookup tables).

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits → number (exact: every f16 is representable in f32). */
export function f16BitsToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero / subnormal
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits → number (exact: the top 16 bits of a float32). */
export function bf16BitsToFloat(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0]!;
}

/** number → IEEE binary16 bits, round to nearest even; overflow → ±Inf, NaN → quiet NaN. */
export function floatToF16Bits(x: number): number {
  f32[0] = x; // first round to f32 (as a GPU would hold it)
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal f16 (or zero)
    if (e < -10) return sign;
    mant |= 0x800000; // implicit leading 1
    const shift = 14 - e; // 24-bit mantissa → (10 + e)-bit
    const half = 1 << (shift - 1);
    const rem = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rem > half || (rem === half && (m & 1))) m++;
    return sign | m; // m may carry into exponent 1: still correct bits
  }
  const rem = mant & 0x1fff;
  let m = mant >>> 13;
  if (rem > 0x1000 || (rem === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** number → bfloat16 bits, round to nearest even (via float32); NaN stays NaN. */
export function floatToBf16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return ((bits >>> 16) | 0x40) & 0xffff;
  const lsb = (bits >>> 16) & 1;
  return ((bits + 0x7fff + lsb) >>> 16) & 0xffff;
}

export type SupportedDtype = 'F32' | 'F16' | 'BF16';
export const DTYPE_BYTES: Record<SupportedDtype, number> = { F32: 4, F16: 2, BF16: 2 };

let F16_TABLE: Float32Array | null = null;
/** All 65536 f16 values as f32 (256 KiB, built on first use). */
function f16Table(): Float32Array {
  if (!F16_TABLE) {
    F16_TABLE = new Float32Array(65536);
    for (let b = 0; b < 65536; b++) F16_TABLE[b] = f16BitsToFloat(b);
  }
  return F16_TABLE;
}

/** Decode little-endian raw bytes of the given dtype into a new Float32Array. */
export function bytesToFloat32(bytes: Uint8Array, dtype: SupportedDtype): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'F32') {
    const n = bytes.byteLength >>> 2;
    const out = new Float32Array(n);
    if (bytes.byteOffset % 4 === 0) out.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
    else for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
    return out;
  }
  const n = bytes.byteLength >>> 1;
  const out = new Float32Array(n);
  if (dtype === 'BF16') {
    const o32 = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) o32[i] = dv.getUint16(i * 2, true) << 16;
  } else {
    const table = f16Table();
    const src = bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, n) : null;
    if (src) for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
    else for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(i * 2, true)]!;
  }
  return out;
}

/** Encode numbers as little-endian raw bytes of the given dtype. */
export function float32ToBytes(data: ArrayLike<number>, dtype: SupportedDtype): Uint8Array {
  const n = data.length;
  if (dtype === 'F32') {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = data[i]!;
    return new Uint8Array(out.buffer); // platforms we run on are little-endian
  }
  const out = new Uint16Array(n);
  const conv = dtype === 'F16' ? floatToF16Bits : floatToBf16Bits;
  for (let i = 0; i < n; i++) out[i] = conv(data[i]!);
  return new Uint8Array(out.buffer);
}
