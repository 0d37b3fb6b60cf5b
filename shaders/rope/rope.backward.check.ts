// Checks for shaders/rope/rope.backward.ts against ropeBackwardRef (float64).
import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { ropeInvFreq } from './rope.ts';
import { ropeBackward } from './rope.backward.ts';
import { ropeBackwardRef } from './rope.ref.ts';

const cases = [
  { tokens: 1, heads: 3, headDim: 8, theta: 10000, maxPos: 5, fused: false },
  { tokens: 19, heads: 2, headDim: 62, theta: 1000000, maxPos: 4099, fused: true },
];

export const checks: KernelCheck[] = cases.map((c) => ({
  name: `rope backward tokens=${c.tokens} heads=${c.heads} d=${c.headDim}${c.fused ? ' fused-k' : ''}`,
  async run(rt) {
    const inv = ropeInvFreq({ headDim: c.headDim, ropeTheta: c.theta, ropeScaling: null });
    const pos = Uint32Array.from(randomArray(c.tokens, 9 + c.tokens), (u, t) => (t === 0 ? c.maxPos - 1 : Math.floor(((u + 1) / 2) * c.maxPos)));
    const rowStride = c.fused ? (c.heads * 3 + 1) * c.headDim : c.heads * c.headDim;
    const colOffset = c.fused ? c.headDim : 0;
    const dy = randomArray(c.tokens * rowStride, 4 + c.headDim, 2);
    const g = rt.upload(dy), gp = rt.upload(pos), gi = rt.upload(inv);
    ropeBackward(rt, g, gp, gi, c.tokens, c.heads, c.headDim, c.fused ? { rowStride, colOffset } : {});
    const out = await rt.readF32(g, dy.length);
    rt.destroy(g); rt.destroy(gp); rt.destroy(gi);
    return result(out, ropeBackwardRef(dy, pos, inv, c.tokens, c.heads, c.headDim, rowStride, colOffset), 1e-5);
  },
}));
