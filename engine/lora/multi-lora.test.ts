// Done-when test for multi-LoRA serving: for a mix of requests over 5 adapters of different
// ranks (1, 2, 4, 8, 16; one rsLoRA; different target modules) and the base model — requests joining
// and leaving mid-flight, chunked prefill, and a KV cache small enough to force preemption — each
// request's greedy tokens and logits equal those of the same request run alone on a model whose
// weights are merged in float64 (W + s·B·A, reference/llama.ts mergeLora), within 1e-4 relative.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { PagedKvCache } from '../kv/paged-cache.ts';
import { LocalDirSource, MemorySource } from '../model/source.ts';
import { GpuModel } from '../forward/gpu-model.ts';
import { GpuStepRunner } from '../forward/runner.ts';
import { Scheduler, type RequestHandle } from '../scheduler/scheduler.ts';
import { argmax, forward, mergeLora, type RefWeights } from '../../reference/llama.ts';
import { loadReferenceModel } from '../../reference/load.ts';
import { Rng } from '../../shaders/lib/random.ts';
import { STORIES_DIR, STORIES_FIRST_11, STORIES_PROMPT } from '../../tests/fixtures/stories.ts';
import type { ModelConfig } from '../model/config.ts';
import { createLoraSupport, type LoraSupport } from './index.ts';
import { adapterSpec, encodePeftAdapter, savePeftAdapter, type LoraAdapter } from './peft.ts';
import { randomLoraAdapter } from '../../tests/helpers/random-lora.ts';
import { toRefAdapter } from '../../reference/lora.ts';

let rt: Runtime;
let config: ModelConfig;
let base: RefWeights;
let model: GpuModel;
let tmp: string;
const adapters: LoraAdapter[] = [];

beforeAll(async () => {
  rt = await Runtime.create();
  const m = await loadReferenceModel(STORIES_DIR);
  config = m.config;
  base = m.weights;
  model = await GpuModel.load(rt, new LocalDirSource(STORIES_DIR));
  const specs = [
    { name: 'r1', r: 1, targetModules: ['q_proj', 'v_proj'] as const },
    { name: 'r4', r: 4, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const },
    { name: 'r8', r: 8, useRslora: true, targetModules: ['o_proj', 'down_proj', 'up_proj'] as const },
    { name: 'r16', r: 16, targetModules: ['k_proj', 'gate_proj', 'down_proj', 'q_proj'] as const },
    { name: 'r2', r: 2, targetModules: ['v_proj', 'o_proj', 'up_proj'] as const },
  ];
  specs.forEach((s, i) => adapters.push(randomLoraAdapter(config, { ...s, targetModules: [...s.targetModules], alpha: 2 * s.r, std: 0.12, seed: 100 + i })));
  tmp = await mkdtemp(join(tmpdir(), 'mlora-'));
}, 60_000);
afterAll(async () => {
  rt?.destroyAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

const GREEDY = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };

function rowRelErr(gpu: Float32Array, ref: ArrayLike<number>): number {
  let d = 0, m = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(gpu[i]! - ref[i]!);
    if (!(e <= d)) d = Number.isNaN(e) ? Infinity : e;
    m = Math.max(m, Math.abs(ref[i]!));
  }
  return d / m;
}

