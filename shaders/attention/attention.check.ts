import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { pagedAttention, ATTENTION_VARIANTS, type AttentionOptions, type AttentionVariant } from './attention.ts';
import { attentionRef } from './attention.ref.ts';
import { kvWrite, fusedQkvLayout } from '../kv_write/kv_write.ts';
import { CheckKvPages } from '../kv/check-pages.ts';
import type { BatchEntry } from '../kv/layout.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { uniform01 } from '../lib/random.ts';

interface Case {
  name: string;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  blockSize: number;
  /** Per sequence: tokens already in the cache (written and attended in step 1 as prefill). */
  history: number[];
  /** Per sequence: tokens of step 2 (1 = decode, more = chunked prefill / fresh prefill). */
  step: number[];
  pad?: number;
  scale?: number;
  window?: number;
}

const cases: Case[] = [
  // stories260K shape: 8 heads, 4 KV heads, head_dim 8
  { name: 'attention paged gqa2 hd8 bs16', numHeads: 8, numKvHeads: 4, headDim: 8, blockSize: 16, history: [1, 5, 17, 33, 0], step: [1, 1, 3, 1, 6] },
  { name: 'attention paged mha hd64 bs16', numHeads: 3, numKvHeads: 3, headDim: 64, blockSize: 16, history: [33, 0, 5, 17], step: [1, 17, 2, 1], pad: 8 },
  { name: 'attention paged gqa4 hd17 bs5 (f32 lanes)', numHeads: 8, numKvHeads: 2, headDim: 17, blockSize: 5, history: [17, 1, 0, 5], step: [1, 4, 5, 1], scale: 0.31 },
  { name: 'attention paged gqa2 hd16 bs3 window13', numHeads: 4, numKvHeads: 2, headDim: 16, blockSize: 3, history: [33, 5, 0], step: [1, 3, 17], window: 13 },
];

const rng = uniform01;

/**
 * Allocates `counts[s]` more tokens for every sequence, interleaved in random order and random
 * chunk sizes, with throw-away sequences allocated and freed in between: the block tables come out
 * non-contiguous and shuffled.
 */
function allocateShuffled(cache: CheckKvPages, counts: number[], rand: () => number, junkId: { n: number }): void {
  const left = counts.slice();
  while (left.some((x) => x > 0)) {
    const live = left.map((x, i) => (x > 0 ? i : -1)).filter((i) => i >= 0);
    const s = live[Math.floor(rand() * live.length)];
    const n = Math.min(left[s], 1 + Math.floor(rand() * 6));
    cache.allocateOrThrow(s, n);
    left[s] -= n;
    if (rand() < 0.3) {
      const id = `junk${junkId.n++}`;
      cache.allocateOrThrow(id, 1 + Math.floor(rand() * 2 * cache.blockSize));
      if (rand() < 0.8) cache.free(id);
    }
  }
}

