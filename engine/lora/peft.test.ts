import { describe, expect, it, beforeAll } from 'vitest';
import { mkdtemp, writeFile, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseModelConfig, type ModelConfig } from '../model/config.ts';
import { writeSafetensors } from '../model/safetensors.ts';
import { MemorySource } from '../model/source.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, encodePeftAdapter, loadPeftAdapter, loraKey, LoraAdapterError, moduleDims, peftTensorName, savePeftAdapter, adapterSpec } from './peft.ts';
import { STORIES_DIR } from '../../tests/fixtures/stories.ts';
import { randomLoraAdapter } from '../../tests/helpers/random-lora.ts';
import { toRefAdapter } from '../../reference/lora.ts';

let config: ModelConfig;
beforeAll(async () => {
  config = parseModelConfig(JSON.parse(await readFile(join(STORIES_DIR, 'config.json'), 'utf8')));
});

const mem = (files: Record<string, Uint8Array>) => new MemorySource(files, 'adapter');
const cfgBytes = (o: object) => new TextEncoder().encode(JSON.stringify(o));
const baseCfg = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'], bias: 'none' };

function qvTensors(r = 2, layers = [0], dims?: { q?: [number, number] }) {
  const t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const l of layers) {
    for (const m of ['q_proj', 'v_proj'] as const) {
      const { inDim, outDim } = moduleDims(config, m);
      const [o, i] = m === 'q_proj' && dims?.q ? dims.q : [outDim, inDim];
      t[peftTensorName(l, m, 'A')] = { dtype: 'F32', shape: [r, i], data: new Float32Array(r * i).fill(0.5) };
      t[peftTensorName(l, m, 'B')] = { dtype: 'F32', shape: [o, r], data: new Float32Array(o * r).fill(0.25) };
    }
  }
  return t;
}

async function expectError(p: Promise<unknown>, kind: string, re: RegExp) {
  const e = await p.then(() => null, (x) => x);
  expect(e, 'expected a LoraAdapterError').toBeInstanceOf(LoraAdapterError);
  expect((e as LoraAdapterError).kind).toBe(kind);
  expect((e as Error).message).toMatch(re);
}

