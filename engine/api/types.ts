// The public types of the engine's front end: generation, OpenAI shapes, the Engine interface
// (shared by createEngine and createWorkerEngine).
//
// Public: every type here is plain data or an interface over plain data (no WebGPU, no Node
// types, no internal classes), so the .d.ts a library user's compiler reads stays small and
// compiles under strict settings. LocalEngine (createEngine's engine with its parts) is in engine.ts.
import type { HubSourceOptions, ModelSource } from '../model/source.ts';
import type { ModelConfig } from '../model/config.ts';
import type { WeightFormat } from '../../shaders/matmul/format.ts';
import type { ChatCompletionRequest, ChatMessage } from './schema.ts';
import type { ResponseFormat, ToolChoice, ToolDefinition } from './schema.ts';
import type { ConstraintSpec } from '../structured/constraint.ts';

/** One token's log-probability and its most likely alternatives (OpenAI's logprobs.content[i]). */
export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }>;
}

export interface EngineProgress {
  phase: 'download' | 'upload';
  file?: string;
  loadedBytes: number;
  totalBytes: number;
  tensor?: string;
}

export interface CreateEngineOptions {
  /** Model directory (Node), hub URL / repo id, or a ModelSource; left out: the embedded stories260K. */
  model?: string | ModelSource;
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
  lora?: EngineLoraOptions;
  /** Answers model "auto" in chat.completions.create (e.g. `(await loadRouter(file)).asRouteFn()` from lorafleet's router). */
  router?: RouteFn;
  onProgress?: (p: EngineProgress) => void;
  /** Hub cache directory (Node) for URL models. */
  cacheDir?: string;
  /** More hub options for URL models (token, fetch, cache, revision). */
  hub?: Omit<HubSourceOptions, 'repo' | 'onProgress'>;
}

export interface EngineLoraOptions {
  /** GPU bytes for adapter pages (default: room for 8 adapters of maxRank, capped at 256 MiB). */
  gpuBudgetBytes?: number;
  /** Largest adapter rank served (default 64). */
  maxRank?: number;
  maxSlots?: number;
  /** Bytes of evicted adapters kept in memory (the CPU tier). */
  cpuBudgetBytes?: number;
  /** Segments at least this long run as SGMV (default 2). */
  sgmvMinRows?: number;
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
  /** Log-probabilities of each sampled token with this many top alternatives (0..20); null / undefined: none. */
  logprobs?: number | null;
  signal?: AbortSignal;
  /**
   * Output constraint (structured output), one of: `constraint` (a ConstraintSpec: json_schema,
   * json_object, regex, grammar (EBNF), choice, tools), OpenAI `response_format`, vLLM
   * `guided_json` / `guided_regex` / `guided_choice` / `guided_grammar`, or `tools` + `tool_choice`.
   */
  constraint?: ConstraintSpec | null;
  response_format?: ResponseFormat | null;
  guided_json?: Record<string, unknown> | boolean | string | null;
  guided_regex?: string | null;
  guided_choice?: string[] | null;
  guided_grammar?: string | null;
  tools?: ToolDefinition[] | null;
  tool_choice?: ToolChoice | null;
  /** false: at most one tool call (OpenAI parallel_tool_calls; default true). */
  parallel_tool_calls?: boolean | null;
}

/** Chat input; `tools` are also given to chat templates that know them. */
export type GenerateInput = string | { messages: ChatMessage[]; tools?: ToolDefinition[] | null } | { prompt_ids: number[] };

export interface GeneratedToken {
  /** The sampled token id; -1 on a final item that only releases held-back text. */
  token: number;
  /** Text released by this token (may be '' while a UTF-8 sequence or a possible stop string is held back). */
  text: string;
  /** With `logprobs`: the token's log-probability and top alternatives. */
  logprob?: TokenLogprob;
}

export type FinishReason = 'stop' | 'length';
/** A chat response's finish_reason: a generation's, or tool_calls when its text carried tool calls. */
export type ChatFinishReason = FinishReason | 'tool_calls';

/** What a generation produced; available after the iterator finishes. */
export interface GenerationSummary {
  promptIds: number[];
  completionIds: number[];
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  /** With `logprobs`: one entry per sampled token that was streamed. */
  logprobs?: TokenLogprob[];
}

export interface Usage {
  prompt_tokens: number;
  /** Tokens sampled, an EOS that ended the generation included (OpenAI's count). */
  completion_tokens: number;
  total_tokens: number;
}

export interface Generation extends AsyncIterable<GeneratedToken> {
  /** Resolves when the generation is done. */
  readonly done: Promise<GenerationSummary>;
  /**
   * Resolves once the request's output constraint is compiled (at once without one); rejects
   * with InvalidRequestError when the grammar engine rejects it (nothing was queued).
   */
  readonly ready?: Promise<void>;
  /** The kind of the request's output constraint, or null. */
  readonly constrained?: ConstraintSpec['kind'] | null;
}

