// The engine: one model on the GPU, a paged KV cache, a step runner behind the continuous-
// batching scheduler, optional multi-LoRA, a tokenizer, and the request front end —
// `generate()` (async iterator of tokens + text) and an OpenAI-style `chat.completions.create()`.
//
//   const engine = await createEngine({ model: '../shared/models/stories260K', adapters: { tone: './peft-dir' } });
//   for await (const { text } of engine.generate('Once upon a time', { max_tokens: 40, temperature: 0 })) out(text);
//   const r = await engine.chat.completions.create({ model: 'tone', messages: [{ role: 'user', content: 'Hi' }] });
//   const s = await engine.chat.completions.create({ model: 'stories260K', messages, stream: true });
//   for await (const chunk of s) out(chunk.choices[0]?.delta.content ?? '');
//   await engine.destroy();
//
// Every request is one scheduler sequence; concurrent requests (different adapters and sampling
// settings too) share forward steps. Request bodies are zod-validated (InvalidRequestError names
// the field). `model` in a request is the base model's name (or 'base') or an adapter name.
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { openModelSource, type HubSourceOptions, type ModelSource, type ProgressCallback } from '../model/source.ts';
import type { ModelConfig } from '../model/config.ts';
import { PagedKvCache } from '../kv/paged-cache.ts';
import { GpuModel, type UploadProgress, type WeightFormat } from '../forward/gpu-model.ts';
import { GpuStepRunner } from '../forward/runner.ts';
import { Scheduler, type RequestHandle, type SchedulerMetrics } from '../scheduler/scheduler.ts';
import { createLoraSupport, type LoraSupport, type LoraSupportOptions } from '../lora/index.ts';
import type { SampleParams } from '../../shaders/sample/sample.ts';
import { StopMatcher } from './stop.ts';
import {
  chatCompletionRequestSchema,
  contentText,
  generateOptionsSchema,
  InvalidRequestError,
  validate,
  type ChatCompletionRequest,
  type ChatMessage,
} from './schema.ts';
import { loadTokenizer, type ModelTokenizer } from '../model/tokenizer.ts';

export { InvalidRequestError };

export interface EngineProgress {
  phase: 'download' | 'upload';
  file?: string;
  loadedBytes: number;
  totalBytes: number;
  tensor?: string;
}

export interface CreateEngineOptions {
  /** Model directory (Node) or hub URL / repo id. */
  model: string | ModelSource;
  weightFormat?: WeightFormat;
  /** KV cache capacity as bytes (default 64 MiB) ... */
  kvCacheBytes?: number;
  /** ... or as blocks (wins over kvCacheBytes). */
  kvBlocks?: number;
  kvBlockSize?: number;
  /** Most tokens one step runs (prefill is chunked to this; default 256). */
  maxBatchTokens?: number;
  /** Waiting requests beyond this are refused (default 256). */
  maxQueue?: number;
  /** LoRA adapters by name: PEFT directory (or a ModelSource holding adapter_config.json + adapter_model.safetensors). */
  adapters?: Record<string, string | ModelSource>;
  /** Adapter pool options (GPU budget, max rank ...); giving this enables LoRA without initial adapters. */
  lora?: Omit<LoraSupportOptions, 'adapters'>;
  /** Use this runtime (device) instead of acquiring one. */
  device?: Runtime;
  onProgress?: (p: EngineProgress) => void;
  /** Hub cache directory (Node) for URL models. */
  cacheDir?: string;
  /** More hub options for URL models (token, fetch, cache, revision). */
  hub?: Omit<HubSourceOptions, 'repo' | 'onProgress'>;
}

export interface GenerateOptions {
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  repetition_penalty?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  /** Adapter name, or the base model name / null / undefined for the base model. */
  model?: string | null;
  signal?: AbortSignal;
}

export type GenerateInput = string | { messages: ChatMessage[] } | { prompt_ids: number[] };

export interface GeneratedToken {
  /** The sampled token id; -1 on a final item that only releases held-back text. */
  token: number;
  /** Text released by this token (may be '' while a UTF-8 sequence or a possible stop string is held back). */
  text: string;
}

export type FinishReason = 'stop' | 'length';

/** What a generation produced; available after the iterator finishes. */
export interface GenerationSummary {
  promptIds: number[];
  completionIds: number[];
  text: string;
  finishReason: FinishReason;
  usage: Usage;
}

