// Finite-difference check of siluMulBackwardRef: dg, du are the derivatives of Σ dout ∘ silu(g)·u.
import { describe, test, expect } from 'vitest';
import { fdRelErr, dot, fdRandom } from '../lib/fd.ts';
import { siluMulRef, siluMulBackwardRef } from './silu_mul.ref.ts';

describe('silu_mul backward: float64 reference vs finite differences', () => {
  const n = 23;
  const g = fdRandom(n, 21, 5), u = fdRandom(n, 22, 2), d = fdRandom(n, 23);
  const r = siluMulBackwardRef(g, u, d);
  test('dg', () => expect(fdRelErr((v) => dot(d, siluMulRef(v, u)), g, r.dg)).toBeLessThan(1e-7));
  test('du', () => expect(fdRelErr((v) => dot(d, siluMulRef(g, v)), u, r.du)).toBeLessThan(1e-7));
});
