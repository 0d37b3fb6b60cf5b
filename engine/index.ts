// lorafleet's browser (and default) entry: the public API (public.ts) and the worker engine,
// createWorkerEngine, whose other half is 'lorafleet/worker' (worker/worker.ts).
export * from './public.ts';
export { createWorkerEngine, type WorkerEngine, type WorkerEngineOptions } from './worker/client.ts';
export type { WorkerEngineInit } from './worker/protocol.ts';
