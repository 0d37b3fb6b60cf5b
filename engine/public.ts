// lorafleet's public API, shared by the package's entries: index.ts (browser / default: this plus
// the worker engine) and node.ts (Node: this plus Dawn and local files). Only what a library user
// needs is exported: the .d.ts files a consumer's compiler reads are the ones reachable from here,
// and they hold no WebGPU, Node or internal types.
import { createEngine as createLocalEngine } from './api/engine.ts';
import { drain as drainGeneration } from './api/generate.ts';
import type { CreateEngineOptions, Engine, Generation, GenerationSummary } from './api/types.ts';

/**
 * One model on WebGPU in this thread, with multi-LoRA, continuous batching and the OpenAI-style
 * chat API. No `model`: the embedded stories260K.
 */
export const createEngine: (opts?: CreateEngineOptions) => Promise<Engine> = createLocalEngine;

/** Runs a generation to its end and returns its summary. */
export const drain: (g: Generation) => Promise<GenerationSummary> = drainGeneration;

export type {
  Engine,
  AdapterInput,
  CreateEngineOptions,
  EngineMetrics,
  EngineLoraOptions,
  EngineProgress,
  GenerateOptions,
  GenerateInput,
  GeneratedToken,
  Generation,
  GenerationSummary,
  GenerateFn,
  ChatCompletions,
  ChatFinishReason,
  ChatCompletionMessage,
  ToolCall,
  ToolCallDelta,
  RouteDecision,
  RouteInfo,
  RouteFn,
  ChatCompletion,
  ChatCompletionChunk,
  FinishReason,
  Usage,
} from './api/types.ts';
export type { ChatCompletionRequest, ChatMessage } from './api/schema.ts';
// structured output (engine/structured/README.md)
export { GrammarEngineError } from './structured/xgrammar.ts';
export { parseToolCalls, ToolCallStream } from './structured/request.ts';
export type { ConstraintSpec, ToolFunction, ToolMode } from './structured/constraint.ts';
export type { ModelConfig } from './model/config.ts';
export type { WeightFormat } from '../shaders/matmul/format.ts';
export type { GpuInfo, GpuFeatures } from '../shaders/gpu/info.ts';
// the OpenAI shaping, for surfaces that wrap generate() (server, worker)
export { createChatCompletion, chatCompletionChunks, chatCompletionOf, chatGenerateOptions, responseMeta, type ResponseMeta } from './api/openai.ts';
export { createCompletion, completionChunks, completionGenerateOptions, completionInput, completionRequestSchema, legacyLogprobs, type Completion, type CompletionChunk, type CompletionLogprobs, type CompletionRequest } from './api/completions.ts';
export type { TokenLogprob } from './api/types.ts';
// typed errors: every error lorafleet throws on purpose is a LorafleetError with a stable `code`
export {
  LorafleetError,
  asLorafleetError,
  ERROR_HINTS,
  HTTP_STATUS,
  errorBody,
  InvalidRequestError,
  ModelNotFoundError,
  ContextLengthExceededError,
  DeviceLostError,
  QueueFullError,
  RequestTooLargeError,
  UnknownAdapterError,
  KvCacheFullError,
  LoraAdapterError,
  LoraPoolError,
  LoraPoolFullError,
  ModelConfigError,
  ModelSourceError,
  ModelWeightsError,
  SafetensorsError,
  WebGPUNotAvailableError,
  type ErrorCode,
  type OpenAIErrorBody,
} from './api/errors.ts';
// where model files come from
export { openModelSource, LocalDirSource, MemorySource, HubSource, UrlFilesSource, type ModelSource, type HubSourceOptions } from './model/source.ts';
export { embeddedModelSource, EMBEDDED_MODEL_NAME } from './model/embedded.ts';
