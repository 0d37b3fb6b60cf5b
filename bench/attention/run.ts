// Attention bench: paged attention at LLM shapes (decode batches, prefill, a mixed batch), each
// variant timed in the same run, interleaved over rounds (min per variant), reported as GFLOP/s
// (4*ctx*headDim flops per token-head) and as a ratio against the per-(token, head) kernel 'v1'.
// 'split' uses the chunking 'auto' would pick, or a single chunk where 'auto' would not split.
//
//   npx tsx bench/attention/run.ts [--quick] [--variants v1,v2,sg,split]
//
// Timing: GPU timestamps when the adapter has timestamp-query, else wall clock around rt.sync();
// plus this process's CPU time per call, which on SwiftShader (in-process) is the kernel's work
// and, unlike wall time, barely moves when other processes compete for the cores.
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { PagedKvCache, type BatchEntry } from '../../engine/kv/paged-cache.ts';
import { pagedAttention, ATTENTION_VARIANTS, type AttentionVariant } from '../../shaders/attention/attention.ts';
import { kvWrite, fusedQkvLayout } from '../../shaders/kv_write/kv_write.ts';
import { randomArray } from '../../shaders/lib/check.ts';

const quick = process.argv.includes('--quick');
const variantsArg = process.argv.indexOf('--variants');
const VARIANTS = (variantsArg >= 0 ? process.argv[variantsArg + 1].split(',') : ATTENTION_VARIANTS) as AttentionVariant[];

interface Shape {
  model: string;
  H: number;
  KV: number;
  D: number;
}
const SHAPES: Shape[] = [
  { model: 'SmolLM2-135M', H: 9, KV: 3, D: 64 },
  { model: 'Qwen2.5-0.5B', H: 14, KV: 2, D: 64 },
];
/** [label, number of sequences, new tokens per sequence, context per sequence after the step] */
const BATCHES: Array<[string, number, number, number]> = quick
  ? [['decode 1x512', 1, 1, 512], ['decode 16x256', 16, 1, 256], ['prefill 1x128', 1, 128, 128]]
  : [
      ['decode 1x1024', 1, 1, 1024],
      ['decode 16x512', 16, 1, 512],
      ['prefill 1x256', 1, 256, 256],
      ['mixed 8x1@512+1x64', 9, 0, 0],
    ];

const rt = await Runtime.create();
const useTs = rt.setProfiling(true);
console.log(`device: ${rt.info.description}; timing: ${useTs ? 'GPU timestamps' : 'wall clock'}`);

/** Per call: GPU (or wall) ms, and CPU ms of this process (SwiftShader runs in-process: its
 *  CPU time is the kernel's work, unaffected by other processes competing for the cores). */
async function time(fn: () => void, reps: number): Promise<{ ms: number; cpu: number }> {
  fn();
  await rt.sync();
  await rt.profile(true);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  await rt.sync();
  const wall = (performance.now() - t0) / reps;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1000 / reps;
  if (!useTs) return { ms: wall, cpu };
  const rows = await rt.profile(true);
  return { ms: rows.reduce((a, r) => a + r.ms, 0) / reps, cpu };
}

const lines: string[] = [
  '| model | batch | variant | ms | GFLOP/s | vs v1 | CPU ms | GFLOP/CPU-s | CPU vs v1 |',
  '|---|---|---|---|---|---|---|---|---|',
];
for (const sh of SHAPES) {
  for (const [label, S, newTok, ctx] of BATCHES) {
    const entries: Array<{ ctx: number; n: number }> =
      label.startsWith('mixed') ? [...Array.from({ length: 8 }, () => ({ ctx: 512, n: 1 })), { ctx: 64, n: 64 }] : Array.from({ length: S }, () => ({ ctx, n: newTok }));
    const totalCtx = entries.reduce((a, e) => a + e.ctx, 0);
    const cache = new PagedKvCache(rt, { numLayers: 1, numKvHeads: sh.KV, headDim: sh.D, numBlocks: Math.ceil(totalCtx / 16) + entries.length + 4 });
    const batch: BatchEntry[] = entries.map((e, s) => {
      cache.allocateOrThrow(s, e.ctx);
      return { seqId: s, positions: Array.from({ length: e.n }, (_, i) => e.ctx - e.n + i) };
    });
    // fill the whole context of every sequence with random k/v
    const fillBatch: BatchEntry[] = entries.map((e, s) => ({ seqId: s, positions: Array.from({ length: e.ctx }, (_, i) => i) }));
    const fused = fusedQkvLayout(sh.H, sh.KV, sh.D);
    const fillMeta = cache.uploadTables(fillBatch);
    const fillQkv = rt.upload(randomArray(fillMeta.numTokens * fused.rowStride, 1));
    kvWrite(rt, cache, 0, fillQkv, fillMeta, fillMeta.numTokens, { numHeads: sh.H });
    await rt.sync();
    rt.destroy(fillQkv);
    const meta = cache.uploadTables(batch);
    const T = meta.numTokens;
    const qkv = rt.upload(randomArray(T * fused.rowStride, 2));
    const out = rt.createBuffer(T * sh.H * sh.D * 4);
    let flops = 0;
    for (const e of entries) for (let i = 0; i < e.n; i++) flops += 4 * (e.ctx - e.n + i + 1) * sh.D * sh.H;
    // variants interleaved over several rounds, min per variant: robust on a shared, busy CPU
    const best = new Map<string, number>();
    const bestCpu = new Map<string, number>();
    const rounds = quick ? 2 : 3;
    for (let round = 0; round < rounds; round++) {
      for (const v of VARIANTS) {
        const call = () => pagedAttention(rt, cache, 0, qkv, out, meta, { numHeads: sh.H, variant: v });
        const once = (await time(call, 1)).ms;
        const reps = Math.max(1, Math.min(5, Math.floor((quick ? 60 : 200) / Math.max(once, 1e-3))));
        const { ms, cpu } = await time(call, reps);
        best.set(v, Math.min(best.get(v) ?? Infinity, ms));
        bestCpu.set(v, Math.min(bestCpu.get(v) ?? Infinity, cpu));
      }
    }
    const base = best.get('v1');
    const baseCpu = bestCpu.get('v1');
    for (const v of VARIANTS) {
      const ms = best.get(v)!;
      const cpu = bestCpu.get(v)!;
      const row = `| ${sh.model} | ${label} | ${v} | ${ms.toFixed(3)} | ${(flops / ms / 1e6).toFixed(2)} | ${base ? (base / ms).toFixed(2) + 'x' : '-'} | ${cpu.toFixed(2)} | ${(flops / cpu / 1e6).toFixed(2)} | ${baseCpu ? (baseCpu / cpu).toFixed(2) + 'x' : '-'} |`;
      lines.push(row);
      console.log(row);
    }
    rt.destroy(qkv);
    rt.destroy(out);
    cache.destroy();
  }
}
console.log('\n' + lines.join('\n'));
rt.destroyAll();
process.exit(0);
