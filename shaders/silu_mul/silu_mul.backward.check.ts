// Checks for shaders/silu_mul/silu_mul.backward.ts against siluMulBackwardRef (float64).
import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { siluMulBackward } from './silu_mul.backward.ts';
import { siluMulBackwardRef } from './silu_mul.ref.ts';

export const checks: KernelCheck[] = [
  ...([[1, 7], [13, 45]] as const).map(([rows, inter]) => ({
    name: `silu_mul backward fused rows=${rows} inter=${inter}`,
    async run(rt: Parameters<KernelCheck['run']>[0]) {
      const n = rows * inter;
      const gu = randomArray(2 * n, 40 + n, 6), dout = randomArray(n, 41 + n);
      gu[0] = -100; gu[1 % inter] = 90;
      const ggu = rt.upload(gu), gd = rt.upload(dout), gdgu = rt.createBuffer(2 * n * 4);
      siluMulBackward(rt, { gu: ggu, dout: gd, dgu: gdgu, rows, inter, fused: true });
      const out = await rt.readF32(gdgu, 2 * n);
      rt.destroy(ggu); rt.destroy(gd); rt.destroy(gdgu);
      const g = new Float64Array(n), u = new Float64Array(n);
      for (let r = 0; r < rows; r++) for (let j = 0; j < inter; j++) { g[r * inter + j] = gu[r * 2 * inter + j]; u[r * inter + j] = gu[r * 2 * inter + inter + j]; }
      const ref = siluMulBackwardRef(g, u, dout);
      const want = new Float64Array(2 * n);
      for (let r = 0; r < rows; r++) for (let j = 0; j < inter; j++) { want[r * 2 * inter + j] = ref.dg[r * inter + j]; want[r * 2 * inter + inter + j] = ref.du[r * inter + j]; }
      return result(out, want, 1e-5);
    },
  })),
  {
    name: 'silu_mul backward separate n=171',
    async run(rt) {
      const n = 171;
      const g = randomArray(n, 50, 6), u = randomArray(n, 51, 2), d = randomArray(n, 52);
      const bg = rt.upload(g), bu = rt.upload(u), bd = rt.upload(d), bdg = rt.createBuffer(n * 4), bdu = rt.createBuffer(n * 4);
      siluMulBackward(rt, { gu: bg, up: bu, dout: bd, dgu: bdg, dup: bdu, rows: 1, inter: n });
      const dg = await rt.readF32(bdg, n), du = await rt.readF32(bdu, n);
      for (const b of [bg, bu, bd, bdg, bdu]) rt.destroy(b);
      const ref = siluMulBackwardRef(g, u, d);
      const e = [result(dg, ref.dg, 1e-5), result(du, ref.du, 1e-5)];
      return e[0].maxRelErr > e[1].maxRelErr ? e[0] : e[1];
    },
  },
];