export interface Usage {
  prompt_tokens: number;
  /** Tokens sampled, an EOS that ended the generation included (OpenAI's count). */
  completion_tokens: number;
  total_tokens: number;
}

const usageOf = (p: number, c: number): Usage => ({ prompt_tokens: p, completion_tokens: c, total_tokens: p + c });

export interface Generation extends AsyncIterable<GeneratedToken> {
  /** Resolves when the generation is done. */
  readonly done: Promise<GenerationSummary>;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: Array<{ index: number; message: { role: 'assistant'; content: string }; finish_reason: FinishReason; logprobs: null }>;
  usage: Usage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{ index: number; delta: { role?: 'assistant'; content?: string }; finish_reason: FinishReason | null; logprobs: null }>;
  usage?: Usage | null;
}

export interface Engine {
  readonly config: ModelConfig;
  readonly modelName: string;
  readonly tokenizer: ModelTokenizer;
  readonly model: GpuModel;
  readonly cache: PagedKvCache;
  readonly runtime: Runtime;
  /** The adapter pool + LoRA runtime (register / unload adapters at run time through lora.pool). */
  readonly lora: LoraSupport | null;
  /** Names accepted as `model` (the base name + adapters). */
  models(): string[];
  generate(input: GenerateInput, opts?: GenerateOptions): Generation;
  /** Scheduler counters (steps, prefilled / decoded tokens, preemptions, queue, KV blocks). */
  metrics(): SchedulerMetrics;
  chat: {
    completions: {
      create(body: ChatCompletionRequest & { stream: true }): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(body: ChatCompletionRequest & { stream?: false | null }): Promise<ChatCompletion>;
      create(body: ChatCompletionRequest): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
    };
  };
  destroy(): Promise<void>;
}

let idCounter = 0;
const newId = (prefix: string) => `${prefix}-${Date.now().toString(36)}${(idCounter++).toString(36)}`;

