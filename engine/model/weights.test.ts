import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseModelConfig } from './config.ts';
import { writeSafetensors, parseSafetensorsBuffer } from './safetensors.ts';
import { LocalDirSource, MemorySource } from './source.ts';
import { expectedTensors, loadModelConfig, loadModelWeights } from './weights.ts';
import { presetConfig, randomModelFiles, randomRefWeights, TINY_PRESETS, writeRandomModel } from '../../tests/helpers/random-model.ts';
import { STORIES_DIR } from '../../tests/fixtures/stories.ts';

/** Index of the first differing element (-1: equal). Fast; deep-equal of long arrays is slow. */
function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

const files = (preset: (typeof TINY_PRESETS)[number], opts = {}) => randomModelFiles(presetConfig(preset), { seed: 7, ...opts });

/** Rebuild model.safetensors with an edit to the tensor set. */
function editTensors(f: Record<string, Uint8Array>, edit: (t: Record<string, { dtype: 'F32'; shape: number[]; data: Uint8Array }>) => void) {
  const buf = f['model.safetensors']!;
  const h = parseSafetensorsBuffer(buf);
  const rec: Record<string, { dtype: 'F32'; shape: number[]; data: Uint8Array }> = {};
  for (const t of h.tensors.values()) rec[t.name] = { dtype: 'F32', shape: t.shape, data: buf.slice(t.start, t.end) };
  edit(rec);
  return { ...f, 'model.safetensors': writeSafetensors(rec) };
}

