// A run through runTraining (config → data → GPU → outputs) on stories260K, then:
//   - the saved PEFT adapter, served by the engine (multi-LoRA pool, paged KV, scheduler), gives the
//     trainer's own logits within 1e-4;
//   - the merged Domain-Base (lorafleet merge) gives the same greedy tokens as base + adapter;
//   - a run killed after its checkpoint and resumed ends with the same adapter as an unbroken run.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { LocalDirSource, MemorySource } from '../../engine/model/source.ts';
import { GpuModel } from '../../engine/forward/gpu-model.ts';
import { GpuStepRunner } from '../../engine/forward/runner.ts';
import { PagedKvCache } from '../../engine/kv/paged-cache.ts';
import { Scheduler } from '../../engine/scheduler/scheduler.ts';
import { createLoraSupport } from '../../engine/lora/index.ts';
import { loadPeftAdapter } from '../../engine/lora/peft.ts';
import { STORIES_DIR } from '../../tests/fixtures/stories.ts';
import { loadTokenizer } from '../../engine/model/tokenizer.ts';
import { validateTrainConfig } from './config.ts';
import { runTraining } from './run.ts';
import { mergeAdapter } from './merge.ts';
import { MemoryIO } from './io.ts';
import { GpuTrainBackend } from './gpu-backend.ts';
import { readAdapterTensors } from './checkpoint.ts';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
}, 60_000);
afterAll(() => rt?.destroyAll());

const TEXT = [
  'The harbor crane lifts red boxes onto the big ship every morning.',
  'Lily saw the crane and the ship. The crane was tall and the ship was red.',
  'Every morning the ship leaves the harbor with the red boxes.',
  'Tom counted the boxes: one red box, two red boxes, three red boxes on the ship.',
];
const files = (io: MemoryIO) => io.write('data/text.jsonl', TEXT.map((t) => JSON.stringify({ text: t })).join('\n'));
const cfgOf = (extra: Record<string, unknown> = {}) => validateTrainConfig({
  base_model: STORIES_DIR, method: 'cpt', datasets: [{ path: 'data/text.jsonl' }], sequence_len: 32, micro_batch_size: 2,
  max_steps: 4, learning_rate: 3e-2, lr_scheduler: 'linear', warmup_steps: 1, lora_r: 4, lora_alpha: 8,
  lora_target_modules: 'all-linear', save_steps: 2, output_dir: 'out', seed: 3, ...extra,
});
const GREEDY = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };

async function serve(model: GpuModel, adapter: MemorySource | null, prompt: number[], n: number) {
  const c = model.config;
  const lora = adapter ? await createLoraSupport(rt, c, { adapters: { t: adapter }, maxRank: 8 }) : null;
  model.attachLora(lora?.runtime ?? null);
  const cache = PagedKvCache.create(rt, { numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, numBlocks: 16, blockSize: 8 });
  const sched = new Scheduler(new GpuStepRunner(model, cache), cache, { maxBatchTokens: 64, maxRunning: 2, hasAdapter: (x) => !!lora?.pool.has(x) });
  try {
    const h = sched.submit({ promptTokens: prompt, adapter: adapter ? 't' : null, sample: GREEDY, maxTokens: n, wantLogits: true });
    while (sched.hasWork()) await sched.step();
    return await h.finished;
  } finally {
    model.attachLora(null);
    lora?.destroy();
    cache.destroy();
  }
}

