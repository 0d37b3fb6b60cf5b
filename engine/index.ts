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
export { StopMatcher } from './api/stop.ts';
export { GpuModel, type ForwardStep, type ForwardSegment, type ForwardResult, type LoadGpuModelOptions, type UploadProgress } from './forward/gpu-model.ts';
export { GpuStepRunner } from './forward/runner.ts';
export { Runtime } from '../shaders/gpu/runtime.ts';
export { acquireGpu, WebGPUNotAvailableError, type GpuInfo } from '../shaders/gpu/device.ts';
export { PagedKvCache } from './kv/paged-cache.ts';
export { openModelSource, LocalDirSource, MemorySource, HubSource, type ModelSource } from './model/source.ts';
export { parseModelConfig, type ModelConfig } from './model/config.ts';
export { loadTokenizer, ModelTokenizer } from './model/tokenizer.ts';
export type { StepRunner, StepBatch, StepSegment, SegmentResult } from './scheduler/types.ts';
export type { LoraRuntime, LoraModule } from './lora/hook.ts';
export type { WeightFormat } from '../shaders/matmul/weights.ts';
