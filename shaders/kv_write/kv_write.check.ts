import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { kvWrite, fusedQkvLayout } from './kv_write.ts';
import { kvWriteRef } from './kv_write.ref.ts';
import { CheckKvPages } from '../kv/check-pages.ts';

interface Case {
  name: string;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  blockSize: number;
  numBlocks: number;
  T: number;
  /** Extra floats at the end of each qkv row (exercises rowStride). */
  pad: number;
  /** Use the BatchMeta token records instead of a plain slot buffer. */
  viaMeta: boolean;
}

const cases: Case[] = [
  { name: 'kv_write vec4 hd8 bs16 meta', numHeads: 8, numKvHeads: 4, headDim: 8, blockSize: 16, numBlocks: 7, T: 37, pad: 0, viaMeta: true },
  { name: 'kv_write vec4 hd64 bs3 slots+skip', numHeads: 4, numKvHeads: 2, headDim: 64, blockSize: 3, numBlocks: 13, T: 29, pad: 4, viaMeta: false },
  { name: 'kv_write f32 hd17 bs5 slots+skip', numHeads: 6, numKvHeads: 3, headDim: 17, blockSize: 5, numBlocks: 9, T: 23, pad: 3, viaMeta: false },
];

/** Deterministic shuffle. */
function shuffled(n: number, seed: number): number[] {
  const r = randomArray(n, seed);
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(((r[i] + 1) / 2) * (i + 1)) % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

export const checks: KernelCheck[] = cases.map((c) => ({
  name: c.name,
  async run(rt) {
    const cache = new CheckKvPages(rt, { numLayers: 2, numKvHeads: c.numKvHeads, headDim: c.headDim, blockSize: c.blockSize, numBlocks: c.numBlocks });
    const layer = 1;
    const fused = fusedQkvLayout(c.numHeads, c.numKvHeads, c.headDim);
    const rowStride = fused.rowStride + c.pad;
    const qkv = randomArray(c.T * rowStride, 11);
    const n = cache.layerElements;
    const k0 = randomArray(n, 12, 100), v0 = randomArray(n, 13, 100); // sentinels: stray writes show up
    rt.write(cache.k[layer], k0);
    rt.write(cache.v[layer], v0);
    let slots: number[];
    const gq = rt.upload(qkv);
    let slotBuf: GPUBuffer | null = null;
    if (c.viaMeta) {
      // three sequences with interleaved allocation -> non-contiguous tables; T tokens split 20/1/16
      const lens = [20, 1, 16];
      for (let round = 0; round < 40; round++) {
        const s = round % 3;
        const want = Math.min(lens[s], cache.numTokens(s) + 3);
        cache.allocateOrThrow(s, want - cache.numTokens(s));
      }
      const meta = cache.uploadTables([
        { seqId: 2, positions: Array.from({ length: 16 }, (_, i) => i) },
        { seqId: 0, positions: Array.from({ length: 20 }, (_, i) => i) },
        { seqId: 1, positions: [0] },
      ]);
      slots = [];
      for (let t = 0; t < c.T; t++) slots.push(meta.words[4 * t + 2]);
      kvWrite(rt, cache, layer, gq, meta, c.T, { numHeads: c.numHeads, rowStride });
    } else {
      const perm = shuffled(c.numBlocks * c.blockSize, 14);
      slots = Array.from({ length: c.T }, (_, t) => (t % 7 === 3 ? 0xffffffff : perm[t]));
      // slots stored with a stride of 2 at word offset 1 to exercise slotBase/slotStride
      const words = new Uint32Array(1 + 2 * c.T);
      slots.forEach((s, t) => (words[1 + 2 * t] = s));
      slotBuf = rt.upload(words);
      kvWrite(rt, cache, layer, gq, { buffer: slotBuf, slotBase: 1, slotStride: 2 }, c.T, {
        rowStride,
        kCol: fused.kCol,
        vCol: fused.vCol,
      });
    }
    const gk = await rt.readF32(cache.k[layer], n);
    const gv = await rt.readF32(cache.v[layer], n);
    const ref = kvWriteRef(k0, v0, qkv, slots, { numKvHeads: c.numKvHeads, headDim: c.headDim, blockSize: c.blockSize, rowStride, kCol: fused.kCol, vCol: fused.vCol });
    const both = new Float32Array(2 * n);
    both.set(gk);
    both.set(gv, n);
    const refBoth = new Float64Array(2 * n);
    refBoth.set(ref.k);
    refBoth.set(ref.v, n);
    rt.destroy(gq);
    if (slotBuf) rt.destroy(slotBuf);
    cache.destroy();
    return result(both, refBoth, 1e-9, 'pages must hold exactly the written rows');
  },
}));
