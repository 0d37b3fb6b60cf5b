// GPU forward vs the float64 reference (reference/llama.ts): full-sequence logits, prefill +
// decode through the paged KV cache, and a mixed batch of several sequences in one step.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { PagedKvCache } from '../kv/paged-cache.ts';
import { LocalDirSource, MemorySource } from '../model/source.ts';
import { GpuModel } from './gpu-model.ts';
import { GpuStepRunner } from './runner.ts';
import { forward as refForward, type RefWeights } from '../../reference/llama.ts';
import { loadReferenceModel } from '../../reference/load.ts';
import { presetConfig, randomModelFiles, randomRefWeights, type PresetName } from '../../tests/helpers/random-model.ts';
import { STORIES_DIR, STORIES_FIRST_11, STORIES_PROMPT } from '../../tests/fixtures/stories.ts';
import type { ModelConfig } from '../model/config.ts';
import type { SampleParams } from '../../shaders/sample/sample.ts';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt?.destroyAll());

/** max |gpu - ref| / max |ref| over a whole tensor. */
function relErr(gpu: ArrayLike<number>, ref: ArrayLike<number>): number {
  expect(gpu.length).toBe(ref.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(gpu[i]! - ref[i]!);
    if (!(e <= d)) d = Number.isNaN(e) ? Infinity : e;
    m = Math.max(m, Math.abs(ref[i]!));
  }
  return d / Math.max(m, 1e-30);
}

function tokensFor(n: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % vocab;
  });
}

const GREEDY: SampleParams = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0, step: 0 };

function setup(model: GpuModel, numBlocks = 64, blockSize = 4) {
  const c = model.config;
  const cache = PagedKvCache.create(rt, { numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, numBlocks, blockSize });
  return { cache, runner: new GpuStepRunner(model, cache) };
}

async function checkModel(model: GpuModel, weights: RefWeights, config: ModelConfig, T: number, seed: number, bound = 1e-4) {
  const V = config.vocabSize;
  const toks = tokensFor(T, V, seed);
  const ref = refForward(weights, config, toks).data;
  const { cache, runner } = setup(model);
  try {
    // (1) the whole sequence in one step, logits at every position
    cache.allocateOrThrow(1, T);
    const [r] = await runner.runStep({ segments: [{ seqId: 1, tokens: toks, startPos: 0, adapter: null, sample: null, history: toks }] }, { allLogits: true });
    expect(r!.logits!.length).toBe(T * V);
    const e1 = relErr(r!.logits!, ref);
    expect(e1, `full-sequence logits rel err ${e1}`).toBeLessThan(bound);

    // (2) prefill a prefix in two chunks, then decode one token at a time (the KV cache path),
    //     and sequence 3 prefilled in the same steps as sequence 2's decodes
    const P = Math.max(3, T - 4);
    cache.allocateOrThrow(2, 2);
    await runner.runStep({ segments: [{ seqId: 2, tokens: toks.slice(0, 2), startPos: 0, adapter: null, sample: null, history: toks }] });
    cache.allocateOrThrow(2, P - 2);
    const [pre] = await runner.runStep({ segments: [{ seqId: 2, tokens: toks.slice(2, P), startPos: 2, adapter: null, sample: GREEDY, history: toks.slice(0, P), wantLogits: true }] });
    expect(relErr(pre!.logits!, ref.subarray((P - 1) * V, P * V))).toBeLessThan(bound);
    for (let p = P; p < T; p++) {
      cache.allocateOrThrow(2, 1);
      const segs = [{ seqId: 2, tokens: [toks[p]!], startPos: p, adapter: null, sample: GREEDY, history: toks.slice(0, p + 1), wantLogits: true }];
      const other = p === P ? [{ seqId: 3, tokens: toks.slice(0, 3), startPos: 0, adapter: null, sample: GREEDY, history: toks.slice(0, 3), wantLogits: true }] : [];
      if (other.length) cache.allocateOrThrow(3, 3);
      const res = await runner.runStep({ segments: [...other, ...segs] });
      const mine = res.find((x) => x.seqId === 2)!;
      const e = relErr(mine.logits!, ref.subarray(p * V, (p + 1) * V));
      expect(e, `decode at position ${p}: rel err ${e}`).toBeLessThan(bound);
      // greedy sampling = argmax of the logits
      let best = 0;
      for (let i = 1; i < V; i++) if (mine.logits![i]! > mine.logits![best]!) best = i;
      expect(mine.token).toBe(best);
      if (other.length) {
        const o = res.find((x) => x.seqId === 3)!;
        expect(relErr(o.logits!, ref.subarray(2 * V, 3 * V))).toBeLessThan(bound);
      }
    }
  } finally {
    cache.destroy();
  }
}

