// dropout.ref.ts: the hash against known PCG values, the keep rate, and — the backward being the
// same map — the finite-difference derivative of Σ dy ∘ dropout(x) equals dropout(dy).
import { describe, test, expect } from 'vitest';
import { fdRelErr, dot, fdRandom } from '../lib/fd.ts';
import { dropoutRef, dropoutKeepRef, pcgRef } from './dropout.ref.ts';

describe('dropout reference', () => {
  test('pcg hash: 32-bit PCG-RXS-M-XS values', () => {
    // computed by hand with 64-bit integer arithmetic (python): see the comment in dropout.wgsl
    expect(pcgRef(0)).toBe(129708002);
    expect(pcgRef(1)).toBe(2831084092);
    expect(pcgRef(0xffffffff)).toBe(pcgRef(-1));
  });
  test('keeps about 1 − p, and p = 0 keeps all', () => {
    const k = dropoutKeepRef(100000, 0.25, 3);
    const kept = k.reduce((a, b) => a + b, 0) / k.length;
    expect(Math.abs(kept - 0.75)).toBeLessThan(0.01);
    expect(dropoutKeepRef(1000, 0, 3).every((v) => v === 1)).toBe(true);
  });
  test('backward = the same map (finite differences)', () => {
    const x = fdRandom(37, 71), dy = fdRandom(37, 72);
    expect(fdRelErr((v) => dot(dy, dropoutRef(v, 0.3, 11)), x, dropoutRef(dy, 0.3, 11))).toBeLessThan(1e-7);
  });
});
