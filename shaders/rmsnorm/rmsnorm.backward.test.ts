// Finite-difference check of rmsnormBackwardRef: dx and dw are the derivatives of Σ dy ∘ rmsnormRef(x, w).
import { describe, test, expect } from 'vitest';
import { fdRelErr, dot, fdRandom } from '../lib/fd.ts';
import { rmsnormRef, rmsnormBackwardRef } from './rmsnorm.ref.ts';

describe('rmsnorm backward: float64 reference vs finite differences', () => {
  const [rows, dim, eps] = [3, 7, 1e-5];
  const x = fdRandom(rows * dim, 11, 2), w = fdRandom(dim, 12), dy = fdRandom(rows * dim, 13);
  const g = rmsnormBackwardRef(x, w, dy, rows, dim, eps);
  test('dx', () => expect(fdRelErr((v) => dot(dy, rmsnormRef(v, w, rows, dim, eps)), x, g.dx)).toBeLessThan(1e-7));
  test('dw', () => expect(fdRelErr((v) => dot(dy, rmsnormRef(x, v, rows, dim, eps)), w, g.dw)).toBeLessThan(1e-7));
});
