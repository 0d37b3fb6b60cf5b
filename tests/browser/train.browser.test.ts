// The trainer in headless Chromium: a few CPT steps on stories260K (loaded from a hub-layout URL
// and served with the adapter pool attached; the trainer reuses that GpuModel) give the same per-step losses as
// the same run in Node (Dawn), and the trained adapter is hot-added to the engine's live pool and
// served with the same greedy tokens Node gives for the Node-trained adapter.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { openBrowserPage, type BrowserEnv } from './harness.ts';
import { STORIES_DIR } from '../fixtures/stories.ts';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { LocalDirSource, MemorySource } from '../../engine/model/source.ts';
import { GpuModel } from '../../engine/forward/gpu-model.ts';
import { createLoraSupport } from '../../engine/lora/index.ts';
import { loadTokenizer } from '../../engine/model/tokenizer.ts';
import { serveGreedy } from './train-serve.ts';
import { validateTrainConfig } from '../../trainer/train/config.ts';
import { runTraining } from '../../trainer/train/run.ts';
import { MemoryIO } from '../../trainer/train/io.ts';

let env: BrowserEnv;
beforeAll(async () => {
  env = await openBrowserPage('/tests/browser/train.html', { hub: { 'local/stories260K': STORIES_DIR } });
  await env.page.waitForFunction(() => !!window.__trainTest, null, { timeout: 60_000 });
}, 90_000);
afterAll(async () => env?.close());

const DATA = ['The red ship left the harbor at dawn.', 'Lily waved at the red ship from the harbor.', 'The ship came back to the harbor at night.', 'Every day the red ship sails and comes back.']
  .map((text) => JSON.stringify({ text })).join('\n');
const CONFIG = {
  method: 'cpt', sequence_len: 32, micro_batch_size: 2, max_steps: 3, learning_rate: 3e-2, lr_scheduler: 'constant', warmup_steps: 0,
  lora_r: 4, lora_alpha: 8, lora_target_modules: ['q_proj', 'v_proj', 'down_proj'], max_grad_norm: 1, seed: 5, shuffle: false,
};
const PROMPT = 'The red ship';

describe('trainer (browser, chromium)', () => {
  test('a few training steps in the page match Node; the adapter is hot-added to the live pool', async () => {
    const url = `${env.baseUrl}/hub/local/stories260K`;
    const page = await env.page.evaluate(([u, c, d, p]) => window.__trainTest!(u as string, c as Record<string, unknown>, d as string, p as string), [url, CONFIG, DATA, PROMPT] as const);

    const rt = await Runtime.create();
    const io = new MemoryIO();
    await io.write('data.jsonl', DATA);
    const losses: number[] = [];
    await runTraining({
      config: validateTrainConfig({ ...CONFIG, base_model: STORIES_DIR, datasets: [{ path: 'data.jsonl' }], output_dir: 'out' }),
      baseDir: '', io, rt, openSource: (p) => new LocalDirSource(p), onStep: (s) => losses.push(s.loss),
    });
    expect(page.losses.length).toBe(3);
    page.losses.forEach((l, i) => expect(Math.abs(l - losses[i]!)).toBeLessThan(1e-4));
    expect(page.losses[2]).toBeLessThan(page.losses[0]!);
    expect(page.pool).toContain('trained');
    expect(page.sameModel).toBe(true); // trained and served on the one loaded base

    const model = await GpuModel.load(rt, new LocalDirSource(STORIES_DIR));
    const lora = await createLoraSupport(rt, model.config, { maxRank: 8, store: null, adapters: { trained: new MemorySource({ 'adapter_config.json': await io.readBytes('out/adapter_config.json'), 'adapter_model.safetensors': await io.readBytes('out/adapter_model.safetensors') }, 'node-trained') } });
    try {
      const ids = (await loadTokenizer(new LocalDirSource(STORIES_DIR))).encode(PROMPT);
      expect(page.trainedIds).toEqual(await serveGreedy(rt, model, lora, ids, 'trained', 8));
      expect(page.baseIds).toEqual(await serveGreedy(rt, model, lora, ids, null, 8));
    } finally {
      model.attachLora(null);
      lora.destroy();
      model.destroy();
    }
    expect(page.trainedIds).not.toEqual(page.baseIds);
  }, 300_000);
});
