// The worker side of the worker engine (createWorkerApi) in Node, without a Worker: the protocol
// object over a real engine (stories260K on Dawn) with a stand-in trainer.
import { describe, expect, it } from 'vitest';
import { createWorkerApi } from './worker.ts';
import { unwrap } from './protocol.ts';
import { STORIES_DIR } from '../../tests/fixtures/stories.ts';

describe('createWorkerApi', () => {
  it('destroy() during a training run waits for the run to stop before it destroys the engine', async () => {
    const order: string[] = [];
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const api = createWorkerApi({
      trainer: async (engine, _req, { signal }) => {
        const destroy = engine.destroy.bind(engine);
        (engine as { destroy: () => Promise<void> }).destroy = async () => {
          order.push('engine destroyed');
          await destroy();
        };
        started();
        await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
        // the optimizer step in flight when the abort came: it still records on the engine's runtime
        await new Promise((r) => setTimeout(r, 100));
        order.push('training stopped');
        throw new Error('train: cancelled');
      },
    });
    unwrap(await api.init({ model: STORIES_DIR, kvBlocks: 16 }, () => {}, () => {}));
    const run = api.train(1, { name: 'x', rows: [{ text: 'a' }] }, () => {});
    await running;
    await api.destroy();
    const r = await run;
    expect(order).toEqual(['training stopped', 'engine destroyed']);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.code).toBe('cancelled');
  });
});
