// `lorafleet/worker`: the engine inside a Web Worker, driven from the page by createWorkerEngine
// (client.ts) through comlink. Importing this module in a worker exposes it on `self`:
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
import type { EngineMetrics, GeneratedToken, GenerationSummary } from '../api/types.ts';
import type { LocalEngine } from '../api/engine.ts';
import { serializeError, type PullResult, type Reply, type SerializedError, type WorkerApi } from './protocol.ts';

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
export function createWorkerApi(): WorkerApi {
  let engine: LocalEngine | null = null;
  const streams = new Map<number, Stream>();
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
        engine = await createEngine({
          ...opts,
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

    async destroy() {
      if (timer) clearInterval(timer);
      timer = null;
      for (const s of streams.values()) s.ctrl.abort();
      await Promise.all([...streams.values()].map((s) => s.ended));
      streams.clear();
      const e = engine;
      engine = null;
      await e?.destroy();
    },
  };
}

/** Serves the worker protocol on `endpoint` (default: this worker's global scope). */
export function exposeEngine(endpoint?: Endpoint): void {
  expose(createWorkerApi(), endpoint ?? (globalThis as unknown as Endpoint));
}

// Imported inside a dedicated worker: serve right away.
const g = globalThis as { WorkerGlobalScope?: abstract new () => unknown };
if (typeof g.WorkerGlobalScope === 'function' && globalThis instanceof g.WorkerGlobalScope) exposeEngine();
