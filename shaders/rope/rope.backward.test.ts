// Finite-difference check of ropeBackwardRef: it is the derivative of Σ dy ∘ ropeRef(x).
import { describe, test, expect } from 'vitest';
import { fdRelErr, dot, fdRandom } from '../lib/fd.ts';
import { ropeInvFreq } from './rope.ts';
import { ropeRef, ropeBackwardRef } from './rope.ref.ts';

describe('rope backward: float64 reference vs finite differences', () => {
  test('dx (strided k slice of a fused row)', () => {
    const [tokens, heads, hd, rowStride, col] = [3, 2, 6, 20, 4];
    const inv = ropeInvFreq({ headDim: hd, ropeTheta: 10000, ropeScaling: null });
    const pos = [0, 5, 1234];
    const x = fdRandom(tokens * rowStride, 31), dy = fdRandom(tokens * rowStride, 32);
    const dx = ropeBackwardRef(dy, pos, inv, tokens, heads, hd, rowStride, col);
    expect(fdRelErr((v) => dot(dy, ropeRef(v, pos, inv, tokens, heads, hd, rowStride, col)), x, dx)).toBeLessThan(1e-7);
  });
});
