// Finite-difference check of the float64 merged-weight LoRA gradients (lora_train.ref.ts): dA, dB
// from dW are the derivatives of L = Σ dW ∘ (W + s·B·A); and they equal the factored LoRA backward
// (matmul.backward.ref.ts: dB = s·dYᵀ·H, dA = dHᵀ·X) when dW = dYᵀ·X.
import { describe, test, expect } from 'vitest';
import { fdRelErr, dot, fdRandom } from '../lib/fd.ts';
import { loraMergeRef, loraGradsFromDwRef } from './lora_train.ref.ts';
import { gemmRef, loraLinearBackwardRef } from '../matmul/matmul.backward.ref.ts';

describe('lora_train: float64 reference vs finite differences', () => {
  const [N, K, r, s] = [5, 7, 3, 1.7];
  const w = fdRandom(N * K, 1), a = fdRandom(r * K, 2), b = fdRandom(N * r, 3), dw = fdRandom(N * K, 4);
  const g = loraGradsFromDwRef(dw, a, b, N, K, r, s);
  const L = (a_: ArrayLike<number>, b_: ArrayLike<number>) => dot(dw, loraMergeRef(w, a_, b_, N, K, r, s));
  test('dA', () => expect(fdRelErr((v) => L(v, b), a, g.dA)).toBeLessThan(1e-7));
  test('dB', () => expect(fdRelErr((v) => L(a, v), b, g.dB)).toBeLessThan(1e-7));
  test('= the factored LoRA backward for dW = dYᵀ·X', () => {
    const T = 4, x = fdRandom(T * K, 5), dy = fdRandom(T * N, 6);
    const f = loraLinearBackwardRef(x, dy, w, a, b, T, N, K, r, s);
    const m = loraGradsFromDwRef(gemmRef(dy, x, N, K, T, { transA: true }), a, b, N, K, r, s);
    for (const [u, v] of [[m.dA, f.dA], [m.dB, f.dB]] as const) for (let i = 0; i < u.length; i++) expect(u[i]).toBeCloseTo(v[i]!, 12);
  });
});
