// The engine: one model on the GPU, a paged KV cache, a step runner behind the continuous-
// batching scheduler, optional multi-LoRA, a tokenizer, and the request front end —
// `generate()` (async iterator of tokens + text; generate.ts) and an OpenAI-style
// `chat.completions.create()` (openai.ts). createEngine only wires these parts.
//
//   const engine = await createEngine({ model: './models/SmolLM2-135M', adapters: { tone: './peft-dir' } });  // {}: the embedded stories260K
//   for await (const { text } of engine.generate('Once upon a time', { max_tokens: 40, temperature: 0 })) out(text);
//   const r = await engine.chat.completions.create({ model: 'tone', messages: [{ role: 'user', content: 'Hi' }] });
//   const s = await engine.chat.completions.create({ messages, stream: true });   // no model: the base
//   for await (const chunk of s) out(chunk.choices[0]?.delta.content ?? '');
//   await engine.destroy();
//
// Every request is one scheduler sequence; concurrent requests (different adapters and sampling
// settings too) share forward steps. Request bodies are zod-validated (InvalidRequestError names
// the field). `model` in a request is the base model's name (or 'base') or an adapter name.
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { openModelSource, type ModelSource, type ProgressCallback } from '../model/source.ts';
import { embeddedModelSource } from '../model/embedded.ts';
import { parseModelConfig, type ModelConfig } from '../model/config.ts';
import { LorafleetError } from '../../shaders/lib/errors.ts';
import { PagedKvCache } from '../kv/paged-cache.ts';
import { GpuModel, type UploadProgress } from '../forward/gpu-model.ts';
import { GpuStepRunner } from '../forward/runner.ts';
import { Scheduler } from '../scheduler/scheduler.ts';
import { createLoraSupport } from '../lora/index.ts';
import { loadTokenizer } from '../model/tokenizer.ts';
import { GrammarEngine, vocabInfo } from '../structured/grammar.ts';
import { createGenerate } from './generate.ts';
import { createChatCompletion } from './openai.ts';
import { ModelNotFoundError } from './errors.ts';
import type { ChatCompletionRequest } from './schema.ts';
import { MemorySource } from '../model/source.ts';
import type { LoraSupport, LoraSupportOptions } from '../lora/index.ts';
import type { ModelTokenizer } from '../model/tokenizer.ts';
import type { AdapterInput, CreateEngineOptions, Engine } from './types.ts';
import type { SchedulerMetrics } from '../scheduler/scheduler.ts';

export { InvalidRequestError } from './schema.ts';
export type * from './types.ts';

/** createEngine's options: the public ones, plus a runtime to share and the adapter store. */
export interface LocalEngineOptions extends CreateEngineOptions {
  /** Use this runtime (device) instead of acquiring one. */
  device?: Runtime;
  lora?: Omit<LoraSupportOptions, 'adapters'>;
}

/** createEngine's engine: an Engine plus the parts it runs on, in this thread. */
export interface LocalEngine extends Engine {
  readonly tokenizer: ModelTokenizer;
  /** Where the model's files came from (the trainer reads the tokenizer from it). */
  readonly source: ModelSource;
  readonly model: GpuModel;
  readonly cache: PagedKvCache;
  readonly runtime: Runtime;
  /** The adapter pool + LoRA runtime (null until LoRA is used: adapters given, opts.lora, or loadAdapter). */
  readonly lora: LoraSupport | null;
  /** The structured-output grammar engine over this tokenizer (compile cache, stats). */
  grammar(): GrammarEngine;
  /** The scheduler's counters, with the adapters of the running and waiting requests. */
  metrics(): SchedulerMetrics;
}

