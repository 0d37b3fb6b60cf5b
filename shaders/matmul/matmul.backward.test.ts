// Finite-difference check of the float64 LoRA linear backward (matmul.backward.ref.ts): the
// analytic dA, dB, dX are the derivatives of Σ dY ∘ loraLinearForwardRef(X, W, A, B).
import { describe, test, expect } from 'vitest';
import { fdRelErr, dot, fdRandom } from '../lib/fd.ts';
import { loraLinearForwardRef, loraLinearBackwardRef, gemmRef } from './matmul.backward.ref.ts';

describe('matmul backward: float64 reference vs finite differences', () => {
  const [T, N, K, r, s] = [3, 5, 7, 2, 1.7];
  const x = fdRandom(T * K, 1), dy = fdRandom(T * N, 2), w = fdRandom(N * K, 3), a = fdRandom(r * K, 4), b = fdRandom(N * r, 5);
  const g = loraLinearBackwardRef(x, dy, w, a, b, T, N, K, r, s);
  const L = (x_: ArrayLike<number>, a_: ArrayLike<number>, b_: ArrayLike<number>) => dot(dy, loraLinearForwardRef(x_, w, a_, b_, T, N, K, r, s).y);
  test('dA', () => expect(fdRelErr((v) => L(x, v, b), a, g.dA)).toBeLessThan(1e-7));
  test('dB', () => expect(fdRelErr((v) => L(x, a, v), b, g.dB)).toBeLessThan(1e-7));
  test('dX', () => expect(fdRelErr((v) => L(v, a, b), x, g.dX)).toBeLessThan(1e-7));
  test('dH = s·dY·B is the gradient w.r.t. H', () => {
    const h = gemmRef(x, a, T, r, K, { transB: true });
    const LH = (h_: ArrayLike<number>) => dot(dy, gemmRef(h_, b, T, N, r, { transB: true, alpha: s }));
    expect(fdRelErr(LH, h, g.dH)).toBeLessThan(1e-7);
  });
});

describe('LoRA linear with lora_dropout: float64 reference vs finite differences', () => {
  test('dX = dY·W + dropout(dH·A), dA = dHᵀ·dropout(X)', async () => {
    const { dropoutRef } = await import('../dropout/dropout.ref.ts');
    const [T, N, K, r, s, p, seed] = [3, 4, 6, 2, 1.3, 0.4, 9];
    const x = fdRandom(T * K, 81), dy = fdRandom(T * N, 82), w = fdRandom(N * K, 83), a = fdRandom(r * K, 84), b = fdRandom(N * r, 85);
    const L = (x_: ArrayLike<number>, a_: ArrayLike<number>) => {
      const base = gemmRef(x_, w, T, N, K, { transB: true });
      const lora = loraLinearForwardRef(dropoutRef(x_, p, seed), null, a_, b, T, N, K, r, s).y;
      return dot(dy, base) + dot(dy, lora);
    };
    const xd = dropoutRef(x, p, seed);
    const g = loraLinearBackwardRef(xd, dy, null, a, b, T, N, K, r, s);
    const dX = dropoutRef(g.dX, p, seed), dbase = gemmRef(dy, w, T, K, N);
    for (let i = 0; i < dX.length; i++) dX[i] += dbase[i];
    expect(fdRelErr((v) => L(v, a), x, dX)).toBeLessThan(1e-7);
    expect(fdRelErr((v) => L(x, v), a, g.dA)).toBeLessThan(1e-7);
  });
});
