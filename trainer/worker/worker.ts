// `lorafleet/worker`: the package's worker entry. Imported in a Web Worker, it serves the worker
// engine (engine/worker/worker.ts, driven from the page by createWorkerEngine) with the trainer
// plugged in (train.ts), so the page can fine-tune an adapter on the worker's loaded base and chat
// with it at once:
//
//   // engine.worker.ts: the whole worker
//   import 'lorafleet/worker';
//
// It lives in trainer/ because it composes both layers (engine/ never imports trainer/).
import { exposeEngine, inWorkerScope } from '../../engine/worker/worker.ts';
import { trainInWorker } from './train.ts';

if (inWorkerScope()) exposeEngine(undefined, { trainer: trainInWorker });