describe('GPU forward vs float64 reference', () => {
  it('stories260K: logits, and greedy tokens = llama2.c', async () => {
    const model = await GpuModel.load(rt, new LocalDirSource(STORIES_DIR));
    try {
      const { config, weights } = await loadReferenceModel(STORIES_DIR);
      await checkModel(model, weights, config, 12, 7);
      // greedy decode through the runner
      const { cache, runner } = setup(model);
      try {
        const seq = [...STORIES_PROMPT];
        const out: number[] = [];
        cache.allocateOrThrow(9, seq.length);
        let [r] = await runner.runStep({ segments: [{ seqId: 9, tokens: seq, startPos: 0, adapter: null, sample: GREEDY, history: seq }] });
        while (out.length < STORIES_FIRST_11.length) {
          const t = r!.token!;
          out.push(t);
          seq.push(t);
          cache.allocateOrThrow(9, 1);
          [r] = await runner.runStep({ segments: [{ seqId: 9, tokens: [t], startPos: seq.length - 1, adapter: null, sample: { ...GREEDY, step: out.length }, history: seq }] });
        }
        expect(out).toEqual(STORIES_FIRST_11);
        // steady state: more decode steps create no pipelines and no buffers (pool reuse only)
        const before = rt.stats();
        for (let i = 0; i < 4; i++) {
          const t = r!.token!;
          seq.push(t);
          cache.allocateOrThrow(9, 1);
          [r] = await runner.runStep({ segments: [{ seqId: 9, tokens: [t], startPos: seq.length - 1, adapter: null, sample: { ...GREEDY, step: seq.length }, history: seq }] });
        }
        const after = rt.stats();
        expect(after.pipelines).toBe(before.pipelines);
        expect(after.liveBuffers).toBe(before.liveBuffers);
        expect(after.allocatedBytes).toBe(before.allocatedBytes);
        // ... and no bind groups: every dispatch is served from the runtime's bind-group cache
        expect(after.bindGroupsCreated).toBe(before.bindGroupsCreated);
        expect(after.bindGroupHits - before.bindGroupHits).toBe(after.dispatches - before.dispatches);
      } finally {
        cache.destroy();
      }
    } finally {
      model.destroy();
    }
  });

  const presets: Array<[PresetName, string]> = [
    ['tiny-llama', 'GQA 2, tied'],
    ['tiny-llama-mha', 'GQA 1 (MHA), untied head'],
    ['tiny-llama3', 'GQA 4, untied, Llama-3 rope scaling'],
    ['tiny-qwen2', 'Qwen2 q/k/v bias, rope_theta 1e6'],
    ['tiny-mistral', 'sliding window 4, GQA 4'],
  ];
  for (const [name, what] of presets) {
    it(`${name} (${what})`, async () => {
      const config = presetConfig(name);
      const model = await GpuModel.load(rt, new MemorySource(randomModelFiles(config, { seed: 5 }), name));
      try {
        await checkModel(model, randomRefWeights(config, { seed: 5 }), config, 11, 3);
      } finally {
        model.destroy();
      }
    });
  }

  it('weights split into several parts give the same logits', async () => {
    const config = presetConfig('tiny-qwen2');
    const model = await GpuModel.load(rt, new MemorySource(randomModelFiles(config, { seed: 2 })), { maxPartBytes: 4096 });
    try {
      expect(model.embed.parts.length).toBeGreaterThan(1);
      await checkModel(model, randomRefWeights(config, { seed: 2 }), config, 6, 1);
    } finally {
      model.destroy();
    }
  });
});

