// The training loop: data order, objectives, gradient accumulation, clipping, the schedule,
// logging, evaluation and checkpoints, over any TrainBackend (gpu-backend.ts on WebGPU).
//
// Order (HF Trainer semantics): micro-batches of micro_batch_size items stream through epochs
// (each epoch shuffled with seed + epoch when shuffle, else file order); optimizer step k takes
// micro-batches [k·accum, (k+1)·accum). A step's loss and gradient are the means of its
// micro-batches' (each micro-batch's loss = mean over its non-ignored tokens for lm objectives,
// mean over its pairs for dpo/orpo). grad_norm is logged before clipping; the learning rate of
// step k is learning_rate · lrMultiplier(k) (HF get_*_schedule_with_warmup).
import type { TrainConfig } from './config.ts';
import type { TrainBackend, AdamHyper } from './backend.ts';
import type { Sequence, TrainItems, LoadStats, PreferencePair } from './data.ts';
import { shuffled } from './data.ts';
import { lmObjective, dpoObjective, orpoObjective, lrMultiplier, type ObjectiveResult } from './objective.ts';
import { joinPath, type TrainIO } from './io.ts';
import { writeCheckpoint, latestCheckpoint, readCheckpoint, writeAdapter, lossCurveSvg } from './checkpoint.ts';

export interface TrainData {
  train: TrainItems;
  eval?: TrainItems;
  stats?: LoadStats;
}

export interface LogEntry {
  step: number;
  epoch: number;
  loss?: number;
  grad_norm?: number;
  learning_rate?: number;
  tokens?: number;
  tokens_per_s?: number;
  [k: string]: number | undefined;
}

export interface StepResult {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  tokens: number;
  metrics: Record<string, number>;
}

export interface TrainOptions {
  config: TrainConfig;
  backend: TrainBackend;
  data: TrainData;
  io: TrainIO;
  /** Model name recorded in adapter_config.json base_model_name_or_path. */
  baseModel?: string | null;
  /** Resume from the newest checkpoint in output_dir (default true). */
  resume?: boolean;
  onStep?: (r: StepResult) => void;
  onLog?: (e: LogEntry) => void;
  onProgress?: (step: number, total: number, loss: number) => void;
  signal?: AbortSignal;
  /** Milliseconds clock (default performance.now). */
  now?: () => number;
  /** Write outputs (adapter, log, curve, checkpoints) — default true. */
  writeOutputs?: boolean;
}

export interface TrainResult {
  steps: number;
  totalSteps: number;
  resumedFrom: number | null;
  log: LogEntry[];
  lastEval?: Record<string, number>;
}

/** Total optimizer steps: max_steps, else ceil(num_epochs · max(1, ⌊micro-batches per epoch / accum⌋)). */
export function totalSteps(cfg: TrainConfig, items: number): number {
  if (cfg.max_steps) return cfg.max_steps;
  const mb = Math.ceil(items / cfg.micro_batch_size);
  return Math.ceil(cfg.num_epochs * Math.max(1, Math.floor(mb / cfg.gradient_accumulation_steps)));
}

