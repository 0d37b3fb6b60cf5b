// Checks for shaders/adamw against adamw.ref.ts (float64): several AdamW steps with clipping on
// two tensors (one a slice of a flat buffer), and the global grad norm over awkward lengths.
import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { adamwStep, gradNorm } from './adamw.ts';
import { adamwRef, gradNormRef } from './adamw.ref.ts';

export const checks: KernelCheck[] = [
  {
    name: 'grad_norm lengths 1, 255, 1037 (+ offset) clip on/off',
    async run(rt) {
      const lens = [1, 255, 1037];
      const gs = lens.map((n, i) => randomArray(n, 60 + i, 0.5));
      const flat = new Float32Array(7 + 1037);
      flat.set(gs[2], 7);
      const b0 = rt.upload(gs[0]), b1 = rt.upload(gs[1]), b2 = rt.upload(flat), out = rt.createBuffer(8), out2 = rt.createBuffer(8);
      gradNorm(rt, [{ buffer: b0, n: 1 }, { buffer: b1, n: 255 }, { buffer: b2, n: 1037, offset: 7 }], 1.0, out);
      gradNorm(rt, [{ buffer: b0, n: 1 }, { buffer: b1, n: 255 }], 0, out2);
      const r = await rt.readF32(out, 2), r2 = await rt.readF32(out2, 2);
      for (const b of [b0, b1, b2, out, out2]) rt.destroy(b);
      const ref = gradNormRef(gs, 1.0), ref2 = gradNormRef(gs.slice(0, 2), 0);
      if (!(ref.clipCoef < 1)) return { maxRelErr: Infinity, bound: 1e-5, detail: 'test data does not clip' };
      const e = Math.max(result([r[0]], [ref.totalNorm], 1e-5).maxRelErr, result([r[1]], [ref.clipCoef], 1e-5).maxRelErr,
        result([r2[0]], [ref2.totalNorm], 1e-5).maxRelErr, Math.abs(r2[1] - 1));
      return { maxRelErr: e, bound: 1e-5, detail: `norm ${r[0]} vs ${ref.totalNorm}, coef ${r[1]} vs ${ref.clipCoef}` };
    },
  },
  {
    name: 'adamw 5 steps, 2 tensors (one at an offset), clip, weight decay',
    async run(rt) {
      const h = { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
      const n0 = 37, n1 = 130, off = 11;
      const p0 = randomArray(n0, 70), p1 = new Float32Array(off + n1);
      p1.set(randomArray(n1, 71), off);
      const gp0 = rt.upload(p0), gp1 = rt.upload(p1);
      const gm0 = rt.createBuffer(n0 * 4), gv0 = rt.createBuffer(n0 * 4), gm1 = rt.createBuffer((off + n1) * 4), gv1 = rt.createBuffer((off + n1) * 4);
      const gg0 = rt.createBuffer(n0 * 4), gg1 = rt.createBuffer(n1 * 4), clip = rt.createBuffer(8);
      const ref = [
        { param: Float64Array.from(p0), m: new Float64Array(n0), v: new Float64Array(n0) },
        { param: Float64Array.from(p1.subarray(off)), m: new Float64Array(n1), v: new Float64Array(n1) },
      ];
      for (let t = 1; t <= 5; t++) {
        // Gradients of growing size: early steps are not clipped, later ones are.
        const g0 = randomArray(n0, 80 + t, 0.05 * t * t), g1 = randomArray(n1, 90 + t, 0.05 * t * t);
        rt.write(gg0, g0); rt.write(gg1, g1);
        gradNorm(rt, [{ buffer: gg0, n: n0 }, { buffer: gg1, n: n1 }], 1.5, clip);
        adamwStep(rt, [{ param: gp0, grad: gg0, m: gm0, v: gv0, n: n0 }, { param: gp1, grad: gg1, m: gm1, v: gv1, n: n1, offset: off, gradOffset: 0 }], h, t, clip);
        const { clipCoef } = gradNormRef([g0, g1], 1.5);
        adamwRef(ref[0], Array.from(g0, (g) => Math.fround(g * Math.fround(clipCoef))), h, t);
        adamwRef(ref[1], Array.from(g1, (g) => Math.fround(g * Math.fround(clipCoef))), h, t);
      }
      const o0 = await rt.readF32(gp0, n0), o1 = await rt.readF32(gp1, n1, off), m1 = await rt.readF32(gm1, n1, off);
      const pad = await rt.readF32(gp1, off);
      for (const b of [gp0, gp1, gm0, gv0, gm1, gv1, gg0, gg1, clip]) rt.destroy(b);
      // Relative to the change of the parameters (p − p0), the quantity the optimizer computes.
      const d0 = result(o0.map((v, i) => v - p0[i]), ref[0].param.map((v, i) => v - p0[i]), 1e-4);
      const d1 = result(o1.map((v, i) => v - p1[off + i]), ref[1].param.map((v, i) => v - p1[off + i]), 1e-4);
      const dm = result(m1, ref[1].m, 1e-4);
      const padOk = pad.every((v) => v === 0);
      return { maxRelErr: padOk ? Math.max(d0.maxRelErr, d1.maxRelErr, dm.maxRelErr) : Infinity, bound: 1e-4, detail: `dp0 ${d0.maxRelErr.toExponential(1)} dp1 ${d1.maxRelErr.toExponential(1)} m ${dm.maxRelErr.toExponential(1)}` };
    },
  },
];