describe('trained adapter → engine, merge, resume (stories260K)', () => {
  it('served adapter = trainer logits within 1e-4; merged model = base + adapter greedy tokens; resume = unbroken run', async () => {
    const io = new MemoryIO();
    await files(io);
    const cfg = cfgOf();
    const res = await runTraining({ config: cfg, baseDir: '', io, rt, openSource: (p) => new LocalDirSource(p) });
    expect(res.steps).toBe(4);
    const log = (await io.readText('out/train_log.jsonl')).trim().split('\n').map((l) => JSON.parse(l));
    expect(log.at(-1)).toMatchObject({ step: 4 });
    for (const k of ['loss', 'grad_norm', 'learning_rate', 'tokens', 'tokens_per_s']) expect(typeof log.at(-1)[k]).toBe('number');
    expect(log.at(-1).loss).toBeLessThan(log[0].loss);
    expect(await io.exists('out/loss.svg')).toBe(true);
    expect(await io.exists('out/checkpoint-2/optimizer.safetensors')).toBe(true);
    const adapterFiles = { 'adapter_config.json': await io.readBytes('out/adapter_config.json'), 'adapter_model.safetensors': await io.readBytes('out/adapter_model.safetensors') };

    // served by the engine vs the trainer's own forward
    const model = await GpuModel.load(rt, new LocalDirSource(STORIES_DIR));
    try {
      const a = await loadPeftAdapter(new MemorySource(adapterFiles, 'trained'), model.config);
      expect(a.targetModules.length).toBe(7);
      const prompt = (await loadTokenizer(new LocalDirSource(STORIES_DIR))).encode('Every morning the');
      const n = 8;
      const fin = await serve(model, new MemorySource(adapterFiles, 'trained'), prompt, n);
      const be = new GpuTrainBackend(rt, model, { r: a.r, alpha: a.alpha, useRslora: a.useRslora, scaling: a.scaling, modules: a.targetModules, dropout: 0 }, a.weights);
      let worst = 0;
      try {
        const all = await be.logits([...prompt, ...fin.output]);
        const V = model.config.vocabSize;
        fin.logits!.forEach((l, j) => {
          const p = prompt.length - 1 + j;
          const row = all.subarray(p * V, (p + 1) * V);
          let d = 0, m = 0;
          for (let v = 0; v < V; v++) { d = Math.max(d, Math.abs(l[v]! - row[v]!)); m = Math.max(m, Math.abs(row[v]!)); }
          worst = Math.max(worst, d / m);
        });
      } finally {
        be.destroy();
      }
      expect(worst).toBeLessThan(1e-4);
      const baseOut = await serve(model, null, prompt, n);

      // merged Domain-Base: same greedy tokens as base + adapter
      const mio = new MemoryIO();
      await mergeAdapter(new LocalDirSource(STORIES_DIR), new MemorySource(adapterFiles, 'trained'), mio, 'merged');
      const mfiles: Record<string, Uint8Array> = {};
      for (const [k, v] of mio.files) mfiles[k.replace(/^merged\//, '')] = v;
      for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) expect(mfiles[f], f).toBeDefined();
      const merged = await GpuModel.load(rt, new MemorySource(mfiles, 'merged'));
      try {
        const mOut = await serve(merged, null, prompt, n);
        expect(mOut.output).toEqual(fin.output);
      } finally {
        merged.destroy();
      }
      expect(fin.output).not.toEqual(baseOut.output); // the adapter changes the model
    } finally {
      model.destroy();
    }

    // killed after checkpoint-2, resumed: same final adapter as the unbroken run
    const io2 = new MemoryIO();
    await files(io2);
    const ac = new AbortController();
    await expect(runTraining({ config: cfg, baseDir: '', io: io2, rt, openSource: (p) => new LocalDirSource(p), signal: ac.signal, onStep: (s) => { if (s.step === 2) ac.abort(); } })).rejects.toThrow(/cancelled/);
    expect(await io2.exists('out/checkpoint-2/trainer_state.json')).toBe(true);
    expect(await io2.exists('out/adapter_model.safetensors')).toBe(false);
    const res2 = await runTraining({ config: cfg, baseDir: '', io: io2, rt, openSource: (p) => new LocalDirSource(p) });
    expect(res2.resumedFrom).toBe(2);
    expect(res2.steps).toBe(2);
    const w1 = readAdapterTensors(adapterFiles['adapter_model.safetensors'], 'a');
    const w2 = readAdapterTensors(await io2.readBytes('out/adapter_model.safetensors'), 'b');
    let num = 0, den = 0;
    for (const [k, p] of w1) for (const ab of ['A', 'B'] as const) p[ab].forEach((v, i) => { num += (v - w2.get(k)![ab][i]!) ** 2; den += v * v; });
    expect(Math.sqrt(num / den)).toBeLessThan(1e-6);
    const log2 = (await io2.readText('out/train_log.jsonl')).trim().split('\n').map((l) => JSON.parse(l));
    expect(log2.map((e) => e.step)).toEqual(log.map((e) => e.step));
  }, 300_000);
});