export async function createEngine(opts: LocalEngineOptions = {}): Promise<LocalEngine> {
  const rt = opts.device ?? (await Runtime.create());
  const ownsRuntime = !opts.device;
  const onDl: ProgressCallback = (file, loadedBytes, totalBytes) => opts.onProgress?.({ phase: 'download', file, loadedBytes, totalBytes });
  // No model: the embedded stories260K (engine/model/embedded.ts).
  const spec = opts.model ?? embeddedModelSource();
  const source =
    typeof spec === 'string'
      ? openModelSource(spec, { ...opts.hub, onProgress: onDl, ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}) })
      : spec;
  const modelName = typeof spec === 'string' ? spec.replace(/\/+$/, '').split('/').pop() || spec : spec.name;

  // ---- the model, its tokenizer and sampling defaults
  checkFitsDevice(parseModelConfig(await source.readJson('config.json')), opts.weightFormat ?? 'f32', rt.info.limits, modelName);
  const model = await GpuModel.load(rt, source, {
    weightFormat: opts.weightFormat,
    onProgress: (p: UploadProgress) => opts.onProgress?.({ phase: 'upload', loadedBytes: p.bytes, totalBytes: p.totalBytes, tensor: p.name }),
  });
  const config = model.config;
  const tokenizer = await loadTokenizer(source);
  // Sampling defaults from generation_config.json; EOS = config.json ∪ generation_config ∪ tokenizer eos.
  const g = tokenizer.generation;
  const defaults = {
    eosIds: [...new Set([...config.eosTokenIds, ...tokenizer.eosTokenIds])],
    doSample: g?.doSample,
    temperature: g?.temperature ?? undefined,
    topP: g?.topP ?? undefined,
    topK: g?.topK ?? undefined,
    repetitionPenalty: g?.repetitionPenalty ?? undefined,
  };

  // ---- KV cache, step runner, multi-LoRA
  const cache = PagedKvCache.create(rt, {
    numLayers: config.numLayers,
    numKvHeads: config.numKvHeads,
    headDim: config.headDim,
    blockSize: opts.kvBlockSize,
    ...(opts.kvBlocks !== undefined ? { numBlocks: opts.kvBlocks } : { maxBytes: opts.kvCacheBytes ?? 64 << 20 }),
  });
  const runner = new GpuStepRunner(model, cache);
  // Multi-LoRA: attached when adapters are given or opts.lora asks for it (adapters can then be
  // registered later through engine.lora.pool); without it no adapter pages are allocated.
  // loadAdapter() attaches it on first use.
  const wantLora = Object.keys(opts.adapters ?? {}).length > 0 || opts.lora !== undefined;
  let lora = wantLora ? await createLoraSupport(rt, config, { store: null, ...opts.lora, adapters: opts.adapters }) : null;
  if (lora) model.attachLora(lora.runtime);
  const adapterNames = () => lora?.pool.names() ?? [];
  const loraSupport = async () => {
    if (!lora) {
      lora = await createLoraSupport(rt, config, { store: null, ...opts.lora });
      model.attachLora(lora.runtime);
    }
    return lora;
  };

  // ---- the scheduler and its loop
  const scheduler = new Scheduler(runner, cache, {
    maxBatchTokens: opts.maxBatchTokens ?? 256,
    maxQueue: opts.maxQueue,
    maxModelLen: config.maxPositions,
    hasAdapter: (name) => !!lora?.pool.has(name),
    // A running request pins its adapter (never evicted while it runs), and the running set's
    // adapters must fit the pool's GPU pages together, so a step never hits LoraPoolFullError.
    adaptersFit: (set) => (lora ? lora.pool.fits(set) : set.size === 0),
    onAdapterAcquire: (name) => lora?.pool.pin(name),
    onAdapterRelease: (name) => lora?.pool.unpin(name),
  });
  let loop: Promise<void> | null = null;
  const ensureLoop = () => {
    if (!loop) {
      loop = scheduler.run().catch((e) => {
        console.error(`[lorafleet] scheduler loop failed: ${(e as Error).message}`);
      });
    }
  };

  // ---- structured output: XGrammar over this tokenizer, loaded on the first constrained request
  let grammar: GrammarEngine | null = null;
  const grammarEngine = () => (grammar ??= new GrammarEngine(vocabInfo(tokenizer, config.vocabSize, defaults.eosIds)));

  // ---- the front end
  const generate = createGenerate({
    grammar: grammarEngine,
    config,
    tokenizer,
    scheduler,
    defaults,
    contextLimit: Math.min(config.maxPositions, cache.numBlocks * cache.blockSize),
    resolveAdapter(name) {
      if (name == null || name === '' || name === modelName || name === 'base') return null;
      if (lora?.pool.has(name)) return name;
      throw new ModelNotFoundError(name, [modelName, ...adapterNames()]);
    },
    ensureLoop,
  });
  const create = (body: ChatCompletionRequest) => createChatCompletion(generate, body, modelName, opts.router, (name) => !!lora?.pool.has(name));

  return {
    config,
    modelName,
    tokenizer,
    source,
    model,
    cache,
    runtime: rt,
    models: () => [modelName, ...adapterNames()],
    get lora() {
      return lora;
    },
    generate,
    metrics: () => scheduler.metrics(),
    async loadAdapter(name: string, src: AdapterInput) {
      const input = typeof src === 'string' || isModelSource(src) ? src : new MemorySource(src, name);
      await (await loraSupport()).pool.register(name, input);
    },
    async unloadAdapter(name: string) {
      if (!lora?.pool.has(name)) throw new ModelNotFoundError(name, [modelName, ...adapterNames()]);
      await lora.pool.unload(name);
    },
    grammar: grammarEngine,
    chat: { completions: { create: create as LocalEngine['chat']['completions']['create'] } },
    async destroy() {
      scheduler.cancelAll();
      scheduler.stop();
      await loop;
      await grammar?.destroy();
      await rt.sync();
      model.attachLora(null);
      lora?.destroy();
      cache.destroy();
      model.destroy();
      if (ownsRuntime) rt.destroyAll();
    },
  };
}

const isModelSource = (x: object): x is ModelSource =>
  typeof (x as ModelSource).readBytes === 'function' && typeof (x as ModelSource).exists === 'function';

/**
 * The model's largest GPU buffer (the embedding / lm_head [V, H], fused q|k|v or gate|up) must fit
 * one storage binding and one buffer of this device: else a typed model_too_large error before
 * anything is uploaded (instead of a WebGPU validation error half way).
 */
export function checkFitsDevice(c: ModelConfig, format: 'f32' | 'f16' | 'q8', limits: Record<string, number>, name: string): void {
  const bytesPer = format === 'f32' ? 4 : format === 'f16' ? 2 : 1.125; // q8: int8 + a scale per 32
  const H = c.hiddenSize;
  const elems = Math.max(
    c.vocabSize * H, // embedding / lm_head
    (c.numHeads + 2 * c.numKvHeads) * c.headDim * H, // fused q|k|v
    2 * c.intermediateSize * H, // fused gate|up
    H * c.intermediateSize, // down
    H * c.numHeads * c.headDim, // o
  );
  const need = Math.ceil(elems * bytesPer);
  const limit = Math.min(limits.maxStorageBufferBindingSize ?? Infinity, limits.maxBufferSize ?? Infinity);
  if (need > limit) {
    throw new LorafleetError(
      `${name} does not fit this device: its largest weight needs ${need} bytes in one buffer, the device allows ${limit} ` +
        `(maxStorageBufferBindingSize ${limits.maxStorageBufferBindingSize}, maxBufferSize ${limits.maxBufferSize}) with weightFormat '${format}'`,
      'model_too_large',
    );
  }
}
