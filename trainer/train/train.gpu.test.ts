// The WebGPU trainer against the float64 oracle (reference/train.ts) on stories260K:
//   - the whole-model LoRA gradient (all 7 modules, packed documents, -100 labels) within 1e-3,
//     through merged weights (the default for stories260K) and through the factored LoRA;
//   - a few AdamW steps through the real training loop: per-step loss within 1e-4 and the final
//     adapter's change within 1e-3 (relative Frobenius norm) — cpt with -100 labels + clipping +
//     accumulation, dpo, orpo.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { LocalDirSource } from '../../engine/model/source.ts';
import { GpuModel } from '../../engine/forward/gpu-model.ts';
import { LORA_MODULES, type LoraModule } from '../../engine/lora/hook.ts';
import type { LoraPair } from '../../engine/lora/peft.ts';
import { scalingFor, moduleDims } from '../../engine/lora/peft.ts';
import type { ModelConfig } from '../../engine/model/config.ts';
import { loadReferenceModel } from '../../reference/load.ts';
import type { RefWeights } from '../../reference/llama.ts';
import { lossAndGrad, trainRun, type RefBatch, type RefLoraParams, type RefRow } from '../../reference/train.ts';
import { STORIES_DIR } from '../../tests/fixtures/stories.ts';
import { Rng } from '../../shaders/lib/random.ts';
import { GpuTrainBackend, dropoutSeedFor } from './gpu-backend.ts';
import { dropoutKeepRef } from '../../shaders/dropout/dropout.ref.ts';
import { validateTrainConfig, type TrainConfig } from './config.ts';
import { microBatch, train, microStep } from './trainer.ts';
import { MemoryIO } from './io.ts';
import type { Sequence, TrainItems } from './data.ts';

let rt: Runtime;
let model: GpuModel;
let ref: { config: ModelConfig; weights: RefWeights };
beforeAll(async () => {
  rt = await Runtime.create();
  model = await GpuModel.load(rt, new LocalDirSource(STORIES_DIR));
  ref = await loadReferenceModel(STORIES_DIR);
}, 120_000);
afterAll(() => {
  model?.destroy();
});

const R = 4;
function randomAdapter(c: ModelConfig, modules: readonly LoraModule[], seed: number, std = 0.05): Map<string, LoraPair> {
  const rng = new Rng(seed);
  const out = new Map<string, LoraPair>();
  for (let l = 0; l < c.numLayers; l++) for (const m of modules) {
    const { inDim, outDim } = moduleDims(c, m);
    out.set(`${l}.${m}`, { A: rng.normalF32(R * inDim, std * 2), B: rng.normalF32(outDim * R, std) });
  }
  return out;
}
const toRef = (w: Map<string, LoraPair>, scaling: number): RefLoraParams => ({
  r: R, scaling, pairs: new Map([...w].map(([k, p]) => [k, { A: Float64Array.from(p.A), B: Float64Array.from(p.B) }])),
});
const relFro = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) { d += (a[i]! - b[i]!) ** 2; n += b[i]! ** 2; }
  return Math.sqrt(d / Math.max(n, 1e-30));
};

function rowOf(rng: Rng, T: number, V: number, ignore: number, docStarts: number[] = []): Sequence {
  const tokens = [1, ...rng.ints(T - 1, V - 3).map((t) => t + 3)];
  const labels = tokens.map((t, i) => (i < ignore ? -100 : t));
  for (const s of docStarts) { tokens[s] = 1; labels[s] = -100; }
  return { tokens, labels, docStarts: [0, ...docStarts] };
}
const refRow = (s: Sequence): RefRow => ({ tokens: s.tokens, labels: s.labels, docStarts: s.docStarts });

