import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { rope, ropeInvFreq, type RopeConfig } from './rope.ts';
import { ropeRef } from './rope.ref.ts';

const llama3: RopeConfig['ropeScaling'] = { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };

interface Case { tokens: number; heads: number; headDim: number; theta: number; scaling: RopeConfig['ropeScaling']; maxPos: number; fused?: boolean }
const cases: Case[] = [
  { tokens: 1, heads: 8, headDim: 8, theta: 10000, scaling: null, maxPos: 17 },
  { tokens: 3, heads: 9, headDim: 64, theta: 100000, scaling: { type: 'linear', factor: 4 }, maxPos: 300 },
  { tokens: 17, heads: 3, headDim: 64, theta: 500000, scaling: llama3, maxPos: 4000 },
  { tokens: 5, heads: 2, headDim: 128, theta: 500000, scaling: llama3, maxPos: 40000 },
  { tokens: 17, heads: 3, headDim: 62, theta: 1000000, scaling: null, maxPos: 4099, fused: true },
];

export const checks: KernelCheck[] = [
  ...cases.map((c) => ({
    name: `rope tokens=${c.tokens} heads=${c.heads} d=${c.headDim} ${c.scaling?.type ?? 'plain'} pos<${c.maxPos}${c.fused ? ' fused-k' : ''}`,
    async run(rt: Parameters<KernelCheck['run']>[0]) {
      const inv = ropeInvFreq({ headDim: c.headDim, ropeTheta: c.theta, ropeScaling: c.scaling });
      const posRand = randomArray(c.tokens, 7 + c.tokens);
      const pos = Uint32Array.from(posRand, (u, t) => (t === 0 ? c.maxPos - 1 : Math.floor(((u + 1) / 2) * c.maxPos)));
      // fused: rows of [q (heads*d) | k (kv*d) | v (kv*d)] with kv = 2; rotate the k slice only.
      const kv = 2;
      const rowStride = c.fused ? (c.heads + 2 * kv) * c.headDim : c.heads * c.headDim;
      const colOffset = c.fused ? c.heads * c.headDim : 0;
      const heads = c.fused ? kv : c.heads;
      const x = randomArray(c.tokens * rowStride, 3 + c.headDim, 2);
      const gx = rt.upload(x), gp = rt.upload(pos), gi = rt.upload(inv);
      rope(rt, gx, gp, gi, c.tokens, heads, c.headDim, c.fused ? { rowStride, colOffset } : {});
      const out = await rt.readF32(gx, x.length);
      rt.destroy(gx); rt.destroy(gp); rt.destroy(gi);
      return result(out, ropeRef(x, pos, inv, c.tokens, heads, c.headDim, rowStride, colOffset), 1e-5);
    },
  })),
  {
    name: 'rope invFreq llama3 (HF float32 formula)',
    async run() {
      // Llama-3.2 values: theta 500000, head_dim 64, factor 32, low 1, high 4, old 8192.
      const inv = ropeInvFreq({ headDim: 64, ropeTheta: 500000, ropeScaling: llama3 });
      const plain = ropeInvFreq({ headDim: 64, ropeTheta: 500000, ropeScaling: null });
      // Independent float64 evaluation of the same formula; must agree to float32 rounding.
      const ref = new Float64Array(32);
      for (let i = 0; i < 32; i++) {
        const f0 = 1 / 500000 ** ((2 * i) / 64);
        const wl = (2 * Math.PI) / f0;
        if (wl < 8192 / 4) ref[i] = f0;
        else if (wl > 8192) ref[i] = f0 / 32;
        else { const s = (8192 / wl - 1) / 3; ref[i] = ((1 - s) * f0) / 32 + s * f0; }
      }
      // Known regimes: first freqs unchanged, last freqs divided by 32.
      let bad = '';
      if (inv[0] !== 1 || inv[1] !== plain[1]) bad += ' high-freq changed;';
      if (Math.abs(inv[31] * 32 - plain[31]) > 1e-6 * plain[31]) bad += ' low-freq not /32;';
      let worst = 0;
      for (let i = 0; i < 32; i++) worst = Math.max(worst, Math.abs(inv[i] - ref[i]) / ref[i]);
      return { maxRelErr: bad ? Infinity : worst, bound: 1e-6, detail: bad };
    },
  },
];