async function runCase(rt: Runtime, c: Case, seed: number, variant: AttentionVariant, extra: Partial<AttentionOptions> = {}) {
  const rand = rng(seed);
  const S = c.history.length;
  const H = c.numHeads, KV = c.numKvHeads, D = c.headDim;
  const fused = fusedQkvLayout(H, KV, D);
  const rowStride = fused.rowStride + (c.pad ?? 0);
  const totalTokens = c.history.reduce((a, b) => a + b, 0) + c.step.reduce((a, b) => a + b, 0);
  const numBlocks = Math.ceil(totalTokens / c.blockSize) + S + 16;
  const cache = new CheckKvPages(rt, { numLayers: 2, numKvHeads: KV, headDim: D, blockSize: c.blockSize, numBlocks });
  const layer = 1;
  const kvDim = KV * D;
  // explicit K/V histories for the reference
  const hist = c.history.map((_, s) => ({ k: new Float64Array((c.history[s] + c.step[s]) * kvDim), v: new Float64Array((c.history[s] + c.step[s]) * kvDim) }));
  const junk = { n: 0 };
  let worst = { maxRelErr: 0, bound: 1e-5, detail: '' };

  for (const [stepIdx, counts] of [c.history, c.step].entries()) {
    const before = c.history.map((h, s) => (stepIdx === 0 ? 0 : h));
    allocateShuffled(cache, counts, rand, junk);
    // batch entries in shuffled order; sequences with no tokens this step are left out
    const order = Array.from({ length: S }, (_, s) => s).filter((s) => counts[s] > 0);
    order.sort(() => rand() - 0.5);
    const batch: BatchEntry[] = order.map((s) => ({ seqId: s, positions: Array.from({ length: counts[s] }, (_, i) => before[s] + i) }));
    const tokens = batch.flatMap((e) => e.positions.map((pos) => ({ seq: e.seqId as number, pos })));
    const T = tokens.length;
    const qkv = randomArray(T * rowStride, seed * 31 + stepIdx, 1.5);
    tokens.forEach(({ seq, pos }, t) => {
      for (let e = 0; e < kvDim; e++) {
        hist[seq].k[pos * kvDim + e] = qkv[t * rowStride + fused.kCol + e];
        hist[seq].v[pos * kvDim + e] = qkv[t * rowStride + fused.vCol + e];
      }
    });
    const meta = cache.uploadTables(batch);
    const gq = rt.upload(qkv);
    const gout = rt.createBuffer(T * H * D * 4, 'attn-out');
    kvWrite(rt, cache, layer, gq, meta, T, { numHeads: H, rowStride });
    pagedAttention(rt, cache, layer, gq, gout, meta, { numHeads: H, qStride: rowStride, scale: c.scale, window: c.window, variant, ...extra });
    const got = await rt.readF32(gout, T * H * D);
    const ref = attentionRef({ numHeads: H, numKvHeads: KV, headDim: D, seqs: hist, tokens, q: qkv, qStride: rowStride, scale: c.scale, window: c.window });
    rt.destroy(gq);
    rt.destroy(gout);
    const r = result(got, ref, 1e-5, `step ${stepIdx + 1} (T=${T})`);
    if (!(r.maxRelErr <= worst.maxRelErr)) worst = { ...r, detail: r.detail ?? '' };
  }
  cache.destroy();
  return worst;
}

function variantOptions(variant: AttentionVariant, caseIndex: number): Partial<AttentionOptions> {
  const o: Partial<AttentionOptions> = {};
  if (variant === 'split') o.splitChunk = 8; // every context spans several chunks
  if (variant === 'sg' || variant === 'split') o.sgGuards = caseIndex >= 2; // the GPU-side guards too
  // G < group: two items per kv head (gqa4 case: G=2 exact, G=3 with a clamped head)
  if (variant === 'v2' && caseIndex === 2) o.headsPerItem = 3;
  if ((variant === 'sg' || variant === 'split') && caseIndex === 2) o.headsPerItem = variant === 'sg' ? 2 : 3;
  return o;
}

/** v2 at head dim 64 compiles for ~2-6 s on SwiftShader (fully unrolled vec4 code); its check runs
 *  the same case at head dim 32 (same generator, half the lanes). 'auto' picks v2 on CPUs only for
 *  head dims <= 16. */
function variantCase(variant: AttentionVariant, c: Case): Case {
  if (variant === 'v2' && c.headDim === 64) return { ...c, headDim: 32, name: c.name.replace('hd64', 'hd32') };
  return c;
}

export const checks: KernelCheck[] = ATTENTION_VARIANTS.flatMap((variant) =>
  cases.map((c0, i) => ({ c: variantCase(variant, c0), i })).map(({ c, i }) => ({
    name: c.name.replace('attention paged', `attention ${variant}`),
    // split: small chunks so that every context spans several; sg/split: the GPU-side guards too
    // v2/sg: also G < group (two work items per kv head) in the gqa4 case
    run: (rt: Runtime) => runCase(rt, c, 100 + i, variant, variantOptions(variant, i)),
  })),
);
