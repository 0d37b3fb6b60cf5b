// Finite-difference checks of float64 backward references (the `<op>.backward.test.ts` files):
// for a scalar loss L(x) = Σ dy ∘ f(x), central differences (L(x + h·e_i) − L(x − h·e_i)) / 2h
// in float64 must match the analytic gradient the reference's backward returns.
import { uniform01 } from './random.ts';

/** Max over i of |fd_i − analytic_i| / max(max |analytic|, 1e-30), probing every element of x. */
export function fdRelErr(loss: (x: Float64Array) => number, x: ArrayLike<number>, analytic: ArrayLike<number>, h = 1e-6): number {
  const xp = Float64Array.from(x);
  let maxDiff = 0, maxRef = 0;
  for (let i = 0; i < xp.length; i++) {
    const x0 = xp[i];
    xp[i] = x0 + h;
    const lp = loss(xp);
    xp[i] = x0 - h;
    const lm = loss(xp);
    xp[i] = x0;
    const fd = (lp - lm) / (2 * h);
    maxDiff = Math.max(maxDiff, Math.abs(fd - analytic[i]));
    maxRef = Math.max(maxRef, Math.abs(analytic[i]));
  }
  return maxDiff / Math.max(maxRef, 1e-30);
}

/** Σ a_i · b_i (the loss Σ dy ∘ y for a fixed upstream gradient dy). */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Seeded float64 values in [-scale, scale) from the project PRNG (shaders/lib/random.ts). */
export function fdRandom(n: number, seed: number, scale = 1): Float64Array {
  const u = uniform01(seed);
  return Float64Array.from({ length: n }, () => (2 * u() - 1) * scale);
}
