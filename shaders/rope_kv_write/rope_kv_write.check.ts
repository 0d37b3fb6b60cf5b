import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { ropeKvWrite } from './rope_kv_write.ts';
import { ropeKvWriteRef } from './rope_kv_write.ref.ts';
import { ropeInvFreq } from '../rope/rope.ts';
import { CheckKvPages } from '../kv/check-pages.ts';

interface Case { numHeads: number; numKvHeads: number; headDim: number; blockSize: number; numBlocks: number; T: number; pad: number; tokenBase: number; maxPos: number }
const cases: Case[] = [
  // stories260K decode shape
  { numHeads: 8, numKvHeads: 4, headDim: 8, blockSize: 16, numBlocks: 3, T: 1, pad: 0, tokenBase: 0, maxPos: 40 },
  // awkward: head dim 10, 3 kv heads for 7 q heads, padded rows, records at an offset, skipped slots
  { numHeads: 7, numKvHeads: 3, headDim: 10, blockSize: 5, numBlocks: 9, T: 19, pad: 3, tokenBase: 6, maxPos: 3000 },
  { numHeads: 9, numKvHeads: 3, headDim: 64, blockSize: 16, numBlocks: 2, T: 3, pad: 0, tokenBase: 0, maxPos: 20000 },
];

export const checks: KernelCheck[] = cases.map((c) => ({
  name: `rope_kv_write h=${c.numHeads} kv=${c.numKvHeads} d=${c.headDim} bs=${c.blockSize} T=${c.T}`,
  async run(rt) {
    const layer = 1;
    const cache = new CheckKvPages(rt, { numLayers: 2, numKvHeads: c.numKvHeads, headDim: c.headDim, blockSize: c.blockSize, numBlocks: c.numBlocks });
    const D = c.headDim;
    const Q = c.numHeads * D, KV = c.numKvHeads * D;
    const layout = { rowStride: Q + 2 * KV + c.pad, qCol: 0, kCol: Q, vCol: Q + KV };
    const inv = ropeInvFreq({ headDim: D, ropeTheta: 10000, ropeScaling: null });
    const qkv = randomArray(c.T * layout.rowStride, 21 + c.T, 2);
    const n = cache.layerElements;
    const k0 = randomArray(n, 22, 100), v0 = randomArray(n, 23, 100); // sentinels: stray writes show up
    rt.write(cache.k[layer]!, k0);
    rt.write(cache.v[layer]!, v0);
    const pr = randomArray(c.T, 24);
    const positions = Array.from(pr, (u, t) => (t === 0 ? c.maxPos - 1 : Math.floor(((u + 1) / 2) * c.maxPos)));
    const slots = Array.from({ length: c.T }, (_, t) => (t % 5 === 2 ? 0xffffffff : (t * 7 + 3) % (c.numBlocks * c.blockSize)));
    // distinct slots for written tokens (T <= numBlocks*blockSize / 7 steps apart)
    const words = new Uint32Array(c.tokenBase + 4 * c.T + 3).fill(0xdeadbeef);
    for (let t = 0; t < c.T; t++) {
      words[c.tokenBase + 4 * t + 1] = positions[t]!;
      words[c.tokenBase + 4 * t + 2] = slots[t]!;
    }
    const gq = rt.upload(qkv), gm = rt.upload(words), gi = rt.upload(inv);
    ropeKvWrite(rt, cache, layer, gq, { buffer: gm, numTokens: c.T, tokenBase: c.tokenBase }, gi, c.T, c.numHeads, layout);
    const [oq, ok, ov] = await Promise.all([rt.readF32(gq, qkv.length), rt.readF32(cache.k[layer]!, n), rt.readF32(cache.v[layer]!, n)]);
    const ref = ropeKvWriteRef(qkv, k0, v0, positions, slots, inv, { ...layout, numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: D, blockSize: c.blockSize });
    rt.destroy(gq); rt.destroy(gm); rt.destroy(gi);
    cache.destroy();
    const gpu = new Float32Array(oq.length + ok.length + ov.length);
    gpu.set(oq); gpu.set(ok, oq.length); gpu.set(ov, oq.length + ok.length);
    const r = new Float64Array(gpu.length);
    r.set(ref.qkv); r.set(ref.k, oq.length); r.set(ref.v, oq.length + ok.length);
    return result(gpu, r, 1e-5);
  },
}));
