// The float64 LoRA-training oracle against finite differences, against the inference oracle, and
// its optimizer pieces against torch's formulas written out by hand.
import { describe, expect, it } from 'vitest';
import { forward, mergeLora, type RefLoraAdapter } from './llama.ts';
import {
  MODULES, moduleDims, loraForward, lossAndGrad, lossOf, clipGradNorm, adamwStep, lrLambda, cloneLora, IGNORE,
  type RefBatch, type RefLoraParams, type RefRow,
} from './train.ts';
import { presetConfig, randomRefWeights, type PresetName } from '../tests/helpers/random-model.ts';
import { Rng } from '../shaders/lib/random.ts';
import type { ModelConfig } from '../engine/model/config.ts';

function randomLora(c: ModelConfig, r: number, seed: number, std = 0.1): RefLoraParams {
  const rng = new Rng(seed);
  const pairs = new Map();
  for (let l = 0; l < c.numLayers; l++) for (const m of MODULES) {
    const { inDim, outDim } = moduleDims(c, m);
    pairs.set(`${l}.${m}`, { A: rng.normalF64(r * inDim, std), B: rng.normalF64(outDim * r, std) });
  }
  return { r, scaling: 2, pairs };
}

function randomRow(c: ModelConfig, T: number, rng: Rng, opts: { ignore?: number; docStarts?: number[] } = {}): RefRow {
  const tokens = rng.ints(T, c.vocabSize);
  const labels = tokens.map((t, i) => (i < (opts.ignore ?? 0) ? IGNORE : t));
  for (const s of opts.docStarts ?? []) labels[s] = IGNORE;
  return { tokens, labels, docStarts: opts.docStarts ? [0, ...opts.docStarts] : undefined };
}

/** Central differences of the loss on a handful of A and B entries of every module. */
function fdCheck(preset: PresetName, batch: (c: ModelConfig, rng: Rng) => RefBatch) {
  const c = presetConfig(preset);
  const w = randomRefWeights(c, { seed: 5 });
  const lora = randomLora(c, 3, 11);
  const rng = new Rng(3);
  const b = batch(c, rng);
  const { grads, loss } = lossAndGrad(w, c, lora, b);
  expect(Number.isFinite(loss)).toBe(true);
  const h = 1e-5;
  let worst = 0;
  let checked = 0;
  for (const [key, p] of lora.pairs) {
    for (const ab of ['A', 'B'] as const) {
      const arr = p[ab];
      for (let n = 0; n < 2; n++) {
        const i = rng.int(arr.length);
        const save = arr[i]!;
        arr[i] = save + h;
        const up = lossOf(w, c, lora, b);
        arr[i] = save - h;
        const dn = lossOf(w, c, lora, b);
        arr[i] = save;
        const fd = (up - dn) / (2 * h);
        const an = grads.get(key)![ab][i]!;
        const err = Math.abs(fd - an) / Math.max(1e-3, Math.abs(fd));
        worst = Math.max(worst, err);
        checked++;
      }
    }
  }
  expect(checked).toBeGreaterThan(20);
  expect(worst).toBeLessThan(1e-5);
}

describe('reference/train: LoRA backward = finite differences', () => {
  it('cpt / -100 labels, packed documents (tiny-llama, GQA 2)', () => {
    fdCheck('tiny-llama', (c, rng) => ({ kind: 'lm', rows: [randomRow(c, 9, rng, { ignore: 2, docStarts: [4] }), randomRow(c, 6, rng)] }));
  });
  it('qwen2 bias + sliding window mistral', () => {
    fdCheck('tiny-qwen2', (c, rng) => ({ kind: 'lm', rows: [randomRow(c, 7, rng, { ignore: 1 })] }));
    fdCheck('tiny-mistral', (c, rng) => ({ kind: 'lm', rows: [randomRow(c, 8, rng)] }));
  });
  it('dpo (reference = adapter disabled)', () => {
    fdCheck('tiny-llama', (c, rng) => ({ kind: 'dpo', beta: 0.5, pairs: [0, 1].map(() => ({ chosen: randomRow(c, 7, rng, { ignore: 3 }), rejected: randomRow(c, 6, rng, { ignore: 3 }) })) }));
  });
  it('dpo with a reference adapter (rl_adapter_ref_model) and rpo_alpha', () => {
    fdCheck('tiny-llama', (c, rng) => ({ kind: 'dpo', beta: 0.3, rpoAlpha: 0.7, refLora: randomLora(c, 3, 12), pairs: [0, 1, 2].map(() => ({ chosen: randomRow(c, 6, rng, { ignore: 2 }), rejected: randomRow(c, 7, rng, { ignore: 4 }) })) }));
  });
  it('rpo_alpha adds α × the chosen rows\' token-mean CE (TRL nll_loss); the reference adapter moves the loss', () => {
    const c = presetConfig('tiny-llama');
    const w = randomRefWeights(c, { seed: 5 });
    const lora = randomLora(c, 3, 11);
    const rng = new Rng(9);
    const pairs = [0, 1].map(() => ({ chosen: randomRow(c, 6, rng, { ignore: 2 }), rejected: randomRow(c, 5, rng, { ignore: 1 }) }));
    const dpo = lossOf(w, c, lora, { kind: 'dpo', beta: 0.2, pairs });
    const rpo = lossOf(w, c, lora, { kind: 'dpo', beta: 0.2, pairs, rpoAlpha: 0.5 });
    const nll = lossOf(w, c, lora, { kind: 'lm', rows: pairs.map((p) => p.chosen) });
    expect(Math.abs(rpo - (dpo + 0.5 * nll))).toBeLessThan(1e-12);
    // the policy as its own reference: z = 0, loss = log 2
    expect(Math.abs(lossOf(w, c, lora, { kind: 'dpo', beta: 0.2, pairs, refLora: lora }) - Math.LN2)).toBeLessThan(1e-12);
  });
  it('orpo', () => {
    fdCheck('tiny-llama-mha', (c, rng) => ({ kind: 'orpo', alpha: 0.3, pairs: [0, 1].map(() => ({ chosen: randomRow(c, 7, rng, { ignore: 3 }), rejected: randomRow(c, 8, rng, { ignore: 2 }) })) }));
  });
});