/** engine.generate's signature: what the OpenAI shaping (openai.ts) needs of an engine. */
export type GenerateFn = (input: GenerateInput, opts?: GenerateOptions) => Generation;

/** What a router decides for a request with model "auto" (router/ makes these: loadRouter(f).asRouteFn()). */
export interface RouteDecision {
  /** The route taken (null: none passed its threshold; the fallback serves). */
  route: string | null;
  /** Adapter to use (null, 'base' or the base model's name: the base model). */
  adapter: string | null;
  score?: number;
  /** The router's fallback adapter (router/: the file's `fallback.adapter`), served when `adapter` is
   *  not loaded; when it is not loaded either (or absent), the base model serves. */
  fallback?: string | null;
}
/**
 * The decision as served, returned with the response (`route`): `adapter` is what served the request
 * (null: the base model). When the router's adapter was not loaded, `not_loaded` names it and
 * `adapter` is the router's fallback (when loaded) or null (the base model).
 */
export interface RouteInfo extends RouteDecision {
  not_loaded?: string;
}
export type RouteFn = (messages: ChatMessage[]) => RouteDecision | Promise<RouteDecision>;

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  /** model "auto": the router's decision as served (lorafleet's extension; OpenAI clients ignore it). */
  route?: RouteInfo;
  choices: Array<{ index: number; message: ChatCompletionMessage; finish_reason: ChatFinishReason; logprobs: { content: TokenLogprob[] } | null }>;
  usage: Usage;
}

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatCompletionMessage {
  role: 'assistant';
  content: string | null;
  tool_calls?: ToolCall[];
  refusal?: null;
}

export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function?: { name?: string; arguments?: string };
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  /** model "auto": the router's decision as served, on the first chunk. */
  route?: RouteInfo;
  choices: Array<{ index: number; delta: { role?: 'assistant'; content?: string; tool_calls?: ToolCallDelta[] }; finish_reason: ChatFinishReason | null; logprobs: { content: TokenLogprob[] } | null }>;
  usage?: Usage | null;
}

export interface ChatCompletions {
  create(body: ChatCompletionRequest & { stream: true }): Promise<AsyncIterable<ChatCompletionChunk>>;
  create(body: ChatCompletionRequest & { stream?: false | null }): Promise<ChatCompletion>;
  create(body: ChatCompletionRequest): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
}

/** An adapter to load: a PEFT directory path (Node) or URL, its files (adapter_config.json + adapter_model.safetensors) as bytes, or a ModelSource holding them. */
export type AdapterInput = string | Record<string, Uint8Array> | ModelSource;

/**
 * What every engine offers, in this thread (createEngine) or in a Web Worker
 * (createWorkerEngine): generation, the OpenAI-style chat API, adapters, metrics.
 */
export interface Engine {
  /** The base model's name (what `model` may say for the base). */
  readonly modelName: string;
  readonly config: ModelConfig;
  /** Names accepted as `model` (the base name + adapters). */
  models(): string[];
  generate: GenerateFn;
  chat: { completions: ChatCompletions };
  /** Scheduler counters (steps, prefilled / decoded tokens, preemptions, queue, KV blocks); a worker engine's are as of the worker's last report (it reports every change within ~50 ms). */
  metrics(): EngineMetrics;
  /** Registers a LoRA adapter under `name` (then usable as `model: name`). */
  loadAdapter(name: string, source: AdapterInput): Promise<void>;
  /** Unloads an adapter (waits for nothing: requests using it must have finished). */
  unloadAdapter(name: string): Promise<void>;
  /** Cancels every request and frees the GPU memory. */
  destroy(): Promise<void>;
}

/** Scheduler counters. */
export interface EngineMetrics {
  steps: number;
  /** Prompt positions computed for the first time. */
  tokensPrefilled: number;
  /** Generated positions computed for the first time (decode). */
  tokensDecoded: number;
  /** Positions computed again after a preemption. */
  tokensRecomputed: number;
  preemptions: number;
  queueDepth: number;
  running: number;
  submitted: number;
  rejected: number;
  /** Finished requests by how they ended. */
  finished: { stop: number; length: number; cancelled: number; error: number };
  /** Free / total blocks of the paged KV cache. */
  kvFreeBlocks: number;
  kvTotalBlocks: number;
  lastBatchTokens: number;
  lastBatchSegments: number;
  /** Distinct adapters of the running / waiting requests (vLLM's lora_requests_info). */
  runningAdapters: string[];
  waitingAdapters: string[];
}