describe('loadModelWeights', () => {
  it('stories260K: all tensors present, streamed in upload order', async () => {
    const src = new LocalDirSource(STORIES_DIR);
    const config = await loadModelConfig(src);
    const w = await loadModelWeights(src, config);
    expect(w.tensors.size).toBe(1 + 5 * 9 + 1);
    expect(w.totalBytes).toBe(1044984 - 8 - 4848);
    const names: string[] = [];
    for await (const t of w.iterate()) {
      names.push(t.name);
      expect(t.f32!.length).toBe(t.shape.reduce((a, b) => a * b, 1));
      expect(t.raw).toBeUndefined();
    }
    expect(names).toEqual(expectedTensors(config).map((e) => e.name));
    expect(names[0]).toBe('model.embed_tokens.weight');
  });

  for (const p of TINY_PRESETS) {
    it(`random ${p} loads and values match the generator`, async () => {
      const cfg = presetConfig(p);
      const src = new MemorySource(files(p));
      const config = await loadModelConfig(src);
      expect(config).toEqual(cfg);
      const w = await loadModelWeights(src, config);
      const ref = randomRefWeights(cfg, { seed: 7 });
      for await (const t of w.iterate()) expect(firstDiff(t.f32!, ref.get(t.name)!.data), t.name).toBe(-1);
    });
  }

  it('f16 storage: raw bytes are packed f16, f32 view equals f16-rounded values', async () => {
    const cfg = presetConfig('tiny-qwen2');
    const w = await loadModelWeights(new MemorySource(files('tiny-qwen2', { dtype: 'F16' })), cfg);
    const ref = randomRefWeights(cfg, { seed: 7, dtype: 'F16' });
    for await (const t of w.iterate({ as: 'both' })) {
      expect(t.dtype).toBe('F16');
      expect(t.raw!.byteLength).toBe(t.f32!.length * 2);
      expect(firstDiff(t.f32!, ref.get(t.name)!.data), t.name).toBe(-1);
    }
    await expect(loadModelWeights(new MemorySource(files('tiny-qwen2', { dtype: 'F16' })), cfg, { dtypes: ['F32'] })).rejects.toThrow(
      /memory\/model\.safetensors: tensor "model\.embed_tokens\.weight" has dtype F16; accepted: F32/,
    );
  });

  it('sharded random model loads the same values', async () => {
    const cfg = presetConfig('tiny-llama-mha');
    const f = files('tiny-llama-mha', { shardBytes: 40_000 });
    expect(Object.keys(f).filter((n) => n.endsWith('.safetensors')).length).toBeGreaterThan(2);
    const w = await loadModelWeights(new MemorySource(f), cfg);
    const ref = randomRefWeights(cfg, { seed: 7 });
    for await (const t of w.iterate()) expect(firstDiff(t.f32!, ref.get(t.name)!.data), t.name).toBe(-1);
  });

  it('errors name the file and tensor', async () => {
    const cfg = presetConfig('tiny-llama-mha');
    const f = files('tiny-llama-mha');
    const load = (ff: Record<string, Uint8Array>, c = cfg) => loadModelWeights(new MemorySource(ff), c);
    await expect(load(editTensors(f, (t) => delete t['model.layers.1.mlp.up_proj.weight']))).rejects.toThrow(
      /^memory\/model\.safetensors: missing tensor "model\.layers\.1\.mlp\.up_proj\.weight" \(expected shape \[97, 48\]\)$/,
    );
    await expect(load(editTensors(f, (t) => delete t['lm_head.weight']))).rejects.toThrow(/missing tensor "lm_head\.weight"/);
    await expect(load(f, { ...cfg, intermediateSize: 96 })).rejects.toThrow(
      /memory\/model\.safetensors: tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[97, 48\], config\.json implies \[96, 48\]/,
    );
    await expect(load(f, { ...cfg, numLayers: 1 })).rejects.toThrow(/unexpected tensor "model\.layers\.1\.input_layernorm\.weight": layer 1 but config\.json has num_hidden_layers 1/);
    await expect(
      load(editTensors(f, (t) => (t['model.layers.0.self_attn.q_proj.bias'] = { dtype: 'F32', shape: [48], data: new Uint8Array(192) }))),
    ).rejects.toThrow(/unexpected tensor "model\.layers\.0\.self_attn\.q_proj\.bias": a bias the config does not declare/);
    // qwen2 without its bias
    const q = presetConfig('tiny-qwen2');
    const qf = editTensors(files('tiny-qwen2'), (t) => delete t['model.layers.0.self_attn.k_proj.bias']);
    await expect(load(qf, q)).rejects.toThrow(/missing tensor "model\.layers\.0\.self_attn\.k_proj\.bias"/);
    // a tied model carrying lm_head.weight anyway: ignored, not an error
    const tied = presetConfig('tiny-llama');
    const tf = editTensors(files('tiny-llama'), (t) => (t['lm_head.weight'] = { dtype: 'F32', shape: [512, 64], data: new Uint8Array(512 * 64 * 4) }));
    expect((await load(tf, tied)).ignored).toEqual(['lm_head.weight']);
    // a bad config.json through a source names the source path
    await expect(loadModelConfig(new MemorySource({ 'config.json': new TextEncoder().encode('{"model_type":"llama"}') }))).rejects.toThrow(
      /^memory\/config\.json: hidden_size: Required/,
    );
  });

  it('writeRandomModel streams a directory (with the stories tokenizer) that LocalDirSource loads', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lorafleet-rand-'));
    try {
      const written = await writeRandomModel(dir, 'tiny-llama', { seed: 3, dtype: 'BF16', tokenizerFrom: STORIES_DIR, shardBytes: 50_000 });
      expect(written).toContain('tokenizer.json');
      expect(written).toContain('model.safetensors.index.json');
      const src = new LocalDirSource(dir);
      const cfg = await loadModelConfig(src);
      const w = await loadModelWeights(src, cfg);
      const ref = randomRefWeights(cfg, { seed: 3, dtype: 'BF16' });
      for await (const t of w.iterate()) expect(firstDiff(t.f32!, ref.get(t.name)!.data), t.name).toBe(-1);
      expect(parseModelConfig(await src.readJson('config.json'))).toEqual(presetConfig('tiny-llama'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
