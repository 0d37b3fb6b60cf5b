// The worker side of the worker engine: the engine inside a Web Worker, driven from the page by
// createWorkerEngine (client.ts) through comlink. The package's worker entry, `lorafleet/worker`
// (trainer/worker/worker.ts), serves it with the trainer plugged in (WorkerTrainer), so a worker is:
//
//   // engine.worker.ts
//   import 'lorafleet/worker';
//
// Streams are pulled by the page (each pull returns every token produced since the last one), and
// cancelling one (AbortSignal or `break` in the page) aborts the request here, which frees its KV
// pages before cancel() answers. Metrics are reported to the page whenever they change.
import { expose, type Endpoint } from 'comlink';
import { createEngine } from '../api/engine.ts';
import { MemorySource } from '../model/source.ts';
import { IdbAdapterStore } from '../lora/store.ts';
import { LorafleetError } from '../../shaders/lib/errors.ts';
import type { EngineMetrics, GeneratedToken, GenerationSummary } from '../api/types.ts';
import type { LocalEngine } from '../api/engine.ts';
import { serializeError, type PoolInfo, type PullResult, type Reply, type SerializedError, type TrainEvent, type WorkerApi, type WorkerTrainRequest, type WorkerTrainResult } from './protocol.ts';

/**
 * Trains an adapter on the worker's engine (its loaded base, its runtime) and returns the PEFT
 * files; the worker then hot-adds them to the pool. trainer/worker/train.ts is the one lorafleet
 * ships (engine/ does not import trainer/: the trainer is plugged in here).
 */
export type WorkerTrainer = (
  engine: LocalEngine,
  req: WorkerTrainRequest,
  ctx: { onEvent: (e: TrainEvent) => void; signal: AbortSignal },
) => Promise<Omit<WorkerTrainResult, 'models' | 'elapsedMs'>>;

export interface WorkerApiOptions {
  /** Enables train(); without it train() answers an error saying so. */
  trainer?: WorkerTrainer;
}

interface Stream {
  ctrl: AbortController;
  buf: GeneratedToken[];
  done: boolean;
  summary?: GenerationSummary;
  error?: SerializedError;
  wake: (() => void) | null;
  /** Resolves when the generation has ended (pages freed). */
  ended: Promise<void>;
}

async function reply<T>(f: () => Promise<T> | T): Promise<Reply<T>> {
  try {
    return { ok: true, value: await f() };
  } catch (e) {
    return { ok: false, error: serializeError(e) };
  }
}