describe('GPU forward with LoRA adapters (engine/lora runtime through the hook)', () => {
  it('mixed batch: adapter a, base, adapter b rows in one step = merged-weight references', async () => {
    const {createLoraSupport } = await import('../lora/index.ts');
    const { randomLoraAdapter } = await import('../../tests/helpers/random-lora.ts');
    const { toRefAdapter } = await import('../../reference/lora.ts');
    const { mergeLora } = await import('../../reference/llama.ts');
    const config = presetConfig('tiny-qwen2');
    const model = await GpuModel.load(rt, new MemorySource(randomModelFiles(config, { seed: 4 })));
    const a = randomLoraAdapter(config, { name: 'a', r: 4, seed: 11, std: 0.2 });
    const b = randomLoraAdapter(config, { name: 'b', r: 8, seed: 12, std: 0.2, targetModules: ['q_proj', 'v_proj', 'gate_proj', 'down_proj'] });
    const lora = await createLoraSupport(rt, config, { adapters: { a, b }, store: null });
    model.attachLora(lora.runtime);
    const { cache, runner } = setup(model);
    try {
      const base = randomRefWeights(config, { seed: 4 });
      const V = config.vocabSize;
      const toks = tokensFor(7, V, 9);
      const refs = {
        a: refForward(mergeLora(base, toRefAdapter(a)), config, toks).data,
        base: refForward(base, config, toks).data,
        b: refForward(mergeLora(base, toRefAdapter(b)), config, toks).data,
      };
      // the adapters must change the output measurably, or this test could not fail
      expect(relErr(refs.a, refs.base)).toBeGreaterThan(1e-2);
      expect(relErr(refs.b, refs.base)).toBeGreaterThan(1e-2);
      const names = ['a', null, 'b'] as const;
      names.forEach((_, i) => cache.allocateOrThrow(20 + i, 5));
      const r1 = await runner.runStep({
        segments: names.map((ad, i) => ({ seqId: 20 + i, tokens: toks.slice(0, 5), startPos: 0, adapter: ad, sample: GREEDY, history: toks, wantLogits: true })),
      });
      for (let p = 5; p < 7; p++) {
        names.forEach((_, i) => cache.allocateOrThrow(20 + i, 1));
        const r = await runner.runStep({
          segments: names.map((ad, i) => ({ seqId: 20 + i, tokens: [toks[p]!], startPos: p, adapter: ad, sample: GREEDY, history: toks, wantLogits: true })),
        });
        names.forEach((ad, i) => {
          const ref = refs[ad ?? 'base'];
          const e = relErr(r[i]!.logits!, ref.subarray(p * V, (p + 1) * V));
          expect(e, `${ad ?? 'base'} at position ${p}: rel err ${e}`).toBeLessThan(1e-4);
        });
      }
      names.forEach((ad, i) => expect(relErr(r1[i]!.logits!, refs[ad ?? 'base'].subarray(4 * V, 5 * V))).toBeLessThan(1e-4));
    } finally {
      model.attachLora(null);
      lora.destroy();
      cache.destroy();
      model.destroy();
    }
  });
});