describe('multi-LoRA serving = merged float64 model, per request', () => {
  it('5 adapters (ranks 1/2/4/8/16, rsLoRA, different targets) + base, staggered joins/leaves, chunked prefill, preemption', async () => {
    // Adapters arrive through the PEFT format: two from directories on disk, one from memory files, one parsed.
    await savePeftAdapter(join(tmp, 'r1'), adapterSpec(adapters[0]!));
    await savePeftAdapter(join(tmp, 'r8'), { ...adapterSpec(adapters[2]!), dtype: 'F32' });
    let lora: LoraSupport | null = null;
    lora = await createLoraSupport(rt, config, {
      maxRank: 16,
      // 30 pages: any 4 of the 5 adapters (ranks 1+2+4+8+16 = 31) fit at once (maxRunning 4), all 5 do not,
      // so an adapter is evicted and its pages are recycled mid-run
      gpuBudgetBytes: 30 * (await import('./pool.ts')).AdapterPool.bytesPerPage(config) + 100,
      adapters: {
        r1: join(tmp, 'r1'),
        r4: new MemorySource(encodePeftAdapter(adapterSpec(adapters[1]!)), 'mem-r4'),
        r8: join(tmp, 'r8'),
        r16: adapters[3]!,
        r2: adapters[4]!,
      },
    });
    model.attachLora(lora.runtime);
    const cache = PagedKvCache.create(rt, { numLayers: config.numLayers, numKvHeads: config.numKvHeads, headDim: config.headDim, numBlocks: 10, blockSize: 4 });
    const runner = new GpuStepRunner(model, cache);
    const sched = new Scheduler(runner, cache, { maxBatchTokens: 9, maxRunning: 4, hasAdapter: (n) => lora!.pool.has(n) });
    try {
      const rng = new Rng(7);
      const reqs: Array<{ prompt: number[]; adapter: string | null; n: number }> = [
        { prompt: STORIES_PROMPT, adapter: null, n: 11 },
        { prompt: STORIES_PROMPT, adapter: 'r16', n: 9 },
        { prompt: [1, ...rng.ints(10, 500).map((t) => t + 10)], adapter: 'r1', n: 7 },
        { prompt: [1, 403, 407], adapter: 'r4', n: 10 },
        { prompt: STORIES_PROMPT, adapter: 'r8', n: 8 },
        { prompt: [1, ...rng.ints(7, 500).map((t) => t + 10)], adapter: 'r16', n: 6 },
        { prompt: [1, ...rng.ints(4, 500).map((t) => t + 10)], adapter: 'r4', n: 5 },
        { prompt: [1, 403], adapter: 'r8', n: 9 },
        { prompt: [1, ...rng.ints(6, 500).map((t) => t + 10)], adapter: 'r2', n: 7 },
        { prompt: STORIES_PROMPT, adapter: 'r1', n: 6 },
      ];
      const hs: RequestHandle[] = [];
      for (let step = 0; hs.length < reqs.length || sched.hasWork(); step++) {
        if (step % 2 === 0 && hs.length < reqs.length) {
          const r = reqs[hs.length]!;
          hs.push(sched.submit({ promptTokens: r.prompt, adapter: r.adapter, sample: GREEDY, maxTokens: r.n, wantLogits: true }));
        }
        await sched.step();
        if (step > 1000) throw new Error(`did not finish: ${JSON.stringify(sched.metrics())}`);
      }
      const fins = await Promise.all(hs.map((h) => h.finished));
      expect(sched.metrics().preemptions).toBeGreaterThan(0);
      const stats = lora.pool.stats();
      expect(stats.evictions).toBeGreaterThan(0);
      expect(stats.persistentLoads).toBeGreaterThanOrEqual(0);
      expect(fins[0]!.output).toEqual(STORIES_FIRST_11);

      const merged = new Map<string | null, RefWeights>([[null, base]]);
      for (const a of adapters) merged.set(a.name, mergeLora(base, toRefAdapter(a)));
      const V = config.vocabSize;
      let worst = 0;
      reqs.forEach((r, i) => {
        const w = merged.get(r.adapter)!;
        expect(fins[i]!.reason, fins[i]!.error?.message).toBe('length');
        const out = fins[i]!.output;
        expect(out.length).toBe(r.n);
        // One float64 pass over prompt + the served tokens: the argmax of row p must be token p+1.
        // By induction that is exactly "greedy alone on the merged model yields the same tokens".
        const all = forward(w, config, [...r.prompt, ...out]).data;
        fins[i]!.logits!.forEach((l, j) => {
          const p = r.prompt.length - 1 + j;
          const row = all.subarray(p * V, (p + 1) * V);
          expect(out[j], `request ${i} (${r.adapter}) token ${j}`).toBe(argmax(row));
          worst = Math.max(worst, rowRelErr(l, row));
        });
      });
      expect(worst).toBeLessThan(1e-4);
      // the adapters really change the model: same prompt, different continuations
      expect(fins[1]!.output).not.toEqual(fins[0]!.output);
      expect(fins[4]!.output).not.toEqual(fins[0]!.output);
      expect(cache.freeBlocks?.() ?? 10).toBe(10);
    } finally {
      model.attachLora(null);
      lora.destroy();
    }
  }, 120_000);
});
