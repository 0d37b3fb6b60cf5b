// The project's one seeded PRNG: mulberry32 + Box–Muller. Kernel checks, tests, random models,
// benches, the data engine's shuffles and the trainer's initialisation all draw from it, so a seed
// means the same numbers everywhere. It sits in shaders/lib (the lowest layer) so every layer may use it.
// Same seed → same numbers on every platform (only 32-bit integer ops and Math.log/cos/sqrt
// on doubles; Math.* results may differ in the last ulp across JS engines, uniform() never does).

/** mulberry32: 32-bit state, period 2^32. Returns uint32s. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Uniform floats in [0, 1) from mulberry32 (32 bits each). */
export function uniform01(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 4294967296;
}

export class Rng {
  private next: () => number;
  private spare: number | null = null;
  constructor(seed = 1) {
    this.next = mulberry32(seed);
  }
  /** uint32 */
  u32(): number {
    return this.next();
  }
  /** Uniform in [0, 1), 32 bits of randomness. */
  uniform(): number {
    return this.next() / 4294967296;
  }
  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }
  /** Standard normal × std + mean (Box–Muller, both values used). */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return mean + std * s;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }
  /** Fill `a` with normals: the same sequence as calling normal(mean, std) a.length times. */
  fillNormal<T extends Float32Array | Float64Array>(a: T, std = 1, mean = 0): T {
    const n = a.length;
    let i = 0;
    if (n > 0 && this.spare !== null) {
      a[i++] = mean + std * this.spare;
      this.spare = null;
    }
    const next = this.next;
    const TWO_PI = 2 * Math.PI;
    for (; i < n; i += 2) {
      let u = next() / 4294967296;
      while (u === 0) u = next() / 4294967296;
      const v = next() / 4294967296;
      const r = Math.sqrt(-2 * Math.log(u));
      const th = TWO_PI * v;
      a[i] = mean + std * r * Math.cos(th);
      const s = r * Math.sin(th);
      if (i + 1 < n) a[i + 1] = mean + std * s;
      else this.spare = s;
    }
    return a;
  }
  /** n normals as Float32Array (values rounded to f32). */
  normalF32(n: number, std = 1, mean = 0): Float32Array {
    return this.fillNormal(new Float32Array(n), std, mean);
  }
  /** n normals as Float64Array. */
  normalF64(n: number, std = 1, mean = 0): Float64Array {
    return this.fillNormal(new Float64Array(n), std, mean);
  }
  /** n uniforms in [lo, hi) as Float32Array. */
  uniformF32(n: number, lo = -1, hi = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.range(lo, hi);
    return a;
  }
  /** n integers in [0, max) */
  ints(n: number, max: number): number[] {
    return Array.from({ length: n }, () => this.int(max));
  }
}
