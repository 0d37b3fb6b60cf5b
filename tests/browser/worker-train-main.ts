// The page side of the worker-training test: the engine runs in a Web Worker ('lorafleet/worker',
// engine + trainer), driven from 'lorafleet' as a user's page would. Trains a few CPT steps there
// on the already loaded embedded base, serves the hot-added adapter in the same worker, and
// reports losses, events, greedy ids, a cancelled run and typed errors for the Node side to check.
import { createWorkerEngine, LorafleetError, type TrainEvent } from 'lorafleet';

export interface WorkerTrainTestResult {
  losses: number[];
  events: TrainEvent[];
  steps: number;
  baseIds: number[];
  /** The base's greedy ids, served while the training ran (after its first step). */
  duringIds: number[];
  stepsWhenServed: number;
  trainedIds: number[];
  modelsAfter: string[];
  files: string[];
  badKey: { code: string; message: string };
  reserved: { code: string; message: string };
  cancelled: { name: string; stepsSeen: number; pool: string[] };
}

declare global {
  interface Window {
    __workerTrainTest?: (config: Record<string, unknown>, rows: unknown[], prompt: string) => Promise<WorkerTrainTestResult>;
  }
}

const errorOf = (e: unknown) => ({ code: e instanceof LorafleetError ? e.code : `not a LorafleetError: ${(e as Error).name}`, message: (e as Error).message });

window.__workerTrainTest = async (config, rows, prompt) => {
  const worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module' });
  const engine = await createWorkerEngine(worker, { kvBlocks: 64, lora: { maxRank: 8 } });
  const greedy = async (model?: string) => {
    const ids: number[] = [];
    for await (const t of engine.generate(prompt, { max_tokens: 8, temperature: 0, ...(model ? { model } : {}) })) if (t.token >= 0) ids.push(t.token);
    return ids;
  };
  try {
    const baseIds = await greedy();

    // 1. a few steps in the worker, on its loaded base; the adapter is hot-added as 'trained'
    //    while it trains, the worker keeps serving: a greedy request runs between its steps
    const events: TrainEvent[] = [];
    let firstStep!: () => void;
    const stepped = new Promise<void>((res) => (firstStep = res));
    const training = engine.train({ name: 'trained', method: 'cpt', rows, config }, { onEvent: (e) => (events.push(e), e.type === 'step' && firstStep()) });
    await stepped;
    const duringIds: number[] = [];
    let stepsWhenServed = -1; // steps done when the request's first token came
    for await (const t of engine.generate(prompt, { max_tokens: 8, temperature: 0 })) {
      if (stepsWhenServed < 0) stepsWhenServed = events.filter((e) => e.type === 'step').length;
      if (t.token >= 0) duringIds.push(t.token);
    }
    const r = await training;
    // events travel on their own channel: let the last ones arrive
    for (let i = 0; i < 100 && events.filter((e) => e.type === 'step').length < r.steps; i++) await new Promise((res) => setTimeout(res, 20));
    const trainedIds = await greedy('trained');

    // 2. clear errors: a bad trainer key, a key the worker owns
    let badKey = { code: '', message: '' };
    try {
      await engine.train({ name: 'bad', rows, config: { ...config, lora_r: -1 } });
    } catch (e) {
      badKey = errorOf(e);
    }
    let reserved = { code: '', message: '' };
    try {
      await engine.train({ name: 'bad', rows, config: { base_model: 'elsewhere' } });
    } catch (e) {
      reserved = errorOf(e);
    }

    // 3. cancel a long run after its first step: nothing is added to the pool
    const ctrl = new AbortController();
    let stepsSeen = 0;
    let cancelName = '';
    try {
      await engine.train({ name: 'cancelled', method: 'cpt', rows, config: { ...config, max_steps: 200 } }, {
        signal: ctrl.signal,
        onEvent: (e) => {
          if (e.type === 'step' && ++stepsSeen === 1) ctrl.abort();
        },
      });
    } catch (e) {
      cancelName = (e as Error).name;
    }
    const pool = (await engine.pool()).adapters.map((a) => a.name);

    document.getElementById('log')!.textContent = JSON.stringify({ losses: r.losses, trainedIds });
    return {
      losses: r.losses, events, steps: r.steps, baseIds, duringIds, stepsWhenServed, trainedIds, modelsAfter: r.models, files: Object.keys(r.adapterFiles).sort(),
      badKey, reserved, cancelled: { name: cancelName, stepsSeen, pool },
    };
  } finally {
    await engine.destroy();
  }
};
