import { describe, expect, it } from 'vitest';
import { applyRope, forward, linear, mergeLora, ropeInvFreq, type RefWeights } from './llama.ts';
import { mulberry32, Rng } from '../shaders/lib/random.ts';
import { presetConfig, randomRefWeights, TINY_PRESETS } from '../tests/helpers/random-model.ts';
import type { ModelConfig } from '../engine/model/config.ts';

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe('RoPE', () => {
  it('llama3 scaling: inverse frequencies match the HF _compute_llama3_parameters formula by hand', () => {
    // head_dim 12, theta 1e4 → inv_freq_i = 1e4^(-i/6); factor 8, low 1, high 4, original context 32:
    //   low_freq_wavelen = 32, high_freq_wavelen = 8, wavelen_i = 2π / inv_freq_i
    //   i=0: wavelen 6.283 < 8  → unchanged: 1
    //   i=1: wavelen 29.164 in [8, 32] → smooth = (32/29.164 - 1)/(4 - 1) = 0.0324153
    //        (1 - smooth)·f/8 + smooth·f = 0.2154435·(0.1209481 + 0.0324153) = 0.0330411
    //   i≥2: wavelen > 32 → f / 8: 0.0464159/8, 0.01/8, 0.00215443/8, 0.000464159/8
    const inv = ropeInvFreq(presetConfig('tiny-llama3'));
    const hand = [1, 0.03304105712196635, 0.005801986042015974, 0.00125, 0.00026930433625398553, 5.8019860420159716e-5];
    expect(maxAbsDiff(inv, hand)).toBeLessThan(1e-15);
    // the same config without scaling
    const plain = ropeInvFreq({ ...presetConfig('tiny-llama3'), ropeScaling: null });
    expect(maxAbsDiff(plain, [1, 0.2154434690031884, 0.046415888336127795, 0.01, 0.0021544346900318843, 0.00046415888336127773])).toBeLessThan(1e-15);
    expect(maxAbsDiff(ropeInvFreq({ headDim: 4, ropeTheta: 100, ropeScaling: { type: 'linear', factor: 4 } }), [0.25, 0.025])).toBeLessThan(1e-16);
  });

  it('rotate-half layout pairs (i, i + d/2); scores depend only on relative position', () => {
    const inv = ropeInvFreq({ headDim: 4, ropeTheta: 10000, ropeScaling: null });
    const x = Float64Array.from([1, 2, 3, 4]);
    applyRope(x, 1, 1, 4, inv, 1); // pos 1: angles [1, 0.01]
    expect(maxAbsDiff(x, [1 * Math.cos(1) - 3 * Math.sin(1), 2 * Math.cos(0.01) - 4 * Math.sin(0.01), 3 * Math.cos(1) + 1 * Math.sin(1), 4 * Math.cos(0.01) + 2 * Math.sin(0.01)])).toBeLessThan(1e-15);
    const rng = new Rng(5);
    const q = rng.normalF64(8);
    const k = rng.normalF64(8);
    const inv8 = ropeInvFreq({ headDim: 8, ropeTheta: 10000, ropeScaling: null });
    const dot = (m: number, n: number) => {
      const a = q.slice(), b = k.slice();
      applyRope(a, 1, 1, 8, inv8, m);
      applyRope(b, 1, 1, 8, inv8, n);
      return a.reduce((s, v, i) => s + v * b[i]!, 0);
    };
    expect(Math.abs(dot(7, 3) - dot(104, 100))).toBeLessThan(1e-12);
    expect(Math.abs(dot(7, 3) - dot(7, 4))).toBeGreaterThan(1e-3);
  });
});

/** Expand a GQA model to plain multi-head attention by repeating K/V heads (HF repeat_kv). */
function toMha(w: RefWeights, c: ModelConfig): [RefWeights, ModelConfig] {
  const out: RefWeights = new Map(w);
  const rep = c.numHeads / c.numKvHeads;
  const D = c.headDim;
  for (let l = 0; l < c.numLayers; l++) {
    for (const n of ['k_proj', 'v_proj']) {
      for (const kind of ['weight', 'bias']) {
        const name = `model.layers.${l}.self_attn.${n}.${kind}`;
        const t = w.get(name);
        if (!t) continue;
        const cols = kind === 'weight' ? c.hiddenSize : 1;
        const d = new Float64Array(c.numHeads * D * cols);
        for (let h = 0; h < c.numHeads; h++) d.set(t.data.subarray(Math.floor(h / rep) * D * cols, (Math.floor(h / rep) + 1) * D * cols), h * D * cols);
        out.set(name, { shape: kind === 'weight' ? [c.numHeads * D, c.hiddenSize] : [c.numHeads * D], data: d });
      }
    }
  }
  return [out, { ...c, numKvHeads: c.numHeads }];
}