describe('reference/train: forward', () => {
  it('equals the inference oracle on merged weights; packed documents = separate rows', () => {
    const c = presetConfig('tiny-llama');
    const w = randomRefWeights(c, { seed: 2 });
    const lora = randomLora(c, 4, 9);
    const adapter: RefLoraAdapter = { scaling: lora.scaling, layers: new Map() };
    for (const [key, p] of lora.pairs) {
      const [l, m] = key.split('.');
      adapter.layers.set(`model.layers.${l}.${m === 'gate_proj' || m === 'up_proj' || m === 'down_proj' ? 'mlp' : 'self_attn'}.${m}.weight`, { ...p, r: lora.r });
    }
    const rng = new Rng(1);
    const a = rng.ints(5, c.vocabSize), b = rng.ints(4, c.vocabSize);
    const merged = mergeLora(w, adapter);
    const packed = loraForward(w, c, lora, { tokens: [...a, ...b], labels: [...a, ...b], docStarts: [0, 5] }).logits;
    const fa = forward(merged, c, a).data, fb = forward(merged, c, b).data;
    const want = new Float64Array([...fa, ...fb]);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(want[i]! - packed[i]!));
    expect(worst).toBeLessThan(1e-9);
  });
});

describe('reference/train: optimizer pieces', () => {
  it('clip_grad_norm_ returns the norm before clipping and scales by max/(norm+1e-6)', () => {
    const g = new Map([['0.q_proj', { A: new Float64Array([3, 0]), B: new Float64Array([4]) }]]);
    expect(clipGradNorm(g, 1)).toBe(5);
    expect(g.get('0.q_proj')!.B[0]).toBeCloseTo(4 / (5 + 1e-6), 12);
    const g2 = new Map([['0.q_proj', { A: new Float64Array([0.3]), B: new Float64Array([0.4]) }]]);
    expect(clipGradNorm(g2, 1)).toBeCloseTo(0.5, 12);
    expect(g2.get('0.q_proj')!.A[0]).toBe(0.3); // under the limit: unchanged
  });
  it('AdamW: two steps by hand (decoupled decay, bias correction, eps outside the sqrt)', () => {
    const lora: RefLoraParams = { r: 1, scaling: 1, pairs: new Map([['0.q_proj', { A: new Float64Array([1]), B: new Float64Array([-2]) }]]) };
    const st = { step: 0, m: new Map(), v: new Map() };
    const o = { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.01 };
    let p = 1, m = 0, v = 0;
    for (const [t, g] of [[1, 0.5], [2, -0.25]] as const) {
      adamwStep(lora, new Map([['0.q_proj', { A: new Float64Array([g]), B: new Float64Array([0]) }]]), st, o, o.lr);
      p *= 1 - o.lr * o.weightDecay;
      m = 0.9 * m + 0.1 * g;
      v = 0.99 * v + 0.01 * g * g;
      p -= (o.lr / (1 - 0.9 ** t)) * (m / (Math.sqrt(v) / Math.sqrt(1 - 0.99 ** t) + 1e-8));
      expect(lora.pairs.get('0.q_proj')!.A[0]).toBeCloseTo(p, 14);
    }
    expect(lora.pairs.get('0.q_proj')!.B[0]).toBeCloseTo(-2 * (1 - 0.001) ** 2, 14); // zero grad: decay only
  });
  it('HF schedules with warmup', () => {
    expect([0, 1, 2, 3, 4].map((s) => lrLambda('constant', s, 2, 5))).toEqual([0, 0.5, 1, 1, 1]);
    expect([0, 2, 3, 4].map((s) => lrLambda('linear', s, 2, 6))).toEqual([0, 1, 0.75, 0.5]);
    expect(lrLambda('cosine', 2, 2, 6)).toBeCloseTo(1, 12);
    expect(lrLambda('cosine', 4, 2, 6)).toBeCloseTo(0.5, 12);
    expect(lrLambda('cosine', 6, 2, 6)).toBeCloseTo(0, 12);
  });
  it('cloneLora is deep', () => {
    const c = presetConfig('tiny-llama');
    const l = randomLora(c, 2, 1);
    const k = cloneLora(l);
    k.pairs.get('0.q_proj')!.A[0] = 99;
    expect(l.pairs.get('0.q_proj')!.A[0]).not.toBe(99);
  });
});
