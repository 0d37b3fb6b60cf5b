import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelConfig, toHfConfigJson } from './config.ts';
import { STORIES_DIR } from '../../tests/fixtures/stories.ts';

const stories = () => JSON.parse(readFileSync(join(STORIES_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;

describe('parseModelConfig', () => {
  it('parses stories260K', () => {
    const c = parseModelConfig(stories());
    expect(c).toEqual({
      modelType: 'llama', hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8,
      vocabSize: 512, maxPositions: 512, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null, tieWordEmbeddings: true,
      qkvBias: false, bosTokenId: 1, eosTokenIds: [2], slidingWindow: null,
    });
  });

  it('parses a Llama 3.2 style config with llama3 rope scaling and eos list', () => {
    const c = parseModelConfig({
      model_type: 'llama', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32,
      num_key_value_heads: 8, vocab_size: 128256, max_position_embeddings: 131072, rms_norm_eps: 1e-5, rope_theta: 500000,
      rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
      tie_word_embeddings: true, bos_token_id: 128000, eos_token_id: [128001, 128008, 128009],
    });
    expect(c.headDim).toBe(64);
    expect(c.ropeScaling).toEqual({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
    expect(c.eosTokenIds).toEqual([128001, 128008, 128009]);
  });

  it('qwen2 always has qkv bias; sliding window only with use_sliding_window; mistral window', () => {
    const q = { model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, sliding_window: 32768, use_sliding_window: false, tie_word_embeddings: true, eos_token_id: 151643, bos_token_id: 151643 };
    const c = parseModelConfig(q);
    expect(c.qkvBias).toBe(true);
    expect(c.headDim).toBe(64);
    expect(c.slidingWindow).toBeNull();
    expect(parseModelConfig({ ...q, use_sliding_window: true, max_window_layers: 0 }).slidingWindow).toBe(32768);
    // HF: window only on layers >= max_window_layers (default 28) — none of 24 layers here
    expect(parseModelConfig({ ...q, use_sliding_window: true }).slidingWindow).toBeNull();
    expect(() => parseModelConfig({ ...q, use_sliding_window: true, max_window_layers: 21 })).toThrow(
      /^config\.json: max_window_layers \(21\) < num_hidden_layers \(24\) with use_sliding_window: a per-layer sliding window is not supported$/,
    );
    const m = parseModelConfig({ ...q, model_type: 'mistral', use_sliding_window: undefined, sliding_window: 4096 });
    expect(m.qkvBias).toBe(false);
    expect(m.slidingWindow).toBe(4096);
  });

  it('accepts rope_scaling linear / default and the old "type" key', () => {
    expect(parseModelConfig({ ...stories(), rope_scaling: { type: 'linear', factor: 2 } }).ropeScaling).toEqual({ type: 'linear', factor: 2 });
    expect(parseModelConfig({ ...stories(), rope_scaling: { rope_type: 'default' } }).ropeScaling).toBeNull();
  });

  it('round-trips through toHfConfigJson', () => {
    const c = parseModelConfig({ ...stories(), rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } });
    expect(parseModelConfig(toHfConfigJson(c))).toEqual(c);
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['kv heads', { num_key_value_heads: 3 }, /^config\.json: num_key_value_heads \(3\) must divide num_attention_heads \(8\)$/],
    ['model_type', { model_type: 'gpt2' }, /^config\.json: unsupported model_type "gpt2"/],
    ['missing hidden_size', { hidden_size: undefined }, /^config\.json: hidden_size: Required/],
    ['negative', { intermediate_size: -4 }, /^config\.json: intermediate_size: .*greater than 0.*\(got -4\)/],
    ['string', { vocab_size: '512' }, /^config\.json: vocab_size: Expected number, received string/],
    ['rope type', { rope_scaling: { rope_type: 'yarn', factor: 4 } }, /rope_scaling type "yarn" is not supported/],
    ['llama3 incomplete', { rope_scaling: { rope_type: 'llama3', factor: 8 } }, /rope_scaling\.low_freq_factor is required/],
    ['attention_bias', { attention_bias: true }, /^config\.json: attention_bias: true is not supported for llama \(HF then also adds an o_proj bias/],
    ['act', { hidden_act: 'gelu' }, /hidden_act "gelu" is not supported/],
    ['eos range', { eos_token_id: 600 }, /eos_token_id 600 is outside vocab_size 512/],
    ['heads/hidden', { head_dim: undefined, num_attention_heads: 6, num_key_value_heads: 3 }, /num_attention_heads \(6\) must divide hidden_size \(64\)/],
  ];
  for (const [what, patch, re] of bad) {
    it(`rejects bad ${what}`, () => {
      expect(() => parseModelConfig({ ...stories(), ...patch })).toThrow(re);
    });
  }

  it('names the file given', () => {
    expect(() => parseModelConfig({ ...stories(), num_key_value_heads: 3 }, 'models/x/config.json')).toThrow(/^models\/x\/config\.json: num_key_value_heads/);
    expect(() => parseModelConfig('{nope', 'a/config.json')).toThrow(/^a\/config\.json: not valid JSON/);
  });
});
