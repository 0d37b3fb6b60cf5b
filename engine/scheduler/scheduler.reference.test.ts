// The scheduler driving the float64 reference model (stories260K, base + two merged LoRA
// adapters) through the CPU paged-KV runner: staggered joins, chunked prefill, preemption under
// a tiny cache — every request's greedy tokens and logits equal greedyGenerate / forward alone.
import { beforeAll, describe, expect, it } from 'vitest';
import { forward, greedyGenerate, mergeLora, type RefLoraAdapter, type RefWeights } from '../../reference/llama.ts';
import { loadReferenceModel } from '../../reference/load.ts';
import { Rng } from '../../shaders/lib/random.ts';
import { STORIES_DIR, STORIES_FIRST_11, STORIES_PROMPT } from '../../tests/fixtures/stories.ts';
import type { ModelConfig } from '../model/config.ts';
import { CpuStepRunner, TrackedKv, type LastLogitsModel } from '../../tests/helpers/cpu-runner.ts';
import { Scheduler, type RequestHandle } from './scheduler.ts';

let config: ModelConfig;
const weightsFor = new Map<string | null, RefWeights>();

function randomLora(cfg: ModelConfig, base: RefWeights, seed: number): RefLoraAdapter {
  const rng = new Rng(seed);
  const r = 4;
  const layers: RefLoraAdapter['layers'] = new Map();
  for (let l = 0; l < cfg.numLayers; l++) {
    for (const m of ['self_attn.q_proj', 'self_attn.v_proj', 'mlp.down_proj']) {
      const name = `model.layers.${l}.${m}.weight`;
      const [outDim, inDim] = base.get(name)!.shape as [number, number];
      layers.set(name, { r, A: rng.normalF64(r * inDim, 0.3), B: rng.normalF64(outDim * r, 0.3) });
    }
  }
  return { scaling: 2, layers };
}

beforeAll(async () => {
  const m = await loadReferenceModel(STORIES_DIR);
  config = m.config;
  weightsFor.set(null, m.weights);
  weightsFor.set('a1', mergeLora(m.weights, randomLora(config, m.weights, 1)));
  weightsFor.set('a2', mergeLora(m.weights, randomLora(config, m.weights, 2)));
});

const refModel: LastLogitsModel = (adapter, tokens) => {
  const V = config.vocabSize;
  return forward(weightsFor.get(adapter)!, config, [...tokens]).data.subarray((tokens.length - 1) * V);
};

const GREEDY = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };

describe('Scheduler × float64 reference model (stories260K + LoRA adapters)', () => {
  it('mixed adapters, staggered joins, chunked prefill and preemption: greedy tokens and logits equal each request alone', async () => {
    const rng = new Rng(99);
    const kv = new TrackedKv(9, 4); // 36 slots: the requests below grow to 13–22 tokens each
    const runner = new CpuStepRunner(kv, refModel, { maxBatchTokens: 8 });
    const sched = new Scheduler(runner, kv, { maxBatchTokens: 8, maxRunning: 4 });
    const reqs = [
      { promptTokens: STORIES_PROMPT, adapter: null, n: 11 },
      { promptTokens: [1, ...rng.ints(9, 500).map((t) => t + 10)], adapter: 'a1', n: 8 },
      { promptTokens: STORIES_PROMPT, adapter: 'a2', n: 10 },
      { promptTokens: [1, ...rng.ints(12, 500).map((t) => t + 10)], adapter: null, n: 6 },
      { promptTokens: [1, 403, 407], adapter: 'a1', n: 9 },
    ];
    const hs: RequestHandle[] = [];
    for (let step = 0; hs.length < reqs.length || sched.hasWork(); step++) {
      if (step % 3 === 0 && hs.length < reqs.length) {
        const r = reqs[hs.length]!;
        hs.push(sched.submit({ promptTokens: r.promptTokens, adapter: r.adapter, sample: GREEDY, maxTokens: r.n, wantLogits: true }));
      }
      await sched.step();
      if (step > 500) throw new Error('did not finish');
    }
    const fins = await Promise.all(hs.map((h) => h.finished));
    expect(sched.metrics().preemptions).toBeGreaterThan(0);
    expect(runner.log.some((b) => b.segments.some((g) => g.sample === null))).toBe(true); // chunked
    expect(fins[0]!.output).toEqual(STORIES_FIRST_11);
    const V = config.vocabSize;
    reqs.forEach((r, i) => {
      const w = weightsFor.get(r.adapter)!;
      const solo = greedyGenerate(w, config, r.promptTokens, r.n).tokens;
      expect(fins[i]!.output, `request ${i}`).toEqual(solo);
      const all = forward(w, config, [...r.promptTokens, ...solo]).data;
      fins[i]!.logits!.forEach((l, j) => {
        const p = r.promptTokens.length - 1 + j;
        expect(Array.from(l)).toEqual(Array.from(Float32Array.from(all.subarray(p * V, (p + 1) * V))));
      });
    });
    // the adapters really change the output
    expect(fins[2]!.output).not.toEqual(fins[0]!.output);
    expect(kv.freeBlocks()).toBe(9);
    kv.alloc.validate();
  });
});
