// Training in the worker engine (headless Chromium): a few CPT steps in the Web Worker that serves
// the embedded stories260K ('lorafleet/worker' = engine + trainer), on that worker's loaded base,
// give the same per-step losses as the same run in Node (Dawn) within 1e-4; the adapter is hot-added
// to that worker's live pool and serves the same greedy tokens Node serves
// for its own trained adapter, different from the base's. A request served while it trains gets the
// base's tokens. A cancelled run adds nothing; bad keys are typed errors naming the field.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { openBrowserPage, type BrowserEnv } from './harness.ts';
import { STORIES_DIR } from '../fixtures/stories.ts';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { LocalDirSource } from '../../engine/model/source.ts';
import { createEngine } from '../../engine/api/engine.ts';
import { validateTrainConfig } from '../../trainer/train/config.ts';
import { runTraining } from '../../trainer/train/run.ts';
import { MemoryIO } from '../../trainer/train/io.ts';
import type { WorkerTrainTestResult } from './worker-train-main.ts';

const ROWS = ['The red ship left the harbor at dawn.', 'Lily waved at the red ship from the harbor.', 'The ship came back to the harbor at night.', 'Every day the red ship sails and comes back.'].map((text) => ({ text }));
const CONFIG = {
  sequence_len: 32, micro_batch_size: 2, max_steps: 3, learning_rate: 3e-2, lr_scheduler: 'constant', warmup_steps: 0,
  lora_r: 4, lora_alpha: 8, lora_target_modules: ['q_proj', 'v_proj', 'down_proj'], max_grad_norm: 1, seed: 5, shuffle: false,
};
const PROMPT = 'The red ship';

let env: BrowserEnv;
let r: WorkerTrainTestResult;
const node = { losses: [] as number[], trainedIds: [] as number[], baseIds: [] as number[] };

beforeAll(async () => {
  // the same run in Node, and its adapter served by the Node engine
  const rt = await Runtime.create();
  const io = new MemoryIO();
  await io.write('data.jsonl', ROWS.map((x) => JSON.stringify(x)).join('\n'));
  await runTraining({
    config: validateTrainConfig({ ...CONFIG, method: 'cpt', base_model: STORIES_DIR, datasets: [{ path: 'data.jsonl' }], output_dir: 'out' }),
    baseDir: '', io, rt, openSource: (p) => new LocalDirSource(p), onStep: (s) => node.losses.push(s.loss),
  });
  const engine = await createEngine({ device: rt, kvBlocks: 64 });
  try {
    await engine.loadAdapter('trained', { 'adapter_config.json': await io.readBytes('out/adapter_config.json'), 'adapter_model.safetensors': await io.readBytes('out/adapter_model.safetensors') });
    const greedy = async (model?: string) => (await drainIds(engine.generate(PROMPT, { max_tokens: 8, temperature: 0, ...(model ? { model } : {}) })));
    node.baseIds = await greedy();
    node.trainedIds = await greedy('trained');
  } finally {
    await engine.destroy();
    rt.destroyAll();
  }

  env = await openBrowserPage('/tests/browser/worker-train.html');
  await env.page.waitForFunction(() => !!window.__workerTrainTest, null, { timeout: 60_000 });
  r = await env.page.evaluate(([c, rows, p]) => window.__workerTrainTest!(c, rows, p), [CONFIG, ROWS, PROMPT] as const);
}, 400_000);
afterAll(async () => env?.close());

async function drainIds(g: AsyncIterable<{ token: number }>): Promise<number[]> {
  const ids: number[] = [];
  for await (const t of g) if (t.token >= 0) ids.push(t.token);
  return ids;
}

describe('training in the worker engine (browser, chromium)', () => {
  test("a few steps in the worker match Node's losses within 1e-4, streamed as step events", () => {
    expect(r.steps).toBe(3);
    expect(r.losses.length).toBe(3);
    r.losses.forEach((l, i) => expect(Math.abs(l - node.losses[i]!), `step ${i + 1}: worker ${l}, node ${node.losses[i]}`).toBeLessThan(1e-4));
    expect(r.losses[2]).toBeLessThan(r.losses[0]!);
    const start = r.events.find((e) => e.type === 'start');
    expect(start && start.type === 'start' && start.totalSteps).toBe(3);
    const steps = r.events.filter((e) => e.type === 'step');
    expect(steps.map((e) => (e.type === 'step' ? e.step : 0))).toEqual([1, 2, 3]);
    steps.forEach((e, i) => expect(e.type === 'step' && e.loss).toBe(r.losses[i]));
    expect(r.files).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
  });

  test('the trained adapter is hot-added to the live pool and serves in the same worker: greedy = Node, ≠ base', () => {
    expect(r.modelsAfter).toEqual(['stories260K', 'trained']);
    expect(r.baseIds).toEqual(node.baseIds);
    expect(r.trainedIds).toEqual(node.trainedIds);
    expect(r.trainedIds).not.toEqual(r.baseIds);
  });

  test('the worker serves while it trains: a request between the steps gets the base greedy tokens, and the losses above still match Node', () => {
    expect(r.duringIds).toEqual(node.baseIds);
    expect(r.stepsWhenServed).toBeGreaterThanOrEqual(1);
    expect(r.stepsWhenServed).toBeLessThan(3); // its first token came before the run ended
  });

  test('cancel: the run stops in the worker and nothing is added to the pool; bad keys are typed errors', () => {
    expect(r.cancelled.name).toBe('AbortError');
    expect(r.cancelled.stepsSeen).toBeLessThan(10);
    expect(r.cancelled.pool).toEqual(['trained']);
    expect(r.badKey.code).toBe('invalid_request');
    expect(r.badKey.message).toMatch(/lora_r/);
    expect(r.reserved).toEqual({ code: 'invalid_request', message: expect.stringMatching(/config\.base_model is set by the worker/) });
  });
});
