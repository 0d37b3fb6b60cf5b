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
  lora?: { gpuBudgetBytes?: number; maxRank?: number; maxSlots?: number; cpuBudgetBytes?: number };
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
