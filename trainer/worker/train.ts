// Training inside the worker engine: the trainer (trainer/train/run.ts) on the engine's own loaded
// base (its GpuModel, f32, and its runtime: no second copy of the weights), rows from the page
// written to an in-memory dataset, progress streamed back as TrainEvents, and the PEFT files
// returned for the worker to hot-add to its live pool (engine/worker/worker.ts does that).
//
//   page:   await engine.train({ name: 'mine', rows: [{ messages }], config: { max_steps: 8 } }, { onEvent, signal })
//   worker: trainInWorker(engine, req, { onEvent, signal }) → { adapterFiles, losses, log }
import { z } from 'zod';
import { LorafleetError } from '../../shaders/lib/errors.ts';
import type { LocalEngine } from '../../engine/api/engine.ts';
import type { WorkerTrainer } from '../../engine/worker/worker.ts';
import type { WorkerTrainRequest } from '../../engine/worker/protocol.ts';
import { validateTrainConfig, type TrainConfig } from '../train/config.ts';
import { loadData, runTraining } from '../train/run.ts';
import { totalSteps, type StepResult } from '../train/trainer.ts';
import { MemoryIO } from '../train/io.ts';

const requestSchema = z
  .object({
    name: z.string().min(1).max(128).regex(/^[\w.-]+$/, 'letters, digits, _ . - only'),
    method: z.enum(['cpt', 'sft', 'dpo', 'orpo']).optional(),
    rows: z.array(z.unknown()).min(1, 'no training rows'),
    config: z.record(z.unknown()).optional(),
  })
  .strict();

/** Keys the worker sets itself: the data, the base and where outputs go. */
const RESERVED = ['base_model', 'datasets', 'test_datasets', 'output_dir', 'lora_model_dir'] as const;

/** The method a row shape implies: chat rows → sft, preference rows → dpo, text / pretokenized → cpt. */
export function methodFor(row: unknown): TrainConfig['method'] {
  const r = (row ?? {}) as Record<string, unknown>;
  if ('chosen' in r || 'chosen_input_ids' in r) return 'dpo';
  if ('messages' in r || ('prompt' in r && 'completion' in r)) return 'sft';
  return 'cpt';
}

/** Validates a train request; the trainer's config errors name the field ('train request: …'). */
export function trainConfigFor(engine: Pick<LocalEngine, 'modelName'>, raw: WorkerTrainRequest): { req: WorkerTrainRequest; config: TrainConfig } {
  const p = requestSchema.safeParse(raw);
  if (!p.success) throw new LorafleetError(`train request: ${p.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`, 'invalid_request', { param: String(p.error.issues[0]?.path[0] ?? '') });
  const req = p.data as WorkerTrainRequest;
  for (const k of RESERVED) if (req.config && k in req.config) throw new LorafleetError(`train request: config.${k} is set by the worker (it trains the loaded base on the given rows)`, 'invalid_request', { param: `config.${k}` });
  const config = validateTrainConfig({ ...req.config, method: req.method ?? methodFor(req.rows[0]), base_model: engine.modelName, datasets: [{ path: 'rows.jsonl' }], output_dir: 'out' }, 'train request');
  return { req, config };
}

export const trainInWorker: WorkerTrainer = async (engine, raw, { onEvent, signal }) => {
  const { req, config } = trainConfigFor(engine, raw);
  if (engine.model.format !== 'f32') throw new LorafleetError(`training needs the base as f32; this engine loaded it as ${engine.model.format} (createWorkerEngine({ weightFormat: 'f32' }))`, 'invalid_request', { param: 'weightFormat' });
  const io = new MemoryIO();
  await io.write('rows.jsonl', req.rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  // the rows as the trainer will see them (bad rows fail here, naming the row), for the step count
  const data = await loadData(config, '', io, engine.tokenizer);
  const total = totalSteps(config, data.train.items.length);
  onEvent({ type: 'start', totalSteps: total, sequences: data.train.items.length, tokens: data.stats.tokens, message: `${data.stats.rows} rows → ${data.train.items.length} ${data.train.kind === 'pref' ? 'pairs' : 'sequences'}, ${data.stats.tokens} tokens; ${total} steps` });
  const losses: number[] = [];
  const t0 = performance.now();
  let last = null as StepResult | null;
  const res = await runTraining({
    config, baseDir: '', io, rt: engine.runtime, model: engine.model, openSource: () => engine.source, resume: false, signal,
    say: (message) => onEvent({ type: 'message', message }),
    onStep: (s) => {
      last = s;
      losses.push(s.loss);
    },
    onProgress: (step, t) => {
      const s = last!;
      onEvent({ type: 'step', step, totalSteps: t, loss: s.loss, gradNorm: s.gradNorm, learningRate: s.lr, tokens: s.tokens, elapsedMs: performance.now() - t0 });
    },
    onLog: (e) => onEvent({ type: 'log', entry: Object.fromEntries(Object.entries(e).filter((kv): kv is [string, number] => typeof kv[1] === 'number')) }),
  });
  const files: Record<string, Uint8Array> = {};
  for (const f of ['adapter_config.json', 'adapter_model.safetensors']) files[f] = await io.readBytes(`out/${f}`);
  return {
    name: req.name,
    steps: res.steps,
    losses,
    log: res.log.map((e) => Object.fromEntries(Object.entries(e).filter((kv): kv is [string, number] => typeof kv[1] === 'number'))),
    adapterFiles: files,
  };
};
