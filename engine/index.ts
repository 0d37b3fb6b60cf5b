// lorafleet: public exports.
export {
  createEngine,
  InvalidRequestError,
  type Engine,
  type CreateEngineOptions,
  type EngineProgress,
  type GenerateOptions,
  type GenerateInput,
  type GeneratedToken,
  type Generation,
  type GenerationSummary,
  type ChatCompletion,
  type ChatCompletionChunk,
  type FinishReason,
  type Usage,
} from './api/engine.ts';
export type { ChatCompletionRequest, ChatMessage } from './api/schema.ts';
export type { GenerateFn, ChatCompletions, ChatFinishReason, ChatCompletionMessage, ToolCall, ToolCallDelta, RouteDecision, RouteFn } from './api/types.ts';
export { drain } from './api/generate.ts';
// structured output (engine/structured/README.md)
export { liveMatchers, ConstraintUnsatisfiableError, GrammarEngineError, parseToolCalls, ToolCallStream, type ConstraintSpec, type ToolFunction, type ToolMode } from './structured/index.ts';
// the OpenAI shaping, for surfaces that wrap generate() (server, worker)
export { createChatCompletion, chatCompletionChunks, chatCompletionOf, chatGenerateOptions, responseMeta, type ResponseMeta } from './api/openai.ts';
export { createCompletion, completionChunks, completionGenerateOptions, completionInput, completionRequestSchema, legacyLogprobs, type Completion, type CompletionChunk, type CompletionLogprobs, type CompletionRequest } from './api/completions.ts';
export { logprobsOf, tokenLogprob, type TokenLogprob } from './api/logprobs.ts';
// typed errors: every error lorafleet throws on purpose is a LorafleetError with a stable `code`
export {
  LorafleetError,
  asLorafleetError,
  ERROR_HINTS,
  HTTP_STATUS,
  errorBody,
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
  type ErrorCode,
  type OpenAIErrorBody,
} from './api/errors.ts';
export { StopMatcher } from './api/stop.ts';
export { GpuModel, type ForwardStep, type ForwardSegment, type ForwardResult, type LoadGpuModelOptions, type UploadProgress } from './forward/gpu-model.ts';
export { GpuStepRunner } from './forward/runner.ts';
export { Runtime } from '../shaders/gpu/runtime.ts';
export { acquireGpu, WebGPUNotAvailableError, type GpuInfo } from '../shaders/gpu/device.ts';
export { PagedKvCache } from './kv/paged-cache.ts';
export { openModelSource, LocalDirSource, MemorySource, HubSource, UrlFilesSource, type ModelSource } from './model/source.ts';
export { embeddedModelSource, EMBEDDED_MODEL_NAME } from './model/embedded.ts';
export { parseModelConfig, type ModelConfig } from './model/config.ts';
export { loadTokenizer, ModelTokenizer } from './model/tokenizer.ts';
export type { StepRunner, StepBatch, StepSegment, SegmentResult } from './scheduler/types.ts';
export type { LoraRuntime, LoraModule } from './lora/hook.ts';
export type { WeightFormat } from '../shaders/matmul/weights.ts';
