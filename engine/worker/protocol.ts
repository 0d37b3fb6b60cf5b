// The page ⇄ worker protocol of the worker engine (client.ts in the page, worker.ts in the
// Web Worker, comlink between them). Every call answers { ok, value } or { ok: false, error } with
// the error as data, so typed errors keep their class name, `code` and `param` across the boundary.
import { LorafleetError, type ErrorCode } from '../../shaders/lib/errors.ts';
import type { GpuInfo } from '../../shaders/gpu/info.ts';
import type { ModelConfig } from '../model/config.ts';
import type { WeightFormat } from '../../shaders/matmul/format.ts';
import type { EngineMetrics, EngineProgress, GenerateInput, GenerateOptions, GeneratedToken, GenerationSummary } from '../api/types.ts';

/** createEngine's options that cross a worker boundary (plain data: no ModelSource, no device). */
export interface WorkerEngineInit {
  /** A model URL (hub layout, cached in the worker's IndexedDB); left out: the embedded stories260K. */
  model?: string;
  weightFormat?: WeightFormat;
  kvCacheBytes?: number;
  kvBlocks?: number;
  kvBlockSize?: number;
  maxBatchTokens?: number;
  maxQueue?: number;
  /** Adapters to load: name → URL, or the PEFT files as bytes. */
  adapters?: Record<string, string | Record<string, Uint8Array>>;
  /** The adapter pool; `store: 'indexeddb'` keeps every registered adapter's files in the worker's IndexedDB (the persistent tier). */
  lora?: { gpuBudgetBytes?: number; maxRank?: number; maxSlots?: number; cpuBudgetBytes?: number; store?: 'indexeddb' | 'none' };
  hub?: { revision?: string; endpoint?: string; token?: string };
}

export interface WorkerEngineInfo {
  modelName: string;
  config: ModelConfig;
  models: string[];
  metrics: EngineMetrics;
  gpu: GpuInfo;
}

export interface SerializedError {
  name: string;
  message: string;
  code?: ErrorCode;
  param?: string;
}

export type Reply<T> = { ok: true; value: T } | { ok: false; error: SerializedError };

export interface PullResult {
  items: GeneratedToken[];
  done: boolean;
  summary?: GenerationSummary;
  error?: SerializedError;
  metrics: EngineMetrics;
}

/** One adapter of the worker's pool: its tier (GPU pages, CPU copy, or only the persistent store / its source). */
export interface PoolAdapterInfo {
  name: string;
  tier: 'gpu' | 'cpu' | 'stored';
  /** Running requests (and steps) holding it. */
  pins: number;
}

/** The worker's adapter pool: counters and bytes per tier (null stats: no LoRA pool yet). */
export interface PoolInfo {
  stats: {
    hits: number; misses: number; loads: number; evictions: number; cpuHits: number; cpuEvictions: number; persistentLoads: number;
    gpuBytesUsed: number; gpuBytesCapacity: number; cpuBytes: number; persistentBytes: number; resident: number; pagesFree: number; pages: number;
  } | null;
  adapters: PoolAdapterInfo[];
  /** The persistent tier: 'indexeddb', or null (adapters re-read from their source). */
  store: 'indexeddb' | 'memory' | 'dir' | null;
}

/**
 * A training run in the worker, on the engine's loaded base model (trainer/train: the config keys
 * are the trainer's, Axolotl's names). The trained adapter is hot-added to the worker's pool under
 * `name` (an unpinned adapter of that name is replaced), without reloading the base.
 */
export interface WorkerTrainRequest {
  /** Name of the trained adapter in the pool. */
  name: string;
  /** Default: sft for chat rows ({messages} or {prompt, completion}), dpo for preference rows, cpt for {text} rows and pretokenized ones. */
  method?: 'cpt' | 'sft' | 'dpo' | 'orpo';
  /** Training rows: {messages}, {prompt, completion}, {text}, {input_ids, labels?}, or preference rows. */
  rows: unknown[];
  /** Trainer config keys (lora_r, lora_alpha, lora_target_modules, learning_rate, max_steps, num_epochs, micro_batch_size, sequence_len, seed, …); base_model, datasets and output_dir are the worker's. */
  config?: Record<string, unknown>;
}

/** Progress of a training run, streamed to the page. */
export type TrainEvent =
  | { type: 'start'; totalSteps: number; sequences: number; tokens: number; message: string }
  | { type: 'step'; step: number; totalSteps: number; loss: number; gradNorm: number; learningRate: number; tokens: number; elapsedMs: number }
  | { type: 'log'; entry: Record<string, number> }
  | { type: 'message'; message: string };

export interface WorkerTrainResult {
  name: string;
  steps: number;
  /** Per optimizer step. */
  losses: number[];
  /** train_log.jsonl's entries. */
  log: Array<Record<string, number>>;
  /** The PEFT files (adapter_config.json, adapter_model.safetensors), e.g. to save them. */
  adapterFiles: Record<string, Uint8Array>;
  /** The models served now (the trained adapter among them). */
  models: string[];
  elapsedMs: number;
}

/** What the worker exposes. */
export interface WorkerApi {
  init(opts: WorkerEngineInit, onProgress: (p: EngineProgress) => void, onMetrics: (m: EngineMetrics) => void): Promise<Reply<WorkerEngineInfo>>;
  /** Starts stream `id` (validation errors answer here, before any token). */
  start(id: number, input: GenerateInput, opts: Omit<GenerateOptions, 'signal'>): Promise<Reply<null>>;
  /** The tokens produced since the last pull (waits for at least one, or the end). */
  pull(id: number): Promise<PullResult>;
  /** Cancels stream `id`; answers once its KV pages are freed. */
  cancel(id: number): Promise<EngineMetrics>;
  loadAdapter(name: string, source: string | Record<string, Uint8Array>): Promise<Reply<string[]>>;
  unloadAdapter(name: string): Promise<Reply<string[]>>;
  metrics(): Promise<EngineMetrics>;
  pool(): Promise<Reply<PoolInfo>>;
  /** Trains run `id` (a worker built with the trainer: 'lorafleet/worker'); events stream through onEvent. */
  train(id: number, req: WorkerTrainRequest, onEvent: (e: TrainEvent) => void): Promise<Reply<WorkerTrainResult>>;
  /** Cancels training run `id` (its train() then answers a `cancelled` error). */
  cancelTrain(id: number): Promise<void>;
  destroy(): Promise<void>;
}

export function serializeError(e: unknown): SerializedError {
  if (e instanceof LorafleetError) {
    return { name: e.name, message: e.message, code: e.code, ...(e.param !== undefined ? { param: e.param } : {}) };
  }
  if (e instanceof Error || (typeof DOMException !== 'undefined' && e instanceof DOMException)) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}

/** The error again, on the other side: a LorafleetError (same name, code, param) when it was one. */
export function reviveError(s: SerializedError): Error {
  let e: Error;
  if (s.code) e = new LorafleetError(s.message, s.code, s.param !== undefined ? { param: s.param } : {});
  else if (s.name === 'AbortError' && typeof DOMException !== 'undefined') return new DOMException(s.message, 'AbortError');
  else e = new Error(s.message);
  e.name = s.name;
  return e;
}

export function unwrap<T>(r: Reply<T>): T {
  if (r.ok) return r.value;
  throw reviveError(r.error);
}
