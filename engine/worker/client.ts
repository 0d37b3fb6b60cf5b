// createWorkerEngine: the Engine interface in the page, with the engine itself in a Web Worker
// that imports 'lorafleet/worker' (worker.ts). Tokens stream across the boundary as an async
// iterator (the page pulls every token produced since its last pull); an AbortSignal or a `break`
// cancels the request in the worker, which frees its KV pages. Typed errors keep their `code`.
//
// The worker also trains: engine.train({ name, rows, config }, { onEvent, signal }) runs the trainer
// there on the loaded base and hot-adds the adapter to the worker's pool (protocol.ts).
//
//   const engine = await createWorkerEngine(new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module' }));
//   for await (const c of await engine.chat.completions.create({ messages, stream: true })) out(c.choices[0]?.delta.content ?? '');
import { proxy, releaseProxy, wrap, type Endpoint, type Remote } from 'comlink';
import type { ChatCompletionRequest } from '../api/schema.ts';
import { createChatCompletion } from '../api/openai.ts';
import type { GpuInfo } from '../../shaders/gpu/info.ts';
import type { ModelConfig } from '../model/config.ts';
import type { ModelSource } from '../model/source.ts';
import type {
  AdapterInput,
  ChatCompletions,
  Engine,
  EngineMetrics,
  EngineProgress,
  GenerateInput,
  GenerateOptions,
  GeneratedToken,
  Generation,
  GenerationSummary,
  RouteFn,
} from '../api/types.ts';
import { reviveError, unwrap, type PoolInfo, type TrainEvent, type WorkerApi, type WorkerEngineInit, type WorkerTrainRequest, type WorkerTrainResult } from './protocol.ts';

export interface WorkerEngineOptions extends WorkerEngineInit {
  onProgress?: (p: EngineProgress) => void;
  /** Terminate the worker on destroy() (default true when given a Worker). */
  terminate?: boolean;
  /** Answers model "auto" (runs in the page, e.g. lorafleet/router's loadRouter(url).asRouteFn()). */
  router?: RouteFn;
}

export interface WorkerTrainOptions {
  /** Progress: start, every optimizer step (loss, grad norm, learning rate), log entries, messages. */
  onEvent?: (e: TrainEvent) => void;
  /** Cancels the run in the worker (rejects with the signal's reason; nothing is added to the pool). */
  signal?: AbortSignal;
}

/** An Engine whose work runs in a worker. */
export interface WorkerEngine extends Engine {
  /** The worker's WebGPU adapter. */
  readonly gpu: GpuInfo;
  /** Trains a LoRA adapter in the worker on its loaded base and hot-adds it to the pool under req.name. */
  train(req: WorkerTrainRequest, opts?: WorkerTrainOptions): Promise<WorkerTrainResult>;
  /** The adapter pool: tiers, bytes, hits. */
  pool(): Promise<PoolInfo>;
}

const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'];

/** Starts the engine in `worker` (a Worker running 'lorafleet/worker', or any comlink endpoint). */
export async function createWorkerEngine(worker: Worker | Endpoint, opts: WorkerEngineOptions = {}): Promise<WorkerEngine> {
  const { onProgress, terminate, router, ...init } = opts;
  const remote: Remote<WorkerApi> = wrap<WorkerApi>(worker);
  let metrics: EngineMetrics;
  const onMetrics = (m: EngineMetrics) => {
    metrics = m;
  };
  const info = unwrap(await remote.init(init, proxy((p: EngineProgress) => onProgress?.(p)), proxy(onMetrics)));
  metrics = info.metrics;
  let models = info.models;
  const modelName = info.modelName;
  let nextId = 1;

  type RemoteGeneration = Generation & { readonly started: Promise<void> };
  let nextTrain = 1;

  function generate(input: GenerateInput, o: GenerateOptions = {}): RemoteGeneration {
    const { signal, ...rest } = o;
    const id = nextId++;
    const started = signal?.aborted ? Promise.reject(signal.reason) : remote.start(id, input, rest).then(unwrap).then(() => undefined);
    started.catch(() => {});
    let resolveDone!: (s: GenerationSummary) => void;
    let rejectDone!: (e: unknown) => void;
    const done = new Promise<GenerationSummary>((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    done.catch(() => {});

    async function* run(): AsyncGenerator<GeneratedToken> {
      let finished = false;
      let cancelling: Promise<unknown> | null = null;
      const cancel = () => {
        cancelling ??= remote.cancel(id).then(onMetrics);
        return cancelling;
      };
      const onAbort = () => void cancel();
      try {
        await started;
        signal?.throwIfAborted();
        signal?.addEventListener('abort', onAbort, { once: true });
        for (;;) {
          const r = await remote.pull(id);
          metrics = r.metrics;
          for (const t of r.items) {
            signal?.throwIfAborted(); // nothing more once aborted, though the batch holds more
            yield t;
          }
          if (r.done) {
            finished = true;
            if (r.error) {
              signal?.throwIfAborted(); // cancelled from here: the signal's reason, as createEngine throws
              throw reviveError(r.error);
            }
            resolveDone(r.summary!);
            return;
          }
        }
      } catch (e) {
        rejectDone(e);
        throw e;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        // break / return / throw in the consumer: cancel in the worker (frees its KV pages)
        if (!finished) await cancel();
        rejectDone(new Error('generation ended early: the consumer stopped iterating'));
      }
    }
    const it = run();
    // `ready`: a bad model / too long prompt / rejected constraint fails here, before any chunk
    return { done, started, ready: started, [Symbol.asyncIterator]: () => it };
  }

  // the OpenAI shaping runs here over the remote generate (tools, constraints, model "auto" as in
  // createEngine: an adapter the worker has not loaded → the router's fallback, else the base)
  const create = (body: ChatCompletionRequest) => createChatCompletion(generate, body, modelName, router, (name) => models.includes(name));

  async function train(req: WorkerTrainRequest, o: WorkerTrainOptions = {}): Promise<WorkerTrainResult> {
    const { signal, onEvent } = o;
    signal?.throwIfAborted();
    const id = nextTrain++;
    const onAbort = () => void remote.cancelTrain(id);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await remote.train(id, req, proxy((e: TrainEvent) => onEvent?.(e)));
      signal?.throwIfAborted();
      const out = unwrap(r);
      models = out.models;
      return out;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async function adapterBytes(src: AdapterInput): Promise<string | Record<string, Uint8Array>> {
    if (typeof src === 'string') return src;
    if (typeof (src as ModelSource).readBytes !== 'function') return src as Record<string, Uint8Array>;
    const files: Record<string, Uint8Array> = {};
    for (const f of ADAPTER_FILES) files[f] = await (src as ModelSource).readBytes(f);
    return files;
  }

  return {
    modelName,
    config: info.config as ModelConfig,
    gpu: info.gpu,
    models: () => [...models],
    generate,
    chat: { completions: { create: create as ChatCompletions['create'] } },
    metrics: () => metrics,
    train,
    async pool() {
      return unwrap(await remote.pool());
    },
    async loadAdapter(name, src) {
      models = unwrap(await remote.loadAdapter(name, await adapterBytes(src)));
    },
    async unloadAdapter(name) {
      models = unwrap(await remote.unloadAdapter(name));
    },
    async destroy() {
      try {
        await remote.destroy();
      } finally {
        remote[releaseProxy]();
        if ((terminate ?? true) && typeof (worker as Worker).terminate === 'function') (worker as Worker).terminate();
      }
    },
  };
}
