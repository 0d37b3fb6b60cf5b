// lorafleet's browser (and default) entry: the public API (public.ts) and the worker engine,
// createWorkerEngine, whose other half is 'lorafleet/worker' (trainer/worker/worker.ts: the engine's
// worker side, worker/worker.ts, with the trainer plugged in).
export * from './public.ts';
export { createWorkerEngine, type WorkerEngine, type WorkerEngineOptions, type WorkerTrainOptions } from './worker/client.ts';
export type { WorkerEngineInit, WorkerTrainRequest, WorkerTrainResult, TrainEvent, PoolInfo, PoolAdapterInfo } from './worker/protocol.ts';
