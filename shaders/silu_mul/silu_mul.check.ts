import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { siluMul } from './silu_mul.ts';
import { siluMulRef, siluMulFusedRef } from './silu_mul.ref.ts';

// Per-element relative error: silu(g)*u spans many magnitudes.
function elemRel(gpu: Float32Array, ref: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(gpu[i] - ref[i]);
    const e = d / Math.max(Math.abs(ref[i]), 1e-30);
    if (!(e <= worst)) worst = d <= 1e-37 ? worst : Number.isNaN(e) ? Infinity : e;
  }
  return worst;
}

export const checks: KernelCheck[] = [
  ...[1, 172, 4099, 3 * 576].map((n) => ({
    name: `silu_mul n=${n}`,
    async run(rt: Parameters<KernelCheck['run']>[0]) {
      const g = randomArray(n, 21 + n, 12), u = randomArray(n, 22 + n, 3);
      if (n > 4) { g[0] = -100; g[1] = 100; g[2] = 0; g[3] = -87; }
      const gg = rt.upload(g), gu = rt.upload(u), go = rt.createBuffer(n * 4);
      siluMul(rt, gg, gu, go, n);
      const out = await rt.readF32(go, n);
      rt.destroy(gg); rt.destroy(gu); rt.destroy(go);
      const ref = siluMulRef(g, u);
      return { ...result(out, ref, 1e-5), maxRelErr: Math.max(result(out, ref, 1e-5).maxRelErr, elemRel(out, ref)) };
    },
  })),
  ...[[1, 172], [3, 63], [17, 172]].map(([rows, inter]) => ({
    name: `silu_mul fused rows=${rows} inter=${inter}`,
    async run(rt: Parameters<KernelCheck['run']>[0]) {
      const gu = randomArray(rows * 2 * inter, 31 + inter, 8);
      const b = rt.upload(gu), go = rt.createBuffer(rows * inter * 4);
      siluMul(rt, b, b, go, rows * inter, { rows, inter });
      const out = await rt.readF32(go, rows * inter);
      rt.destroy(b); rt.destroy(go);
      const ref = siluMulFusedRef(gu, rows, inter);
      return { ...result(out, ref, 1e-5), maxRelErr: Math.max(result(out, ref, 1e-5).maxRelErr, elemRel(out, ref)) };
    },
  })),
];