describe('GPU sampling inside the step', () => {
  it('sampled token = shaders/sample.ref on the step logits (temperature, top-k, top-p, penalty, seeds), rows of one batch independent', async () => {
    const { sampleRef } = await import('../../shaders/sample/sample.ref.ts');
    const model = await GpuModel.load(rt, new LocalDirSource(STORIES_DIR));
    const { cache, runner } = setup(model);
    try {
      const V = model.config.vocabSize;
      const prompt = STORIES_PROMPT;
      const settings: SampleParams[] = [
        { temperature: 1, seed: 1, step: 0 },
        { temperature: 0.7, topK: 20, seed: 2, step: 3 },
        { temperature: 1.3, topP: 0.9, seed: 3, step: 1 },
        { temperature: 0.9, topK: 50, topP: 0.8, repetitionPenalty: 1.3, seed: 4, step: 2 },
        { temperature: 0, repetitionPenalty: 1.5, seed: 0, step: 0 },
      ];
      let checked = 0;
      for (let round = 0; round < 2; round++) {
        settings.forEach((_, i) => cache.allocateOrThrow(100 + i, prompt.length));
        const res = await runner.runStep({
          segments: settings.map((sp, i) => ({
            seqId: 100 + i, tokens: prompt, startPos: 0, adapter: null, history: prompt, wantLogits: true,
            sample: { ...sp, seed: (sp.seed ?? 0) + 17 * round },
          })),
        });
        res.forEach((r, i) => {
          const sp = { ...settings[i]!, seed: (settings[i]!.seed ?? 0) + 17 * round };
          const ref = sampleRef(r.logits!, V, sp, prompt);
          if (ref.margin > 1e-4) {
            expect(r.token, `row ${i} round ${round}`).toBe(ref.token);
            checked++;
          }
        });
        settings.forEach((_, i) => cache.free(100 + i));
      }
      expect(checked).toBeGreaterThan(7);
    } finally {
      cache.destroy();
      model.destroy();
    }
  });
});

describe('logits for some rows only (per-request logprobs)', () => {
  it('a step where only some segments want logits returns exactly those rows = the all-logits rows, same sampled tokens', async () => {
    const model = await GpuModel.load(rt, new LocalDirSource(STORIES_DIR));
    const { cache, runner } = setup(model);
    try {
      const V = model.config.vocabSize;
      const prompts = [STORIES_PROMPT, [1, 403, 407], [1, 261, 378, 403, 407, 261], [1, 500]];
      const want = [false, true, false, true];
      const run = async (mode: 'all' | 'some') => {
        prompts.forEach((p, i) => cache.allocateOrThrow(200 + i, p.length));
        const res = await runner.runStep({
          segments: prompts.map((p, i) => ({ seqId: 200 + i, tokens: p, startPos: 0, adapter: null, history: p, sample: GREEDY, wantLogits: mode === 'all' || want[i] })),
        });
        prompts.forEach((_, i) => cache.free(200 + i));
        return res;
      };
      const all = await run('all');
      const some = await run('some');
      some.forEach((r, i) => {
        expect(r.token).toBe(all[i]!.token);
        if (want[i]) {
          expect(r.logits!.length).toBe(V);
          expect(Array.from(r.logits!)).toEqual(Array.from(all[i]!.logits!));
        } else expect(r.logits).toBeUndefined();
      });
    } finally {
      cache.destroy();
      model.destroy();
    }
  });
});

describe('f16 / q8 weight formats', () => {
  for (const [name, format] of [['tiny-qwen2', 'f16'], ['tiny-llama3', 'q8'], ['tiny-qwen2', 'q8']] as const) {
    it(`${name} ${format}: logits = reference with the dequantized weights`, async () => {
      const { dequantized } = await import('../../shaders/matmul/weights.ts');
      const config = presetConfig(name);
      const model = await GpuModel.load(rt, new MemorySource(randomModelFiles(config, { seed: 8 })), { weightFormat: format });
      try {
        const orig = randomRefWeights(config, { seed: 8 });
        // What the GPU multiplies by: every matrix (embedding and lm_head included) through the format.
        const deq: RefWeights = new Map();
        for (const [n, t] of orig) {
          if (t.shape.length !== 2) deq.set(n, t);
          else {
            const [N, K] = t.shape as [number, number];
            deq.set(n, { shape: t.shape, data: Float64Array.from(dequantized(Float32Array.from(t.data), N, K, format)) });
          }
        }
        await checkModel(model, deq, config, 7, 4);
        // and the quantization error itself is visible against the original weights
        const V = config.vocabSize;
        const toks = tokensFor(7, V, 4);
        expect(relErr(refForward(deq, config, toks).data, refForward(orig, config, toks).data)).toBeGreaterThan(1e-5);
      } finally {
        model.destroy();
      }
    });
  }
});
