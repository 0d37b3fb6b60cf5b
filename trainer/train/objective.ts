// The objectives as functions of per-token label log-probs (TRL's definitions). The backend gives
// logp[t] = log p(labels[t+1] | tokens ≤ t) for every target position; the objective returns the
// loss, its metrics and w[t] = ∂loss/∂logp[t], which the backward pass turns into
// ∂loss/∂logits[t] = w[t]·(onehot(label) − softmax) inside the fused lm_head + cross-entropy kernel.
//
//   lm (cpt, sft, pretokenized): CrossEntropyLoss(ignore_index=-100), mean over the micro-batch's
//                                non-ignored tokens                               w = −1/N
//   dpo (sigmoid):  z = β·((πc − πr) − (refc − refr)),  loss = −logσ(z)  (mean over pairs; π, ref =
//                   log-probs summed over completion tokens; ref = adapter disabled, or the
//                   starting adapter frozen with rl_adapter_ref_model)
//                   rewards/chosen = β(πc − refc), rewards/rejected = β(πr − refr),
//                   margins = chosen − rejected, accuracies = mean(chosen > rejected)
//                   rpo_alpha α: loss += α·nll, nll = CE over the chosen completions' tokens (mean) (TRL)
//   orpo:           nll = CE over the chosen completions' tokens (mean); lc, lr = mean log-probs;
//                   log_odds = (lc − lr) − (log1p(−e^lc) − log1p(−e^lr));
//                   loss = nll − α·mean(logσ(log_odds));  rewards = α·lc / α·lr

/** Per row: log-probs of its target positions, in order (NaN-free; ignored positions left out). */
export type RowLogps = Float64Array;

export interface ObjectiveResult {
  loss: number;
  metrics: Record<string, number>;
  /** per row, per target position (same order as the log-probs): ∂loss/∂logp */
  weights: Float64Array[];
}

const logsigmoid = (x: number) => (x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x)));
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const sum = (a: Float64Array) => a.reduce((s, v) => s + v, 0);

export function lmObjective(logps: RowLogps[]): ObjectiveResult {
  const n = logps.reduce((k, a) => k + a.length, 0);
  if (n === 0) return { loss: 0, metrics: { targets: 0 }, weights: logps.map((a) => new Float64Array(a.length)) };
  const s = logps.reduce((k, a) => k + sum(a), 0);
  return { loss: -s / n, metrics: { targets: n }, weights: logps.map((a) => new Float64Array(a.length).fill(-1 / n)) };
}

/** rows: [chosen0, rejected0, chosen1, rejected1, …]; ref the same for the adapter-free model. */
export function dpoObjective(logps: RowLogps[], ref: RowLogps[], beta: number, rpoAlpha?: number): ObjectiveResult {
  const P = logps.length / 2;
  let loss = 0, rc = 0, rr = 0, acc = 0;
  const weights: Float64Array[] = [];
  // rpo_alpha (TRL; RPO, Pang et al. 2024): + α · CE of the chosen completions, mean over all their tokens
  let cs = 0, cn = 0;
  if (rpoAlpha) for (let i = 0; i < P; i++) { cs += sum(logps[2 * i]!); cn += logps[2 * i]!.length; }
  for (let i = 0; i < P; i++) {
    const pc = sum(logps[2 * i]!), pr = sum(logps[2 * i + 1]!);
    const qc = sum(ref[2 * i]!), qr = sum(ref[2 * i + 1]!);
    const z = beta * (pc - pr - (qc - qr));
    loss += -logsigmoid(z) / P;
    const g = (-(1 - sigmoid(z)) * beta) / P;
    weights.push(new Float64Array(logps[2 * i]!.length).fill(g - (rpoAlpha && cn ? rpoAlpha / cn : 0)), new Float64Array(logps[2 * i + 1]!.length).fill(-g));
    const c = beta * (pc - qc), r = beta * (pr - qr);
    rc += c / P;
    rr += r / P;
    acc += (c > r ? 1 : 0) / P;
  }
  const metrics: Record<string, number> = { 'rewards/chosen': rc, 'rewards/rejected': rr, 'rewards/margins': rc - rr, 'rewards/accuracies': acc };
  if (rpoAlpha && cn) {
    metrics.nll_loss = -cs / cn;
    loss += rpoAlpha * metrics.nll_loss;
  }
  return { loss, metrics, weights };
}

export function orpoObjective(logps: RowLogps[], alpha: number): ObjectiveResult {
  const P = logps.length / 2;
  let cs = 0, cn = 0;
  for (let i = 0; i < P; i++) {
    cs += sum(logps[2 * i]!);
    cn += logps[2 * i]!.length;
  }
  const nll = -cs / cn;
  let ratio = 0, rc = 0, rr = 0, acc = 0;
  const weights: Float64Array[] = [];
  for (let i = 0; i < P; i++) {
    const c = logps[2 * i]!, r = logps[2 * i + 1]!;
    const lc = sum(c) / c.length, lr = sum(r) / r.length;
    const lo = lc - lr - (Math.log1p(-Math.exp(lc)) - Math.log1p(-Math.exp(lr)));
    ratio += logsigmoid(lo) / P;
    const dlo = (-alpha * (1 - sigmoid(lo))) / P;
    const gc = dlo / (1 - Math.exp(lc)), gr = -dlo / (1 - Math.exp(lr));
    weights.push(new Float64Array(c.length).fill(gc / c.length - 1 / cn), new Float64Array(r.length).fill(gr / r.length));
    rc += (alpha * lc) / P;
    rr += (alpha * lr) / P;
    acc += (lc > lr ? 1 : 0) / P;
  }
  return {
    loss: nll - alpha * ratio,
    metrics: { nll_loss: nll, log_odds_ratio: ratio, 'rewards/chosen': rc, 'rewards/rejected': rr, 'rewards/margins': rc - rr, 'rewards/accuracies': acc },
    weights,
  };
}

/**
 * HF transformers get_{constant,linear,cosine}_schedule_with_warmup: the learning-rate multiplier at
 * (0-based) optimizer step `step` of `total` (cosine with num_cycles 0.5).
 */
export function lrMultiplier(kind: 'constant' | 'constant_with_warmup' | 'linear' | 'cosine', step: number, warmup: number, total: number): number {
  if (step < warmup) return step / Math.max(1, warmup);
  if (kind === 'constant' || kind === 'constant_with_warmup') return 1;
  if (kind === 'linear') return Math.max(0, (total - step) / Math.max(1, total - warmup));
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * 0.5 * progress)));
}