describe('WebGPU trainer vs float64 reference (stories260K)', () => {
  for (const merged of [true, false]) it(`whole-model LoRA gradient, all 7 modules, packed documents and -100 labels, within 1e-3 (${merged ? 'merged W + s·B·A' : 'factored LoRA'} path)`, async () => {
    const c = model.config;
    const init = randomAdapter(c, LORA_MODULES, 7);
    const scaling = scalingFor(8, R, false);
    const be = new GpuTrainBackend(rt, model, { r: R, alpha: 8, useRslora: false, scaling, modules: [...LORA_MODULES], dropout: 0 }, init, { merged });
    try {
      const rng = new Rng(5);
      const rows = [rowOf(rng, 21, c.vocabSize, 3, [9, 15]), rowOf(rng, 13, c.vocabSize, 0)];
      const obj = await microStep(be, validateTrainConfig({ base_model: 'x', method: 'cpt', datasets: [{ path: 'x' }] }), { kind: 'lm', rows }, 1);
      const want = lossAndGrad(ref.weights, ref.config, toRef(init, scaling), { kind: 'lm', rows: rows.map(refRow) });
      expect(Math.abs(obj.loss - want.loss)).toBeLessThan(1e-4);
      const got = await be.readGrads();
      let worst = 0, num = 0, den = 0;
      for (const [k, g] of want.grads) {
        const gg = got.get(k)!;
        for (const ab of ['A', 'B'] as const) {
          worst = Math.max(worst, relFro(gg[ab], g[ab]));
          for (let i = 0; i < g[ab].length; i++) { num += (gg[ab][i]! - g[ab][i]!) ** 2; den += g[ab][i]! ** 2; }
        }
      }
      expect(want.grads.size).toBe(c.numLayers * 7);
      expect(Math.sqrt(num / den)).toBeLessThan(1e-3);
      expect(worst).toBeLessThan(1e-3);
    } finally {
      be.destroy();
    }
  }, 120_000);

  it('the merged path refuses lora_dropout', () => {
    const c = model.config;
    expect(() => new GpuTrainBackend(rt, model, { r: R, alpha: 8, useRslora: false, scaling: 2, modules: ['q_proj'], dropout: 0.1 }, randomAdapter(c, ['q_proj'], 1), { merged: true })).toThrow(/lora_dropout/);
  });

  it('lora_dropout: the gradient with the kernel\'s masks = float64 with the same masks, within 1e-3', async () => {
    const c = model.config;
    const mods: LoraModule[] = ['q_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'];
    const init = randomAdapter(c, mods, 9);
    const scaling = scalingFor(8, R, false);
    const p = 0.3, seed = 4242;
    const be = new GpuTrainBackend(rt, model, { r: R, alpha: 8, useRslora: false, scaling, modules: mods, dropout: p }, init);
    try {
      const rng = new Rng(8);
      const rows = [rowOf(rng, 12, c.vocabSize, 2, [6]), rowOf(rng, 9, c.vocabSize, 0)];
      const cfg = validateTrainConfig({ base_model: 'x', method: 'cpt', datasets: [{ path: 'x' }], lora_dropout: p });
      const obj = await microStep(be, cfg, { kind: 'lm', rows }, 1, seed);
      const refRows = [{ ...refRow(rows[0]!), tokenOffset: 0 }, { ...refRow(rows[1]!), tokenOffset: rows[0]!.tokens.length }];
      const keep = (key: string, n: number, offset: number) => {
        const [l, m] = key.split('.') as [string, LoraModule];
        return dropoutKeepRef(n, p, dropoutSeedFor(seed, Number(l), m), offset);
      };
      const want = lossAndGrad(ref.weights, ref.config, toRef(init, scaling), { kind: 'lm', rows: refRows }, { p, keep });
      const noDrop = lossAndGrad(ref.weights, ref.config, toRef(init, scaling), { kind: 'lm', rows: refRows });
      expect(Math.abs(want.loss - noDrop.loss)).toBeGreaterThan(1e-4); // the masks matter
      expect(Math.abs(obj.loss - want.loss)).toBeLessThan(1e-4);
      const got = await be.readGrads();
      let num = 0, den = 0;
      for (const [k, g] of want.grads) for (const ab of ['A', 'B'] as const) g[ab].forEach((v, i) => { num += (got.get(k)![ab][i]! - v) ** 2; den += v * v; });
      expect(Math.sqrt(num / den)).toBeLessThan(1e-3);
    } finally {
      be.destroy();
    }
  }, 120_000);

  const cases: Array<{ name: string; cfg: Partial<TrainConfig>; items: (rng: Rng, V: number) => TrainItems; modules: LoraModule[] }> = [
    {
      name: 'cpt with -100 labels, clipping and accumulation',
      cfg: { method: 'cpt', max_grad_norm: 0.05, gradient_accumulation_steps: 2, micro_batch_size: 1, lr_scheduler: 'linear', warmup_steps: 1, learning_rate: 5e-3, weight_decay: 0.01 },
      items: (rng, V) => ({ kind: 'lm', items: [rowOf(rng, 17, V, 4, [8]), rowOf(rng, 12, V, 2), rowOf(rng, 15, V, 0, [6]), rowOf(rng, 9, V, 3), rowOf(rng, 11, V, 1), rowOf(rng, 14, V, 5)] }),
      modules: [...LORA_MODULES],
    },
    {
      name: 'dpo',
      cfg: { method: 'dpo', dpo_beta: 0.5, micro_batch_size: 2, learning_rate: 1e-2, lr_scheduler: 'cosine', max_grad_norm: 1 },
      items: (rng, V) => ({ kind: 'pref', items: Array.from({ length: 6 }, () => { const p = rowOf(rng, 6, V, 6); const c = rowOf(rng, 5, V, 0).tokens; const r = rowOf(rng, 4, V, 0).tokens; return { chosen: { tokens: [...p.tokens, ...c], labels: [...p.labels, ...c], docStarts: [0] }, rejected: { tokens: [...p.tokens, ...r], labels: [...p.labels, ...r], docStarts: [0] } }; }) }),
      modules: ['q_proj', 'v_proj', 'o_proj', 'down_proj'],
    },
    {
      // the reference = the starting adapter, frozen (log-probs precomputed before step 1), plus rpo_alpha's NLL of chosen
      name: 'dpo, rl_adapter_ref_model, rpo_alpha',
      cfg: { method: 'dpo', dpo_beta: 0.5, micro_batch_size: 2, learning_rate: 1e-2, lr_scheduler: 'cosine', max_grad_norm: 1, rl_adapter_ref_model: true, rpo_alpha: 0.5 },
      items: (rng, V) => ({ kind: 'pref', items: Array.from({ length: 5 }, () => { const p = rowOf(rng, 4, V, 4); const c = rowOf(rng, 6, V, 0).tokens; const r = rowOf(rng, 3, V, 0).tokens; return { chosen: { tokens: [...p.tokens, ...c], labels: [...p.labels, ...c], docStarts: [0] }, rejected: { tokens: [...p.tokens, ...r], labels: [...p.labels, ...r], docStarts: [0] } }; }) }),
      modules: ['q_proj', 'k_proj', 'up_proj', 'down_proj'],
    },
    {
      name: 'dpo, precompute_ref_log_probs (reference = the base)',
      cfg: { method: 'dpo', dpo_beta: 0.3, micro_batch_size: 2, gradient_accumulation_steps: 2, learning_rate: 1e-2, lr_scheduler: 'constant', max_grad_norm: 0, precompute_ref_log_probs: true },
      items: (rng, V) => ({ kind: 'pref', items: Array.from({ length: 7 }, () => { const p = rowOf(rng, 5, V, 5); const c = rowOf(rng, 4, V, 0).tokens; const r = rowOf(rng, 5, V, 0).tokens; return { chosen: { tokens: [...p.tokens, ...c], labels: [...p.labels, ...c], docStarts: [0] }, rejected: { tokens: [...p.tokens, ...r], labels: [...p.labels, ...r], docStarts: [0] } }; }) }),
      modules: ['v_proj', 'o_proj', 'gate_proj'],
    },
    {
      name: 'orpo',
      cfg: { method: 'orpo', orpo_alpha: 0.2, micro_batch_size: 2, learning_rate: 1e-2, lr_scheduler: 'constant', max_grad_norm: 0 },
      items: (rng, V) => ({ kind: 'pref', items: Array.from({ length: 6 }, () => { const p = rowOf(rng, 5, V, 5); const c = rowOf(rng, 6, V, 0).tokens; const r = rowOf(rng, 3, V, 0).tokens; return { chosen: { tokens: [...p.tokens, ...c], labels: [...p.labels, ...c], docStarts: [0] }, rejected: { tokens: [...p.tokens, ...r], labels: [...p.labels, ...r], docStarts: [0] } }; }) }),
      modules: ['k_proj', 'gate_proj', 'up_proj'],
    },
  ];
  for (const tc of cases) {
    it(`3 AdamW steps track the float64 run: ${tc.name}`, async () => {
      const c = model.config;
      const cfg = validateTrainConfig({ base_model: 'x', datasets: [{ path: 'x' }], max_steps: 3, shuffle: false, lora_r: R, lora_alpha: 8, lora_target_modules: tc.modules, ...tc.cfg });
      const items = tc.items(new Rng(11), c.vocabSize);
      const init = randomAdapter(c, tc.modules, 3);
      const scaling = scalingFor(8, R, false);
      const be = new GpuTrainBackend(rt, model, { r: R, alpha: 8, useRslora: false, scaling, modules: tc.modules, dropout: 0 }, init);
      try {
        const steps: Array<{ loss: number; gradNorm: number }> = [];
        await train({ config: cfg, backend: be, data: { train: items }, io: new MemoryIO(), writeOutputs: false, onStep: (s) => steps.push(s) });
        const accum = cfg.gradient_accumulation_steps;
        const refSteps: RefBatch[][] = [0, 1, 2].map((k) => Array.from({ length: accum }, (_, a) => {
          const b = microBatch(items, cfg, k * accum + a).batch;
          if (b.kind === 'lm') return { kind: 'lm', rows: b.rows.map(refRow) };
          const pairs = b.pairs.map((p) => ({ chosen: refRow(p.chosen), rejected: refRow(p.rejected) }));
          return cfg.method === 'dpo' ? { kind: 'dpo', beta: cfg.dpo_beta, pairs, refLora: cfg.rl_adapter_ref_model ? toRef(init, scaling) : undefined, rpoAlpha: cfg.rpo_alpha } : { kind: 'orpo', alpha: cfg.orpo_alpha, pairs };
        }));
        const lora = toRef(init, scaling);
        if (cfg.rl_adapter_ref_model && !cfg.rpo_alpha) expect(Math.abs(steps[0]!.loss - Math.LN2)).toBeLessThan(1e-6);
        const want = trainRun(ref.weights, ref.config, lora, refSteps, {
          lr: cfg.learning_rate, beta1: cfg.adam_beta1, beta2: cfg.adam_beta2, eps: cfg.adam_epsilon, weightDecay: cfg.weight_decay,
          maxGradNorm: cfg.max_grad_norm, scheduler: cfg.lr_scheduler === 'constant_with_warmup' ? 'constant' : cfg.lr_scheduler, warmupSteps: cfg.warmup_steps,
        });
        expect(steps.length).toBe(3);
        steps.forEach((s, i) => {
          expect(Math.abs(s.loss - want[i]!.loss)).toBeLessThan(1e-4);
          expect(Math.abs(s.gradNorm - want[i]!.gradNorm) / want[i]!.gradNorm).toBeLessThan(1e-3);
        });
        if (tc.cfg.max_grad_norm) expect(want.some((w) => w.gradNorm > tc.cfg.max_grad_norm!)).toBe(true); // clipping was active
        const got = await be.readAdapter();
        let num = 0, den = 0;
        for (const [k, p] of lora.pairs) {
          const g = got.get(k)!, i0 = init.get(k)!;
          for (const ab of ['A', 'B'] as const) for (let i = 0; i < p[ab].length; i++) {
            const dRef = p[ab][i]! - i0[ab][i]!, dGpu = g[ab][i]! - i0[ab][i]!;
            num += (dGpu - dRef) ** 2;
            den += dRef ** 2;
          }
        }
        expect(den).toBeGreaterThan(0);
        expect(Math.sqrt(num / den)).toBeLessThan(1e-3);
      } finally {
        be.destroy();
      }
    }, 180_000);
  }
});