/** FNV-1a of the keys that change what a step computes (not output/logging/save settings). */
export function configHash(cfg: TrainConfig): string {
  const { output_dir: _o, save_steps: _s, logging_steps: _l, eval_steps: _e, max_steps: _m, num_epochs: _n, ...rest } = cfg;
  let h = 0x811c9dc5;
  for (const ch of JSON.stringify(rest)) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

type MicroBatch = { kind: 'lm'; rows: Sequence[] } | { kind: 'pref'; pairs: PreferencePair[] };

/** The micro-batch with global index i (stream over epochs). */
export function microBatch(items: TrainItems, cfg: TrainConfig, i: number): { batch: MicroBatch; epoch: number } {
  const n = items.items.length;
  const b = cfg.micro_batch_size;
  const perEpoch = Math.ceil(n / b);
  const epoch = Math.floor(i / perEpoch);
  const j = i % perEpoch;
  const idx = Array.from({ length: n }, (_, k) => k);
  const order = cfg.shuffle ? shuffled(idx, cfg.seed + epoch) : idx;
  const pick = order.slice(j * b, (j + 1) * b);
  const batch: MicroBatch = items.kind === 'lm' ? { kind: 'lm', rows: pick.map((k) => items.items[k]!) } : { kind: 'pref', pairs: pick.map((k) => items.items[k]!) };
  return { batch, epoch: epoch + j / perEpoch };
}

const flatRows = (b: MicroBatch): Sequence[] => (b.kind === 'lm' ? b.rows : b.pairs.flatMap((p) => [p.chosen, p.rejected]));

/** DPO reference log-probs taken once (precompute_ref_log_probs / rl_adapter_ref_model): pair → [chosen, rejected]. */
export type RefLogps = Map<PreferencePair, [Float64Array, Float64Array]>;

/** Loss of one micro-batch; with `backwardScale` the backward runs too (weights × scale). */
export async function microStep(backend: TrainBackend, cfg: TrainConfig, b: MicroBatch, backwardScale: number | null, dropoutSeed?: number, refLogps?: RefLogps): Promise<ObjectiveResult> {
  const rows = flatRows(b);
  const train = backwardScale !== null;
  let ref: Float64Array[] | null = null;
  if (cfg.method === 'dpo') {
    if (refLogps && b.kind === 'pref') {
      ref = b.pairs.flatMap((p) => {
        const r = refLogps.get(p);
        if (!r) throw new Error('dpo: a pair without precomputed reference log-probs');
        return r;
      });
    } else ref = await backend.logps(rows, { adapter: false, train: false });
  }
  const logps = await backend.logps(rows, { adapter: true, train, dropoutSeed });
  const obj = cfg.method === 'dpo' ? dpoObjective(logps, ref!, cfg.dpo_beta, cfg.rpo_alpha) : cfg.method === 'orpo' ? orpoObjective(logps, cfg.orpo_alpha) : lmObjective(logps);
  if (train) await backend.backward(obj.weights.map((w) => w.map((x) => x * backwardScale)));
  return obj;
}

/**
 * The reference log-probs of `pairs`, micro_batch_size pairs per forward: the model as it is now (its
 * adapter on: rl_adapter_ref_model, called before step 1 so that is the starting adapter) or the base
 * (adapter off). TRL precompute_ref_log_probs.
 */
export async function precomputeRefLogps(backend: TrainBackend, cfg: TrainConfig, pairs: PreferencePair[]): Promise<RefLogps> {
  const into: RefLogps = new Map();
  const todo = [...new Set(pairs)];
  for (let i = 0; i < todo.length; i += cfg.micro_batch_size) {
    const ps = todo.slice(i, i + cfg.micro_batch_size);
    const lp = await backend.logps(ps.flatMap((p) => [p.chosen, p.rejected]), { adapter: cfg.rl_adapter_ref_model === true, train: false });
    ps.forEach((p, k) => into.set(p, [lp[2 * k]!, lp[2 * k + 1]!]));
  }
  return into;
}

/** Held-out loss: lm = token-mean CE over every eval token (+ perplexity); pref = pair-weighted mean of loss and metrics. */
export async function evaluate(backend: TrainBackend, cfg: TrainConfig, items: TrainItems, refLogps?: RefLogps): Promise<Record<string, number>> {
  const b = cfg.micro_batch_size;
  const n = items.items.length;
  if (items.kind === 'lm') {
    let s = 0, k = 0;
    for (let i = 0; i < n; i += b) {
      const lp = await backend.logps(items.items.slice(i, i + b), { adapter: true, train: false });
      for (const a of lp) for (const v of a) { s += v; k++; }
    }
    const loss = k ? -s / k : NaN;
    return { eval_loss: loss, eval_perplexity: Math.exp(loss), eval_tokens: k };
  }
  const acc: Record<string, number> = {};
  for (let i = 0; i < n; i += b) {
    const pairs = items.items.slice(i, i + b);
    const r = await microStep(backend, cfg, { kind: 'pref', pairs }, null, undefined, refLogps);
    const w = pairs.length / n;
    acc.eval_loss = (acc.eval_loss ?? 0) + r.loss * w;
    for (const [key, v] of Object.entries(r.metrics)) acc[`eval_${key}`] = (acc[`eval_${key}`] ?? 0) + v * w;
  }
  return acc;
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  const { config: cfg, backend, data, io } = o;
  const now = o.now ?? (() => performance.now());
  const out = cfg.output_dir;
  const write = o.writeOutputs ?? true;
  const accum = cfg.gradient_accumulation_steps;
  const nItems = data.train.items.length;
  if (nItems === 0) throw new Error('train: no training rows left after loading');
  const total = totalSteps(cfg, nItems);
  const hyper: AdamHyper = { beta1: cfg.adam_beta1, beta2: cfg.adam_beta2, eps: cfg.adam_epsilon, weightDecay: cfg.weight_decay };
  const hash = configHash(cfg);
  const logPath = joinPath(out, 'train_log.jsonl');
  const log: LogEntry[] = [];

  // ---- resume
  let start = 0;
  let resumedFrom: number | null = null;
  let tokensSeen = 0;
  const ck = write && (o.resume ?? true) ? await latestCheckpoint(io, out) : null;
  const resumed = ck ? await readCheckpoint(io, ck.dir) : null;
  if (ck && resumed && resumed.state.config_hash !== hash) throw new Error(`${ck.dir}: trained with a different config (hash ${resumed.state.config_hash}, now ${hash}); use another output_dir or delete the checkpoints`);

  // ---- DPO reference log-probs, once, from the model as it starts (before a checkpoint is restored):
  // the pairs of the steps still to run, and the held-out pairs
  let refLogps: RefLogps | undefined;
  if (cfg.method === 'dpo' && (cfg.precompute_ref_log_probs || cfg.rl_adapter_ref_model) && data.train.kind === 'pref') {
    const from = resumed?.state.global_step ?? 0;
    const used: PreferencePair[] = [];
    for (let i = from * accum; i < total * accum; i++) {
      const b = microBatch(data.train, cfg, i).batch;
      if (b.kind === 'pref') used.push(...b.pairs);
    }
    if (data.eval?.kind === 'pref') used.push(...data.eval.items);
    refLogps = await precomputeRefLogps(backend, cfg, used);
  }

  if (resumed) {
    await backend.writeAdapter(resumed.adapter);
    await backend.writeOptimizer(resumed.optimizer);
    start = resumed.state.global_step;
    tokensSeen = resumed.state.tokens;
    resumedFrom = start;
    if (await io.exists(logPath)) {
      const kept = (await io.readText(logPath)).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as LogEntry).filter((e) => e.step <= start);
      log.push(...kept);
      await io.write(logPath, kept.map((e) => JSON.stringify(e) + '\n').join(''));
    }
  } else if (write && (o.resume ?? true) && (await io.exists(logPath))) await io.remove(logPath);

  const emit = async (e: LogEntry) => {
    log.push(e);
    o.onLog?.(e);
    if (write) await io.append(logPath, JSON.stringify(e) + '\n');
  };

  let lastEval: Record<string, number> | undefined;
  if (start === 0 && data.eval && data.eval.items.length) {
    // the untrained adapter's held-out numbers (step 0), the baseline every later eval is read against
    lastEval = await evaluate(backend, cfg, data.eval, refLogps);
    await emit({ step: 0, epoch: 0, ...lastEval });
  }
  let sinceLoss = 0, sinceSteps = 0, sinceTokens = 0, sinceT = now();
  for (let k = start; k < total; k++) {
    if (o.signal?.aborted) throw new Error('train: cancelled');
    let loss = 0, tokens = 0, epoch = 0;
    const metrics: Record<string, number> = {};
    for (let a = 0; a < accum; a++) {
      const mbIndex = k * accum + a;
      const { batch, epoch: ep } = microBatch(data.train, cfg, mbIndex);
      epoch = ep;
      tokens += flatRows(batch).reduce((s, r) => s + r.tokens.length, 0);
      const r = await microStep(backend, cfg, batch, 1 / accum, (cfg.seed * 1_000_003 + mbIndex) >>> 0, refLogps);
      loss += r.loss / accum;
      for (const [n, v] of Object.entries(r.metrics)) metrics[n] = (metrics[n] ?? 0) + v / accum;
    }
    const gradNorm = await backend.clipGradients(cfg.max_grad_norm);
    const lr = cfg.learning_rate * lrMultiplier(cfg.lr_scheduler, k, cfg.warmup_steps, total);
    await backend.optimizerStep(lr, hyper);
    tokensSeen += tokens;
    const step = k + 1;
    o.onStep?.({ step, loss, gradNorm, lr, tokens, metrics });
    o.onProgress?.(step, total, loss);
    sinceLoss += loss;
    sinceSteps++;
    sinceTokens += tokens;
    if (step % cfg.logging_steps === 0 || step === total) {
      const t = now();
      const { targets: _t, ...shown } = metrics;
      await emit({
        step, epoch: Number(epoch.toFixed(4)), loss: sinceLoss / sinceSteps, grad_norm: gradNorm, learning_rate: lr,
        tokens: sinceTokens, tokens_per_s: sinceTokens / Math.max(1e-9, (t - sinceT) / 1000), ...shown,
      });
      sinceLoss = sinceSteps = sinceTokens = 0;
      sinceT = now();
    }
    if (data.eval && data.eval.items.length && ((cfg.eval_steps && step % cfg.eval_steps === 0) || step === total)) {
      lastEval = await evaluate(backend, cfg, data.eval, refLogps);
      await emit({ step, epoch: Number(epoch.toFixed(4)), ...lastEval });
      sinceT = now();
    }
    if (write && ((cfg.save_steps && step % cfg.save_steps === 0) || step === total)) {
      const w = await backend.readAdapter();
      await writeCheckpoint(io, joinPath(out, `checkpoint-${step}`), backend.lora, w, await backend.readOptimizer(), {
        global_step: step, micro_batches: step * accum, epoch, config_hash: hash, tokens: tokensSeen,
      }, o.baseModel ?? cfg.base_model);
      sinceT = now();
    }
  }
  if (write) {
    await writeAdapter(io, out, backend.lora, await backend.readAdapter(), o.baseModel ?? cfg.base_model);
    const tr = log.filter((e) => e.loss !== undefined).map((e) => [e.step, e.loss!] as [number, number]);
    const ev = log.filter((e) => e.eval_loss !== undefined).map((e) => [e.step, e.eval_loss!] as [number, number]);
    await io.write(joinPath(out, 'loss.svg'), lossCurveSvg(tr, ev, `${cfg.method} loss — ${cfg.base_model.split('/').at(-1)}`));
  }
  return { steps: total - start, totalSteps: total, resumedFrom, log, lastEval };
}
