// The project's typed errors: one base class with a stable `code`, so every surface (library,
// worker, HTTP server, CLI) can tell errors apart without parsing messages, and a hint per code
// saying what to do. It sits in the lowest layer so that the backend (WebGPU missing, device
// lost) and the serving core share it; engine/api/errors.ts re-exports it with the HTTP mapping.

export type ErrorCode =
  /** The request (or options object) is malformed: a field is missing, of the wrong type or out of range. */
  | 'invalid_request'
  /** `model` names neither the base model nor a registered adapter. */
  | 'model_not_found'
  /** The prompt (plus max_tokens) does not fit the context window or the KV cache. */
  | 'context_length_exceeded'
  /** Too many requests are waiting. */
  | 'queue_full'
  /** The paged KV cache has no free blocks for this request right now. */
  | 'kv_cache_full'
  /** Every GPU adapter slot is pinned by running requests. */
  | 'adapter_pool_full'
  /** An adapter directory / file is invalid or uses a PEFT feature the engine cannot serve. */
  | 'adapter_invalid'
  /** A model directory / file is missing, invalid or unsupported. */
  | 'model_invalid'
  /** The model does not fit the device's limits. */
  | 'model_too_large'
  /** No WebGPU adapter is available. */
  | 'webgpu_unavailable'
  /** The GPU device was lost while work was in flight. */
  | 'device_lost'
  /** The request was cancelled (abort signal, client disconnect, shutdown). */
  | 'cancelled'
  /** A bug or an unexpected failure inside lorafleet. */
  | 'internal';

export const ERROR_HINTS: Record<ErrorCode, string> = {
  invalid_request: 'fix the named field of the request and send it again',
  model_not_found: "use the base model's name or one of the adapters listed by models() / GET /v1/models",
  context_length_exceeded: 'shorten the prompt or lower max_tokens (or give the engine a larger KV cache)',
  queue_full: 'retry after a short wait, or raise maxQueue',
  kv_cache_full: 'retry when running requests finish, or give the engine a larger KV cache',
  adapter_pool_full: 'retry when running requests finish, or raise the adapter pool budget (max LoRAs)',
  adapter_invalid: 'check the adapter directory (adapter_config.json + adapter_model.safetensors) against the message',
  model_invalid: 'check the model directory or URL (config.json, tokenizer files, safetensors) against the message',
  model_too_large: 'use a smaller model, a quantized weight format, or a device with larger limits',
  webgpu_unavailable: 'run in a browser with WebGPU, or in Node with the `webgpu` package (Dawn); on GPU-less Linux install chromium and libvulkan1 for SwiftShader',
  device_lost: 'the engine recreates the device: retry the request',
  cancelled: 'nothing to do: the request was cancelled on purpose',
  internal: 'this is a bug in lorafleet: report it with the message',
};

export interface LorafleetErrorOptions {
  /** The request field the error is about (OpenAI's `param`). */
  param?: string;
  cause?: unknown;
}

export class LorafleetError extends Error {
  readonly code: ErrorCode;
  readonly param: string | undefined;

  constructor(message: string, code: ErrorCode, opts: LorafleetErrorOptions = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'LorafleetError';
    this.code = code;
    this.param = opts.param;
  }

  /** What to do about it. */
  get hint(): string {
    return ERROR_HINTS[this.code];
  }
}

/** Any thrown value as a LorafleetError (unknown errors become 'internal', keeping the cause). */
export function asLorafleetError(e: unknown): LorafleetError {
  if (e instanceof LorafleetError) return e;
  if (e instanceof Error && e.name === 'AbortError') return new LorafleetError(e.message || 'cancelled', 'cancelled', { cause: e });
  const msg = e instanceof Error ? e.message : String(e);
  return new LorafleetError(msg, 'internal', { cause: e });
}