describe('PEFT adapters', () => {
  it('round-trips through savePeftAdapter / loadPeftAdapter (directory), scaling alpha/r', async () => {
    const a = randomLoraAdapter(config, { name: 'x', r: 4, alpha: 8, seed: 3 });
    const dir = await mkdtemp(join(tmpdir(), 'peft-'));
    try {
      await savePeftAdapter(dir, adapterSpec(a));
      const b = await loadPeftAdapter(dir, config, 'x');
      expect(b.r).toBe(4);
      expect(b.scaling).toBe(2);
      expect(b.targetModules).toEqual(a.targetModules);
      expect(b.weights.size).toBe(config.numLayers * 7);
      for (const [k, p] of a.weights) {
        expect(Array.from(b.weights.get(k)!.A)).toEqual(Array.from(p.A));
        expect(Array.from(b.weights.get(k)!.B)).toEqual(Array.from(p.B));
      }
      expect(b.bytes).toBe(a.bytes);
      // the float64 oracle's view
      const ref = toRefAdapter(b);
      expect(ref.layers.get('model.layers.2.mlp.down_proj.weight')!.A.length).toBe(4 * config.intermediateSize);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('rsLoRA scaling alpha/sqrt(r); F16 / BF16 weights converted', async () => {
    const a = randomLoraAdapter(config, { name: 'x', r: 16, alpha: 8, useRslora: true, seed: 4, targetModules: ['k_proj'] });
    for (const dtype of ['F16', 'BF16'] as const) {
      const b = await loadPeftAdapter(mem(encodePeftAdapter({ ...adapterSpec(a), dtype })), config);
      expect(b.scaling).toBe(2);
      expect(b.targetModules).toEqual(['k_proj']);
      const A0 = a.weights.get(loraKey(0, 'k_proj'))!.A, A1 = b.weights.get(loraKey(0, 'k_proj'))!.A;
      const tol = dtype === 'F16' ? 1e-3 : 1e-2;
      for (let i = 0; i < A0.length; i++) expect(Math.abs(A1[i] - A0[i])).toBeLessThanOrEqual(tol * Math.abs(A0[i]) + 1e-7);
    }
  });

  it('accepts regex and all-linear target_modules, and adapter-named tensors (lora_A.default.weight)', async () => {
    const t = qvTensors();
    const renamed = Object.fromEntries(Object.entries(t).map(([k, v]) => [k.replace(/lora_(A|B)\.weight$/, 'lora_$1.default.weight'), v]));
    for (const target_modules of ['.*\\.(q_proj|v_proj)', 'all-linear']) {
      const a = await loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes({ ...baseCfg, target_modules }), [ADAPTER_WEIGHTS]: writeSafetensors(renamed) }), config);
      expect(a.targetModules).toEqual(['q_proj', 'v_proj']);
      expect(a.scaling).toBe(2);
    }
    await expectError(
      loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes({ ...baseCfg, target_modules: '.*\\.q_proj' }), [ADAPTER_WEIGHTS]: writeSafetensors(t) }), config),
      'config', /v_proj is not covered by target_modules/,
    );
  });

  it('rejects a wrong base model (shape mismatch, missing layer)', async () => {
    await expectError(
      loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes(baseCfg), [ADAPTER_WEIGHTS]: writeSafetensors(qvTensors(2, [0], { q: [96, 96] })) }), config),
      'shape', /q_proj.lora_A.weight.*shape \[2, 96\] does not fit the base model.*different base model/,
    );
    await expectError(
      loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes(baseCfg), [ADAPTER_WEIGHTS]: writeSafetensors(qvTensors(2, [7])) }), config),
      'shape', /layer 7 does not exist: the base model has 5 layers/,
    );
    await expectError(
      loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes({ ...baseCfg, r: 3 }), [ADAPTER_WEIGHTS]: writeSafetensors(qvTensors(2)) }), config),
      'shape', /does not match r = 3/,
    );
  });

  it('rejects unsupported options: modules_to_save, DoRA, bias, rank_pattern, embedding targets', async () => {
    const w = writeSafetensors(qvTensors());
    const cases: Array<[object, RegExp]> = [
      [{ modules_to_save: ['lm_head'] }, /modules_to_save/],
      [{ use_dora: true }, /DoRA/],
      [{ bias: 'lora_only' }, /bias "lora_only" is not supported/],
      [{ rank_pattern: { q_proj: 8 } }, /rank_pattern/],
      [{ target_modules: ['q_proj', 'embed_tokens'] }, /embed_tokens/],
      [{ peft_type: 'IA3' }, /peft_type "IA3"/],
    ];
    for (const [patch, re] of cases) {
      await expectError(loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes({ ...baseCfg, ...patch }), [ADAPTER_WEIGHTS]: w }), config), 'unsupported', re);
    }
    const dora = { ...qvTensors(), 'base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector': { dtype: 'F32' as const, shape: [64], data: new Float32Array(64) } };
    await expectError(loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes(baseCfg), [ADAPTER_WEIGHTS]: writeSafetensors(dora) }), config), 'unsupported', /DoRA/);
  });

  it('rejects corrupt or incomplete files with clear errors', async () => {
    const w = writeSafetensors(qvTensors());
    await expectError(loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes(baseCfg), [ADAPTER_WEIGHTS]: w.slice(0, w.length - 10) }), config), 'corrupt', /corrupt adapter weights.*truncated|trailing|past the end/);
    await expectError(loadPeftAdapter(mem({ [ADAPTER_CONFIG]: new TextEncoder().encode('{"r": 2,'), [ADAPTER_WEIGHTS]: w }), config), 'corrupt', /not valid JSON/);
    await expectError(loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes({ ...baseCfg, r: -1 }), [ADAPTER_WEIGHTS]: w }), config), 'config', /r: .*(greater than 0|positive)/i);
    await expectError(loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes({ ...baseCfg, lora_alpha: undefined }), [ADAPTER_WEIGHTS]: w }), config), 'config', /lora_alpha/);
    const t = qvTensors();
    delete t[peftTensorName(0, 'v_proj', 'B')];
    await expectError(loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes(baseCfg), [ADAPTER_WEIGHTS]: writeSafetensors(t) }), config), 'corrupt', /v_proj has lora_A but no lora_B/);
    await expectError(loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes(baseCfg), 'adapter_model.bin': new Uint8Array(8) }), config), 'missing', /adapter_model.bin/);
    await expectError(loadPeftAdapter(mem({}), config), 'missing', /adapter_config.json: not found/);
    const nan = qvTensors();
    nan[peftTensorName(0, 'q_proj', 'B')].data[3] = NaN;
    await expectError(loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes(baseCfg), [ADAPTER_WEIGHTS]: writeSafetensors(nan) }), config), 'corrupt', /not finite/);
  });

  it('accepts a full PEFT 0.19-style config (every key PEFT writes), rejects base-modifying inits', async () => {
    const full = {
      alora_invocation_tokens: null, alpha_pattern: {}, arrow_config: null, auto_mapping: null, base_model_name_or_path: 'stories260K',
      bias: 'none', corda_config: null, ensure_weight_tying: false, eva_config: null, exclude_modules: null, fan_in_fan_out: false,
      inference_mode: true, init_lora_weights: true, layer_replication: null, layers_pattern: null, layers_to_transform: null,
      loftq_config: {}, lora_alpha: 4.0, lora_bias: false, lora_dropout: 0.05, lora_ga_config: null, megatron_config: null,
      megatron_core: 'megatron.core', modules_to_save: null, peft_type: 'LORA', peft_version: '0.19.1', qalora_group_size: 16, r: 2,
      rank_pattern: {}, revision: null, runtime_config: { ephemeral_gpu_offload: false },
      target_modules: '(?:.*?(?:self_attn|mlp).*?\\.(?:q_proj|v_proj))', target_parameters: null, task_type: 'CAUSAL_LM',
      trainable_token_indices: null, use_bdlora: null, use_dora: false, use_qalora: false, use_rslora: false,
    };
    const w = writeSafetensors(qvTensors());
    const a = await loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes(full), [ADAPTER_WEIGHTS]: w }), config);
    expect(a.baseModel).toBe('stories260K');
    expect(a.targetModules).toEqual(['q_proj', 'v_proj']);
    for (const init of ['pissa', 'pissa_niter_4', 'olora', 'loftq', 'corda']) {
      await expectError(loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes({ ...full, init_lora_weights: init }), [ADAPTER_WEIGHTS]: w }), config), 'unsupported', /modifies the base model/);
    }
    await expectError(loadPeftAdapter(mem({ [ADAPTER_CONFIG]: cfgBytes({ ...full, alora_invocation_tokens: [1, 2] }), [ADAPTER_WEIGHTS]: w }), config), 'unsupported', /activated LoRA/);
  });

  it('reads a directory written by another tool (hand-built PEFT layout on disk)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'peft-'));
    try {
      await writeFile(join(dir, ADAPTER_CONFIG), JSON.stringify({ ...baseCfg, task_type: 'CAUSAL_LM', lora_dropout: 0.05, use_rslora: false, init_lora_weights: true, layers_to_transform: null, revision: null }));
      await writeFile(join(dir, ADAPTER_WEIGHTS), writeSafetensors(qvTensors(2, [0, 4]), { format: 'pt' }));
      const a = await loadPeftAdapter(dir, config);
      expect([...a.weights.keys()].sort()).toEqual(['0.q_proj', '0.v_proj', '4.q_proj', '4.v_proj']);
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});