describe('reference forward on random models', () => {
  for (const p of TINY_PRESETS) {
    it(`${p}: finite, spread-out logits; GQA equals MHA with repeated K/V heads`, () => {
      const c = presetConfig(p);
      const w = randomRefWeights(c, { seed: 11 });
      const toks = new Rng(3).ints(9, c.vocabSize);
      const logits = forward(w, c, toks);
      expect(logits.shape).toEqual([9, c.vocabSize]);
      let mn = Infinity, mx = -Infinity;
      for (const v of logits.data) { expect(Number.isFinite(v)).toBe(true); mn = Math.min(mn, v); mx = Math.max(mx, v); }
      expect(mx - mn).toBeGreaterThan(1);
      expect(mx - mn).toBeLessThan(100);
      if (c.numKvHeads !== c.numHeads) {
        const [mw, mc] = toMha(w, c);
        expect(maxAbsDiff(forward(mw, mc, toks).data, logits.data)).toBeLessThan(1e-12);
      }
    });
  }

  it('sliding window: no effect while T <= window, an effect beyond it', () => {
    const c = presetConfig('tiny-mistral'); // window 4
    const w = randomRefWeights(c, { seed: 2 });
    const toks = [5, 9, 13, 200, 77, 31, 8];
    const full = forward(w, { ...c, slidingWindow: null }, toks).data;
    const win = forward(w, c, toks).data;
    const V = c.vocabSize;
    expect(maxAbsDiff(full.subarray(0, 4 * V), win.subarray(0, 4 * V))).toBe(0);
    expect(maxAbsDiff(full.subarray(4 * V), win.subarray(4 * V))).toBeGreaterThan(1e-6);
  });

  it('qwen2 biases matter (a forward that ignores them would differ)', () => {
    const c = presetConfig('tiny-qwen2');
    const w = randomRefWeights(c, { seed: 4 });
    const z: RefWeights = new Map(w);
    for (const [n, t] of w) if (n.endsWith('.bias')) z.set(n, { shape: t.shape, data: new Float64Array(t.data.length) });
    expect(maxAbsDiff(forward(w, c, [1, 2, 3]).data, forward(z, c, [1, 2, 3]).data)).toBeGreaterThan(1e-3);
  });
});

describe('mergeLora', () => {
  it('W + s·B·A: merged linear equals x·Wᵀ + s·(x·Aᵀ)·Bᵀ', () => {
    const rng = new Rng(9);
    const out = 7, inp = 5, r = 3, s = 0.75;
    const W = rng.normalF64(out * inp), A = rng.normalF64(r * inp), B = rng.normalF64(out * r), x = rng.normalF64(2 * inp);
    const name = 'model.layers.0.self_attn.q_proj.weight';
    const merged = mergeLora(new Map([[name, { shape: [out, inp], data: W }]]), { scaling: s, layers: new Map([[name, { A, B, r }]]) });
    const y = linear(x, 2, inp, merged.get(name)!.data, out);
    const base = linear(x, 2, inp, W, out);
    const xa = linear(x, 2, inp, A, r);
    const xab = linear(xa, 2, r, B, out);
    expect(maxAbsDiff(y, base.map((v, i) => v + s * xab[i]!))).toBeLessThan(1e-12);
    expect(Array.from(W)).toEqual(Array.from(new Rng(9).normalF64(out * inp))); // base untouched
    expect(() => mergeLora(new Map([[name, { shape: [out, inp], data: W }]]), { scaling: 1, layers: new Map([[name, { A, B, r: 2 }]]) })).toThrow(/A has 15 values, expected r×in = 2×5/);
    expect(() => mergeLora(new Map(), { scaling: 1, layers: new Map([[name, { A, B, r }]]) })).toThrow(/not a base weight/);
  });
});

describe('PRNG', () => {
  it('mulberry32 is deterministic with known first outputs', () => {
    const g = mulberry32(1);
    // independent Python port of the canonical JS mulberry32; 2693262067 / 2^32 = 0.6270739405881613
    expect([g(), g(), g()]).toEqual([2693262067, 11749833, 2265367787]);
    const a = new Rng(42).normalF64(1000);
    expect(Array.from(a)).toEqual(Array.from(new Rng(42).normalF64(1000)));
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const std = Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length);
    expect(Math.abs(mean)).toBeLessThan(0.1);
    expect(Math.abs(std - 1)).toBeLessThan(0.1);
  });
});
