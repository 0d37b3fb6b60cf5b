// Finite-difference check of attentionBackwardRef: dq, dk, dv are the derivatives of
// Σ dO ∘ attentionTrainForwardRef(q, k, v) over a packed block with GQA.
import { describe, test, expect } from 'vitest';
import { fdRelErr, dot, fdRandom } from '../lib/fd.ts';
import { attentionTrainForwardRef, attentionBackwardRef } from './attention.backward.ref.ts';
import { segmentStarts, segmentStartsFromCuSeqlens } from './attention.backward.ts';

describe('attention backward: float64 reference vs finite differences', () => {
  const s = { T: 6, nh: 4, nkv: 2, hd: 3 };
  const seg = segmentStarts([0, 0, 0, 0, 1, 1]);
  const q = fdRandom(s.T * s.nh * s.hd, 41, 1.5), k = fdRandom(s.T * s.nkv * s.hd, 42, 1.5), v = fdRandom(s.T * s.nkv * s.hd, 43);
  const dout = fdRandom(s.T * s.nh * s.hd, 44);
  const g = attentionBackwardRef(s, q, k, v, seg, dout);
  const L = (q_: ArrayLike<number>, k_: ArrayLike<number>, v_: ArrayLike<number>) => dot(dout, attentionTrainForwardRef(s, q_, k_, v_, seg).o);
  test('dq', () => expect(fdRelErr((x) => L(x, k, v), q, g.dq)).toBeLessThan(1e-7));
  test('dk', () => expect(fdRelErr((x) => L(q, x, v), k, g.dk)).toBeLessThan(1e-7));
  test('dv', () => expect(fdRelErr((x) => L(q, k, x), v, g.dv)).toBeLessThan(1e-7));
  test('no gradient flows across documents', () => {
    // token 4 starts document 1: q of tokens 4-5 must not depend on k/v of tokens 0-3
    const kv = s.nkv * s.hd;
    for (let i = 0; i < 4 * kv; i++) {
      const k2 = Float64Array.from(k);
      k2[i] += 0.5;
      const a = attentionTrainForwardRef(s, q, k, v, seg).o, b = attentionTrainForwardRef(s, q, k2, v, seg).o;
      for (let j = 4 * s.nh * s.hd; j < a.length; j++) expect(b[j]).toBe(a[j]);
    }
  });
  test('segment starts from doc ids and cu_seqlens agree', () => {
    expect(Array.from(segmentStartsFromCuSeqlens([0, 4, 6]))).toEqual(Array.from(seg));
    expect(Array.from(segmentStarts([7, 7, 3, 3, 3, 9]))).toEqual([0, 0, 2, 2, 2, 5]);
  });
});
