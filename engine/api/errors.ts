// Typed errors for every surface: the base class and codes (shaders/lib/errors.ts), the error
// classes of the engine's parts, the HTTP status of each code and the OpenAI error body, so the
// server, the worker and the CLI report the same thing the same way.
import { asLorafleetError, ERROR_HINTS, LorafleetError, type ErrorCode } from '../../shaders/lib/errors.ts';

export { asLorafleetError, ERROR_HINTS, LorafleetError, type ErrorCode };
export { InvalidRequestError } from './schema.ts';
export { KvCacheFullError } from '../kv/block-allocator.ts';
export { ModelConfigError } from '../model/config.ts';
export { ModelSourceError } from '../model/source.ts';
export { ModelWeightsError } from '../model/weights.ts';
export { SafetensorsError } from '../model/safetensors.ts';
export { WebGPUNotAvailableError } from '../../shaders/gpu/info.ts';

// Defined here (not in their modules) so that a consumer's .d.ts graph of these stays free of
// the GPU-facing modules; scheduler.ts, pool.ts and peft.ts re-export them.
export class QueueFullError extends LorafleetError {
  constructor(readonly maxQueue: number) {
    super(`scheduler queue full (${maxQueue} waiting requests)`, 'queue_full');
    this.name = 'QueueFullError';
  }
}

/** The request can never run: its prompt needs more KV slots than the cache / context holds. */
export class RequestTooLargeError extends LorafleetError {
  constructor(readonly needTokens: number, readonly limitTokens: number) {
    super(`request needs ${needTokens} KV slots but the context limit is ${limitTokens} tokens (KV cache capacity or maxModelLen)`, 'context_length_exceeded');
    this.name = 'RequestTooLargeError';
  }
}

export class UnknownAdapterError extends LorafleetError {
  constructor(readonly adapter: string) {
    super(`unknown adapter "${adapter}"`, 'model_not_found', { param: 'model' });
    this.name = 'UnknownAdapterError';
  }
}

export class LoraPoolError extends LorafleetError {
  constructor(message: string, code: ErrorCode = 'adapter_invalid') {
    super(message, code);
    this.name = 'LoraPoolError';
  }
}

/** Every resident adapter is pinned and the requested one does not fit: wait for requests to finish. */
export class LoraPoolFullError extends LoraPoolError {
  constructor(message: string) {
    super(message, 'adapter_pool_full');
    this.name = 'LoraPoolFullError';
  }
}

export type LoraAdapterErrorKind = 'config' | 'unsupported' | 'shape' | 'corrupt' | 'missing';

export class LoraAdapterError extends LorafleetError {
  constructor(
    message: string,
    readonly kind: LoraAdapterErrorKind,
    readonly file?: string,
  ) {
    super(message, 'adapter_invalid');
    this.name = 'LoraAdapterError';
  }
}

/** `model` names neither the base model nor a registered adapter. */
export class ModelNotFoundError extends LorafleetError {
  constructor(readonly model: string, available: readonly string[]) {
    super(`unknown model '${model}': available: ${available.join(', ')}`, 'model_not_found', { param: 'model' });
    this.name = 'ModelNotFoundError';
  }
}

/** The prompt does not fit the context. */
export class ContextLengthExceededError extends LorafleetError {
  constructor(readonly promptTokens: number, readonly contextTokens: number, param = 'messages') {
    super(`the prompt has ${promptTokens} tokens; the context holds ${contextTokens}`, 'context_length_exceeded', { param });
    this.name = 'ContextLengthExceededError';
  }
}

/** The GPU device was lost; in-flight requests fail with this. */
export class DeviceLostError extends LorafleetError {
  constructor(message: string) {
    super(message, 'device_lost');
    this.name = 'DeviceLostError';
  }
}

/** HTTP status for each code (OpenAI / vLLM conventions). */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  context_length_exceeded: 400,
  adapter_invalid: 400,
  model_not_found: 404,
  queue_full: 429,
  kv_cache_full: 503,
  adapter_pool_full: 503,
  model_invalid: 500,
  model_too_large: 500,
  webgpu_unavailable: 503,
  device_lost: 503,
  cancelled: 499,
  internal: 500,
};

/** OpenAI's error `type` for each code. */
const OPENAI_TYPE: Partial<Record<ErrorCode, string>> = {
  invalid_request: 'invalid_request_error',
  context_length_exceeded: 'invalid_request_error',
  adapter_invalid: 'invalid_request_error',
  model_not_found: 'invalid_request_error',
  queue_full: 'rate_limit_error',
};

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: ErrorCode };
}

/** The OpenAI-shaped error body of any thrown value. */
export function errorBody(e: unknown): OpenAIErrorBody {
  const err = asLorafleetError(e);
  return { error: { message: err.message, type: OPENAI_TYPE[err.code] ?? 'server_error', param: err.param ?? null, code: err.code } };
}
