// Per-kernel GPU time (timestamp queries) of one 32-row decode step: base model, heterogeneous
// (8 rank-R adapters on all seven projections) with the fused LoRA path, and with the separate
// SGMV / BGMV dispatches. Where the time of a heterogeneous step goes, kernel by kernel.
//   npx tsx bench/multi-lora/profile.ts [--model stories260K|smollm2-135m] [--rank 16] [--steps 2]
import '../../engine/node-install.ts';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tmpdir, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { LocalDirSource } from '../../engine/model/source.ts';
import { PagedKvCache } from '../../engine/kv/paged-cache.ts';
import { GpuModel } from '../../engine/forward/gpu-model.ts';
import { GpuStepRunner } from '../../engine/forward/runner.ts';
import { createLoraSupport } from '../../engine/lora/index.ts';
import { MultiLoraRuntime } from '../../engine/lora/runtime.ts';
import { AdapterPool } from '../../engine/lora/pool.ts';
import { randomLoraAdapter } from '../../tests/helpers/random-lora.ts';
import { benchModelDir, runIfMain } from '../common.ts';
import type { StepSegment } from '../../engine/scheduler/types.ts';

const here = dirname(fileURLToPath(import.meta.url));
const GREEDY = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0, step: 0 };

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { model: { type: 'string', default: 'stories260K' }, rank: { type: 'string', default: '16' }, steps: { type: 'string', default: '2' }, 'max-rank': { type: 'string', default: '64' } }, strict: true });
  const R = Number(values.rank), steps = Number(values.steps), maxRank = Number(values['max-rank']);
  const rt = await Runtime.create();
  const dir = await benchModelDir(values.model === 'stories260K' ? null : 'smollm2-135m', join(here, '../../../shared/models/stories260K'), join(tmpdir(), 'lorafleet-bench-models'), console.log);
  const model = await GpuModel.load(rt, new LocalDirSource(dir));
  const c = model.config;
  const lora = await createLoraSupport(rt, c, { maxRank, gpuBudgetBytes: AdapterPool.bytesPerPage(c) * (8 * R + 1) + 64 });
  const unfused = new MultiLoraRuntime(rt, lora.pool, { fused: false });
  const fused = new MultiLoraRuntime(rt, lora.pool, { fused: true });
  const names = Array.from({ length: 8 }, (_, a) => `ad${a}`);
  for (const [a, n] of names.entries()) await lora.pool.register(n, randomLoraAdapter(c, { name: n, r: R, seed: 1000 + a, std: 0.02 }));
  const N = 32, P = 4;
  const cache = PagedKvCache.create(rt, { numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, numBlocks: N * 4 + 4, blockSize: 16 });
  const runner = new GpuStepRunner(model, cache);
  const last: number[] = [];
  const segs0: StepSegment[] = [];
  for (let s = 0; s < N; s++) {
    cache.allocateOrThrow(s, P);
    const toks = Array.from({ length: P }, (_, j) => (1 + s * 131 + j * 7919) % c.vocabSize);
    segs0.push({ seqId: s, tokens: toks, startPos: 0, adapter: null, sample: GREEDY, history: toks });
  }
  for (const r of await runner.runStep({ segments: segs0 })) last[r.seqId] = r.token!;
  const decode = async (adapter: (i: number) => string | null, n: number) => {
    for (let s = 0; s < N; s++) cache.truncate(s, P);
    for (let k = 0; k < n; k++) {
      const segs: StepSegment[] = [];
      for (let s = 0; s < N; s++) {
        cache.allocateOrThrow(s, 1);
        segs.push({ seqId: s, tokens: [last[s]!], startPos: P + k, adapter: adapter(s), sample: GREEDY, history: [last[s]!] });
      }
      await runner.runStep({ segments: segs });
    }
  };
  if (!rt.setProfiling(true)) throw new Error('no timestamp queries on this adapter');
  const prof = async (label: string, lr: MultiLoraRuntime | null, adapter: (i: number) => string | null) => {
    model.attachLora(lr);
    await decode(adapter, 1); // warm-up (pipelines)
    await rt.profile(true);
    await decode(adapter, steps);
    const p = await rt.profile(true);
    const total = p.reduce((a, x) => a + x.ms, 0) / steps;
    console.log(`\n${label}: ${total.toFixed(2)} ms GPU per step, ${p.reduce((a, x) => a + x.count, 0) / steps} dispatches`);
    for (const x of p.sort((a, b) => b.ms - a.ms)) console.log(`  ${x.name.padEnd(44)} ${(x.ms / steps).toFixed(3).padStart(9)} ms  ×${x.count / steps}`);
    return total;
  };
  console.log(`${values.model}, 32 decode rows, 8 adapters of rank ${R} (pool maxRank ${maxRank}), load ${loadavg()[0]!.toFixed(1)}`);
  // three interleaved rounds (order rotating); the minimum per configuration is the least disturbed
  const cfgs: Array<[string, MultiLoraRuntime | null, (i: number) => string | null]> = [
    ['base', null, () => null],
    ['hetero, fused (shrink as matmul tail)', fused, (i) => names[i % 8]!],
    ['hetero, separate SGMV/BGMV dispatches', unfused, (i) => names[i % 8]!],
  ];
  const best = cfgs.map(() => Infinity);
  for (let r = 0; r < 3; r++) for (let j = 0; j < 3; j++) {
    const c = (j + r) % 3;
    best[c] = Math.min(best[c]!, await prof(cfgs[c]![0], cfgs[c]![1], cfgs[c]![2]));
  }
  console.log(`\nmin over 3 rounds, ms GPU per step: ${cfgs.map(([n], i) => `${n} ${best[i]!.toFixed(1)}`).join(' · ')}`);
  console.log(`base ÷ hetero by GPU time: fused ${(best[0]! / best[1]!).toFixed(3)}, separate ${(best[0]! / best[2]!).toFixed(3)}`);
  rt.destroyAll();
  return 0;
}

runIfMain(import.meta.url, run);
