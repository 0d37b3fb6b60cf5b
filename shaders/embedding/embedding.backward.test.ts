// Finite-difference check of embeddingBackwardRef: the derivative of Σ dout ∘ embeddingRef(ids, table).
import { describe, test, expect } from 'vitest';
import { fdRelErr, dot, fdRandom } from '../lib/fd.ts';
import { embeddingRef, embeddingBackwardRef } from './embedding.ref.ts';
import { groupTokens } from './embedding.backward.ts';

describe('embedding backward: float64 reference vs finite differences', () => {
  test('dTable with repeated ids', () => {
    const ids = [2, 0, 2, 4, 2];
    const [N, K] = [5, 3];
    const table = fdRandom(N * K, 61), dout = fdRandom(ids.length * K, 62);
    const d = embeddingBackwardRef(ids, dout, N, K);
    expect(fdRelErr((x) => dot(dout, embeddingRef(ids, x, N, K)), table, d)).toBeLessThan(1e-7);
  });
  test('token grouping is sorted by id, positions in order; bad ids are refused', () => {
    const g = groupTokens([2, 0, 2, 4, 2], 5);
    expect(Array.from(g.order)).toEqual([1, 0, 2, 4, 3]);
    expect(Array.from(g.groups)).toEqual([0, 0, 2, 1, 4, 4, 0, 5]);
    expect(() => groupTokens([5], 5)).toThrow(/outside/);
  });
});
