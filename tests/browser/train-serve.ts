// Greedy serving through the engine's own parts (GpuModel + adapter pool + paged KV + scheduler),
// shared by the browser trainer test's page and its Node side.
import type { Runtime } from '../../shaders/gpu/runtime.ts';
import type { GpuModel } from '../../engine/forward/gpu-model.ts';
import { GpuStepRunner } from '../../engine/forward/runner.ts';
import { PagedKvCache } from '../../engine/kv/paged-cache.ts';
import { Scheduler } from '../../engine/scheduler/scheduler.ts';
import type { LoraSupport } from '../../engine/lora/index.ts';

const GREEDY = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };

export async function serveGreedy(rt: Runtime, model: GpuModel, lora: LoraSupport | null, prompt: number[], adapter: string | null, n: number): Promise<number[]> {
  const c = model.config;
  model.attachLora(lora?.runtime ?? null);
  const cache = PagedKvCache.create(rt, { numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, numBlocks: 64, blockSize: 16 });
  const sched = new Scheduler(new GpuStepRunner(model, cache), cache, { maxBatchTokens: 64, maxRunning: 2, hasAdapter: (x) => !!lora?.pool.has(x) });
  try {
    const h = sched.submit({ promptTokens: prompt, adapter, sample: GREEDY, maxTokens: n });
    while (sched.hasWork()) await sched.step();
    return (await h.finished).output;
  } finally {
    cache.destroy();
  }
}
