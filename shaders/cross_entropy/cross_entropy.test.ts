// Finite-difference check of lmHeadCrossEntropyRef: dh is the derivative of −Σ coef·logp(h), with
// ignored (-100) labels contributing nothing.
import { describe, test, expect } from 'vitest';
import { fdRelErr, fdRandom } from '../lib/fd.ts';
import { lmHeadCrossEntropyRef } from './cross_entropy.ref.ts';
import { meanCoefficients } from './cross_entropy.ts';

describe('cross-entropy backward: float64 reference vs finite differences', () => {
  const [T, V, Hd] = [4, 9, 5];
  const h = fdRandom(T * Hd, 51, 1.5), w = fdRandom(V * Hd, 52);
  const labels = [3, -100, 8, 0];
  test('dh with mean coefficients (HF causal-LM loss)', () => {
    const coef = meanCoefficients(labels);
    expect(Array.from(coef)).toEqual([1 / 3, 0, 1 / 3, 1 / 3].map(Math.fround));
    const r = lmHeadCrossEntropyRef(h, w, labels, T, V, Hd, coef);
    expect(fdRelErr((x) => lmHeadCrossEntropyRef(x, w, labels, T, V, Hd, coef).loss, h, r.dh)).toBeLessThan(1e-7);
  });
  test('dh with arbitrary per-token coefficients (DPO/ORPO)', () => {
    const coef = fdRandom(T, 53, 2);
    const r = lmHeadCrossEntropyRef(h, w, labels, T, V, Hd, coef);
    expect(fdRelErr((x) => lmHeadCrossEntropyRef(x, w, labels, T, V, Hd, coef).loss, h, r.dh)).toBeLessThan(1e-7);
    for (let k = 0; k < Hd; k++) expect(r.dh[1 * Hd + k]).toBe(0);
  });
});