/** The worker side of the protocol over one engine (created by init). */
export function createWorkerApi(options: WorkerApiOptions = {}): WorkerApi {
  let engine: LocalEngine | null = null;
  const streams = new Map<number, Stream>();
  /** Running trainings: their cancel switch and their end (destroy() waits for it: a step in flight
   *  when the abort comes still records on the engine's model and runtime). */
  const trainings = new Map<number, { ctrl: AbortController; ended: Promise<unknown> }>();
  let timer: ReturnType<typeof setInterval> | null = null;
  let lastMetrics = '';

  const need = (): LocalEngine => {
    if (!engine) throw new Error('lorafleet worker: init() has not finished');
    return engine;
  };
  const metricsNow = (): EngineMetrics => need().metrics();

  return {
    async init(opts, onProgress, onMetrics) {
      return reply(async () => {
        if (engine) throw new Error('lorafleet worker: init() was already called');
        const adapters: Record<string, string | MemorySource> = {};
        for (const [name, src] of Object.entries(opts.adapters ?? {})) adapters[name] = typeof src === 'string' ? src : new MemorySource(src, name);
        const { lora: loraOpts, ...rest } = opts;
        const { store, ...lora } = loraOpts ?? {};
        engine = await createEngine({
          ...rest,
          ...(loraOpts ? { lora: { ...lora, store: store === 'indexeddb' ? new IdbAdapterStore() : null } } : {}),
          adapters,
          ...(opts.hub ? { hub: opts.hub } : {}),
          onProgress: (p) => void onProgress(p),
        });
        // Report metrics to the page whenever they change (checked every 25 ms; cheap counters).
        timer = setInterval(() => {
          if (!engine) return;
          const m = engine.metrics();
          const j = JSON.stringify(m);
          if (j !== lastMetrics) {
            lastMetrics = j;
            void onMetrics(m);
          }
        }, 25);
        return { modelName: engine.modelName, config: engine.config, models: engine.models(), metrics: engine.metrics(), gpu: engine.runtime.info };
      });
    },

    async start(id, input, opts) {
      return reply(() => {
        const e = need();
        if (streams.has(id)) throw new Error(`lorafleet worker: stream ${id} exists`);
        const ctrl = new AbortController();
        const gen = e.generate(input, { ...opts, signal: ctrl.signal }); // throws here on a bad request
        const s: Stream = { ctrl, buf: [], done: false, wake: null, ended: Promise.resolve() };
        const wake = () => {
          const w = s.wake;
          s.wake = null;
          w?.();
        };
        s.ended = (async () => {
          try {
            for await (const t of gen) {
              s.buf.push(t);
              wake();
            }
            s.summary = await gen.done;
          } catch (err) {
            s.error = serializeError(err);
          } finally {
            s.done = true;
            wake();
          }
        })();
        streams.set(id, s);
        return null;
      });
    },

    async pull(id): Promise<PullResult> {
      const s = streams.get(id);
      if (!s) return { items: [], done: true, error: { name: 'Error', message: `lorafleet worker: no stream ${id}` }, metrics: metricsNow() };
      while (!s.buf.length && !s.done) await new Promise<void>((r) => (s.wake = r));
      const items = s.buf.splice(0);
      const done = s.done && !s.buf.length;
      if (done) streams.delete(id);
      return {
        items,
        done,
        ...(done && s.summary ? { summary: s.summary } : {}),
        ...(done && s.error ? { error: s.error } : {}),
        metrics: metricsNow(),
      };
    },

    async cancel(id) {
      const s = streams.get(id);
      if (s) {
        s.ctrl.abort();
        await s.ended;
        streams.delete(id);
      }
      return metricsNow();
    },

    async loadAdapter(name, source) {
      return reply(async () => {
        const e = need();
        await e.loadAdapter(name, source);
        return e.models();
      });
    },

    async unloadAdapter(name) {
      return reply(async () => {
        const e = need();
        await e.unloadAdapter(name);
        return e.models();
      });
    },

    async metrics() {
      return metricsNow();
    },

    async pool() {
      return reply((): PoolInfo => {
        const pool = need().lora?.pool;
        if (!pool) return { stats: null, adapters: [], store: null };
        const adapters = pool.names().map((name) => ({ name, tier: pool.isResident(name) ? ('gpu' as const) : pool.inCpuTier(name) ? ('cpu' as const) : ('stored' as const), pins: pool.pinCount(name) }));
        return { stats: pool.stats(), adapters, store: pool.store?.kind ?? null };
      });
    },

    async train(id, req, onEvent) {
      return reply(async () => {
        const e = need();
        if (!options.trainer) throw new LorafleetError("this worker has no trainer: serve it with import 'lorafleet/worker'", 'invalid_request');
        if (trainings.has(id)) throw new Error(`lorafleet worker: training ${id} exists`);
        const ctrl = new AbortController();
        const t0 = performance.now();
        const run = (async () => {
          try {
            const r = await options.trainer!(e, req, { onEvent: (ev) => void onEvent(ev), signal: ctrl.signal });
            if (ctrl.signal.aborted) throw new LorafleetError('training cancelled', 'cancelled');
            // hot-add: the trained files go into the live pool (an unpinned adapter of that name is replaced)
            if (e.lora?.pool.has(r.name)) await e.unloadAdapter(r.name);
            await e.loadAdapter(r.name, r.adapterFiles);
            return { ...r, models: e.models(), elapsedMs: performance.now() - t0 };
          } catch (err) {
            if (ctrl.signal.aborted) throw new LorafleetError('training cancelled', 'cancelled');
            throw err;
          }
        })();
        trainings.set(id, { ctrl, ended: run.catch(() => {}) });
        try {
          return await run;
        } finally {
          trainings.delete(id);
        }
      });
    },

    async cancelTrain(id) {
      trainings.get(id)?.ctrl.abort();
    },

    async destroy() {
      if (timer) clearInterval(timer);
      timer = null;
      for (const t of trainings.values()) t.ctrl.abort();
      for (const s of streams.values()) s.ctrl.abort();
      // the engine goes only after every training run and stream has stopped using it
      await Promise.all([...[...trainings.values()].map((t) => t.ended), ...[...streams.values()].map((s) => s.ended)]);
      streams.clear();
      const e = engine;
      engine = null;
      await e?.destroy();
    },
  };
}

/** Serves the worker protocol on `endpoint` (default: this worker's global scope). */
export function exposeEngine(endpoint?: Endpoint, options: WorkerApiOptions = {}): void {
  expose(createWorkerApi(options), endpoint ?? (globalThis as unknown as Endpoint));
}

/** True inside a dedicated (or other) worker. */
export function inWorkerScope(): boolean {
  const g = globalThis as { WorkerGlobalScope?: abstract new () => unknown };
  return typeof g.WorkerGlobalScope === 'function' && globalThis instanceof g.WorkerGlobalScope;
}
