// The float64 AdamW / clip_grad_norm_ reference (adamw.ref.ts) against numbers computed by hand and
// by PyTorch 1.13 (torch.optim.AdamW + torch.nn.utils.clip_grad_norm_ in float64, printed by
// shaders/adamw/adamw_torch.py; see README.md). The GPU kernels are checked against this
// reference in adamw.check.ts.
import { describe, test, expect } from 'vitest';
import { adamwRef, gradNormRef } from './adamw.ref.ts';

const h = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
const grads: Array<[number[], number[]]> = [
  [[0.5, -1.5, 2.0, 0.0], [0.1, 0.2, -0.3, 0.4]],
  [[-0.25, 0.75, 0.1, 1e-3], [0.0, -0.2, 0.3, 2.0]],
  [[3.0, 0.0, -0.5, 0.2], [1.0, 1.0, -1.0, 0.5]],
];
// torch float64: the norm returned by clip_grad_norm_ and both parameters after each step
const torch64 = [
  { norm: 2.6076809620810595, p: [0.9890000005215364, -1.9880000001738454, 0.4895000001303841, 0.0], q: [0.28970000260768125, -0.7092999986961591, 1.1088999991307726, 0.03995000065192045] },
  { norm: 2.182888224348649, p: [0.9860764873783816, -1.9840774869493654, 0.481877946685583, -0.007441138579833505], q: [0.28270972253537924, -0.707183241037531, 1.1063836414161845, 0.031464855050470045] },
  { norm: 3.5411862419251547, p: [0.9785320831646743, -1.980598025140309, 0.47712928937256316, -0.013868254134266088], q: [0.2754005676104292, -0.7119361564465975, 1.1100891661216628, 0.02401902598183317] },
];

describe('AdamW + clip_grad_norm_ reference', () => {
  test('step 1 by hand: m̂ = g, v̂ = g², so p ← p·(1 − lr·wd) − lr·g/(|g| + ε)', () => {
    const s = { param: Float64Array.from([1.0]), m: new Float64Array(1), v: new Float64Array(1) };
    adamwRef(s, [0.2], h, 1);
    expect(s.param[0]).toBeCloseTo(1 * (1 - 0.001) - (0.01 * 0.2) / (0.2 + 1e-8), 15);
    expect(s.m[0]).toBeCloseTo(0.1 * 0.2, 15);
    expect(s.v[0]).toBeCloseTo(0.001 * 0.04, 15);
  });
  test('clip coefficient by hand: max_norm / (‖g‖ + 1e-6), clamped to 1; 0 = off', () => {
    expect(gradNormRef([[3], [4]], 1).totalNorm).toBe(5);
    expect(gradNormRef([[3], [4]], 1).clipCoef).toBeCloseTo(1 / (5 + 1e-6), 15);
    expect(gradNormRef([[3], [4]], 10).clipCoef).toBe(1);
    expect(gradNormRef([[3], [4]], 0).clipCoef).toBe(1);
  });
  test('three clipped steps on two tensors match torch 1.13 (float64)', () => {
    const p = { param: Float64Array.from([1.0, -2.0, 0.5, 0.0]), m: new Float64Array(4), v: new Float64Array(4) };
    const q = { param: Float64Array.from([0.3, -0.7, 1.1, 0.05]), m: new Float64Array(4), v: new Float64Array(4) };
    grads.forEach(([gp, gq], i) => {
      const { totalNorm, clipCoef } = gradNormRef([gp, gq], 1.0);
      expect(Math.abs(totalNorm - torch64[i].norm) / torch64[i].norm).toBeLessThan(1e-14);
      adamwRef(p, gp.map((g) => g * clipCoef), h, i + 1);
      adamwRef(q, gq.map((g) => g * clipCoef), h, i + 1);
      for (let j = 0; j < 4; j++) {
        expect(Math.abs(p.param[j] - torch64[i].p[j])).toBeLessThan(1e-14);
        expect(Math.abs(q.param[j] - torch64[i].q[j])).toBeLessThan(1e-14);
      }
    });
  });
});