export async function createEngine(opts: CreateEngineOptions): Promise<Engine> {
  const rt = opts.device ?? (await Runtime.create());
  const ownsRuntime = !opts.device;
  const onDl: ProgressCallback = (file, loadedBytes, totalBytes) => opts.onProgress?.({ phase: 'download', file, loadedBytes, totalBytes });
  const source =
    typeof opts.model === 'string'
      ? openModelSource(opts.model, { ...opts.hub, onProgress: onDl, ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}) })
      : opts.model;
  const modelName = typeof opts.model === 'string' ? opts.model.replace(/\/+$/, '').split('/').pop() || opts.model : opts.model.name;
  const model = await GpuModel.load(rt, source, {
    weightFormat: opts.weightFormat,
    onProgress: (p: UploadProgress) => opts.onProgress?.({ phase: 'upload', loadedBytes: p.bytes, totalBytes: p.totalBytes, tensor: p.name }),
  });
  const config = model.config;
  const tokenizer = await loadTokenizer(source);
  // Sampling defaults from generation_config.json; EOS = config.json ∪ generation_config ∪ tokenizer eos.
  const g = tokenizer.generation;
  const gen = {
    eosIds: [...new Set([...config.eosTokenIds, ...tokenizer.eosTokenIds])],
    doSample: g?.doSample,
    temperature: g?.temperature ?? undefined,
    topP: g?.topP ?? undefined,
    topK: g?.topK ?? undefined,
    repetitionPenalty: g?.repetitionPenalty ?? undefined,
  };
  const cache = PagedKvCache.create(rt, {
    numLayers: config.numLayers,
    numKvHeads: config.numKvHeads,
    headDim: config.headDim,
    blockSize: opts.kvBlockSize,
    ...(opts.kvBlocks !== undefined ? { numBlocks: opts.kvBlocks } : { maxBytes: opts.kvCacheBytes ?? 64 << 20 }),
  });
  const runner = new GpuStepRunner(model, cache);
  const maxBatchTokens = opts.maxBatchTokens ?? 256;
  // Multi-LoRA: attached when adapters are given or opts.lora asks for it (adapters can then be
  // registered later through engine.lora.pool); without it no adapter pages are allocated.
  const wantLora = Object.keys(opts.adapters ?? {}).length > 0 || opts.lora !== undefined;
  const lora = wantLora ? await createLoraSupport(rt, config, { store: null, ...opts.lora, adapters: opts.adapters }) : null;
  if (lora) model.attachLora(lora.runtime);
  const adapterNames = () => lora?.pool.names() ?? [];
  const scheduler = new Scheduler(runner, cache, {
    maxBatchTokens,
    maxQueue: opts.maxQueue,
    maxModelLen: config.maxPositions,
    hasAdapter: (name) => !!lora?.pool.has(name),
    // A running request pins its adapter (never evicted while it runs), and the running set's
    // adapters must fit the pool's GPU pages together, so a step never hits LoraPoolFullError.
    adaptersFit: lora ? (set) => lora.pool.fits(set) : undefined,
    onAdapterAcquire: lora ? (name) => lora.pool.pin(name) : undefined,
    onAdapterRelease: lora ? (name) => lora.pool.unpin(name) : undefined,
  });
  let loop: Promise<void> | null = null;
  const ensureLoop = () => {
    if (!loop) {
      loop = scheduler.run().catch((e) => {
        console.error(`[lorafleet] scheduler loop failed: ${(e as Error).message}`);
      });
    }
  };

  function resolveAdapter(name: string | null | undefined): string | null {
    if (name == null || name === '' || name === modelName || name === 'base') return null;
    if (lora?.pool.has(name)) return name;
    throw new InvalidRequestError(`unknown model '${name}': available: ${[modelName, ...adapterNames()].join(', ')}`, 'model');
  }

  function promptIds(input: GenerateInput): number[] {
    if (typeof input === 'string') return tokenizer.encode(input);
    if (input && typeof input === 'object' && 'prompt_ids' in input) {
      const ids = input.prompt_ids;
      if (!Array.isArray(ids) || ids.some((t) => !Number.isInteger(t) || t < 0 || t >= config.vocabSize)) {
        throw new InvalidRequestError(`prompt_ids must be integers in [0, ${config.vocabSize})`, 'prompt_ids');
      }
      return [...ids];
    }
    if (input && typeof input === 'object' && 'messages' in input) {
      const msgs = validate(chatCompletionRequestSchema.shape.messages, input.messages, 'messages');
      return tokenizer.encodeChat(msgs.map((m) => ({ role: m.role, content: contentText(m.content) })), { addGenerationPrompt: true });
    }
    throw new InvalidRequestError('generate: input must be a string, {messages} or {prompt_ids}');
  }

  function generate(input: GenerateInput, rawOpts: GenerateOptions = {}): Generation {
    const { signal, ...rest } = rawOpts;
    const o = validate(generateOptionsSchema, rest, 'generate options');
    const adapter = resolveAdapter(o.model);
    const prompt = promptIds(input);
    if (prompt.length === 0) throw new InvalidRequestError('the prompt is empty (no tokens)', 'prompt');
    const ctxLimit = Math.min(config.maxPositions, cache.numBlocks * cache.blockSize);
    if (prompt.length >= ctxLimit) {
      throw new InvalidRequestError(`the prompt has ${prompt.length} tokens; the context holds ${ctxLimit}`, 'messages');
    }
    const maxTokens = Math.min(o.max_tokens ?? o.max_completion_tokens ?? ctxLimit - prompt.length, ctxLimit - prompt.length);
    const temperature = o.temperature ?? (gen.doSample === false ? 0 : (gen.temperature ?? 1));
    const base: Omit<SampleParams, 'step'> = {
      temperature,
      topK: o.top_k ?? gen.topK ?? 0,
      topP: o.top_p ?? gen.topP ?? 1,
      repetitionPenalty: o.repetition_penalty ?? gen.repetitionPenalty ?? 1,
      seed: (o.seed ?? Math.floor(Math.random() * 2 ** 31)) >>> 0,
    };
    const stops = o.stop == null ? [] : typeof o.stop === 'string' ? [o.stop] : o.stop;
    const eos = new Set(gen.eosIds);

    let resolveDone!: (s: GenerationSummary) => void;
    let rejectDone!: (e: unknown) => void;
    const done = new Promise<GenerationSummary>((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    done.catch(() => {});

    async function* run(): AsyncGenerator<GeneratedToken> {
      const completion: number[] = [];
      const stop = new StopMatcher(stops);
      let text = '';
      const detok = tokenizer.stream(prompt); // prompt as context: spacing at the join is right
      let handle: RequestHandle | null = null;
      try {
        if (maxTokens <= 0) {
          resolveDone({ promptIds: prompt, completionIds: completion, text, finishReason: 'length', usage: usageOf(prompt.length, 0) });
          return;
        }
        signal?.throwIfAborted();
        handle = scheduler.submit({ promptTokens: prompt, adapter, sample: base, maxTokens, stopTokenIds: [...eos], signal });
        ensureLoop();
        for await (const tok of handle) {
          completion.push(tok);
          // Incremental detokenization (no partial UTF-8), then stop strings (held back while they may start one).
          const piece = stop.push(detok.push(tok));
          text += piece;
          yield { token: tok, text: piece };
          if (stop.stopped) break; // leaving the loop cancels the request (frees its pages)
        }
        const info = await handle.finished;
        if (!stop.stopped) {
          if (info.reason === 'error') throw info.error ?? new Error('generation failed');
          if (info.reason === 'cancelled') {
            signal?.throwIfAborted();
            throw new Error('generation was cancelled');
          }
          const tail = stop.push(detok.flush()) + stop.flush();
          if (tail) {
            text += tail;
            yield { token: -1, text: tail };
          }
        }
        const finishReason: FinishReason = stop.stopped || info.reason === 'stop' ? 'stop' : 'length';
        resolveDone({ promptIds: prompt, completionIds: completion, text, finishReason, usage: usageOf(prompt.length, info.completionTokens) });
      } catch (e) {
        rejectDone(e);
        throw e;
      } finally {
        handle?.cancel(); // no-op when already finished
        // the consumer stopped iterating early (break / return): `done` must still settle
        rejectDone(new Error('generation ended early: the consumer stopped iterating'));
      }
    }

    const it = run();
    return {
      done,
      [Symbol.asyncIterator]: () => it,
    };
  }

  async function drain(g: Generation): Promise<GenerationSummary> {
    for await (const _ of g) void _;
    return g.done;
  }

  async function chatCreate(body: ChatCompletionRequest): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
    const { signal, ...plain } = body as ChatCompletionRequest & { signal?: AbortSignal };
    const req = validate(chatCompletionRequestSchema, plain, 'request');
    const g = generate(
      { messages: req.messages },
      {
        model: req.model,
        max_tokens: req.max_tokens ?? req.max_completion_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        repetition_penalty: req.repetition_penalty,
        seed: req.seed,
        stop: req.stop,
        signal,
      },
    );
    const id = newId('chatcmpl');
    const created = Math.floor(Date.now() / 1000);
    const model = req.model;
    if (!req.stream) {
      return drain(g).then((s) => ({
        id,
        object: 'chat.completion' as const,
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant' as const, content: s.text }, finish_reason: s.finishReason, logprobs: null }],
        usage: s.usage,
      }));
    }
    const includeUsage = req.stream_options?.include_usage === true;
    async function* chunks(): AsyncGenerator<ChatCompletionChunk> {
      const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finish: FinishReason | null): ChatCompletionChunk => ({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
        ...(includeUsage ? { usage: null } : {}),
      });
      yield chunk({ role: 'assistant', content: '' }, null);
      for await (const t of g) if (t.text) yield chunk({ content: t.text }, null);
      const s = await g.done;
      yield chunk({}, s.finishReason);
      if (includeUsage) {
        yield {
          id,
          object: 'chat.completion.chunk',
          created,
          model,
          choices: [],
          usage: s.usage,
        };
      }
    }
    return Promise.resolve(chunks());
  }

  return {
    config,
    modelName,
    tokenizer,
    model,
    cache,
    runtime: rt,
    models: () => [modelName, ...adapterNames()],
    lora,
    generate,
    metrics: () => scheduler.metrics(),
    chat: { completions: { create: chatCreate as Engine['chat']['completions']['create'] } },
    async destroy() {
      scheduler.cancelAll();
      scheduler.stop();
      await loop;
      await rt.sync();
      model.attachLora(null);
      lora?.destroy();
      cache.destroy();
      model.destroy();
      if (ownsRuntime) rt.destroyAll();
    },
  };
}
