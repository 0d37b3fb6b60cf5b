// The embedded default model: the files shipped in the package are stories260K, byte for byte,
// and createEngine({}) runs it (greedy: what llama2.c's run.c prints for it).
import { describe, expect, test } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createEngine } from '../api/engine.ts';
import { embeddedModelSource, EMBEDDED_MODEL_NAME } from './embedded.ts';
import { LocalDirSource } from './source.ts';
import { SHARED_STORIES_DIR, STORIES_DIR, STORIES_FIRST_11, STORIES_PROMPT } from '../../tests/fixtures/stories.ts';

const MODEL_FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

describe('embedded stories260K', () => {
  test('ships its model files, README and LICENSE (MIT, credited)', () => {
    const have = readdirSync(STORIES_DIR).sort();
    expect(have).toEqual([...MODEL_FILES, 'LICENSE', 'README.md'].sort());
    const licence = readFileSync(join(STORIES_DIR, 'LICENSE'), 'utf8');
    expect(licence).toMatch(/MIT License/);
    expect(licence).toMatch(/karpathy\/llama2\.c/);
  });

  test.skipIf(!existsSync(SHARED_STORIES_DIR))('model files are byte-identical to ../shared/models/stories260K', () => {
    for (const f of MODEL_FILES) {
      expect(Buffer.compare(readFileSync(join(STORIES_DIR, f)), readFileSync(join(SHARED_STORIES_DIR, f))), f).toBe(0);
    }
  });

  test('embeddedModelSource() reads that directory in Node, named stories260K', async () => {
    const src = embeddedModelSource();
    expect(src).toBeInstanceOf(LocalDirSource);
    expect(src.name).toBe(EMBEDDED_MODEL_NAME);
    expect((src as LocalDirSource).dir).toBe(STORIES_DIR);
    for (const f of MODEL_FILES) expect(await src.exists(f), f).toBe(true);
  });

  test('createEngine({}) runs it: greedy ids equal llama2.c, model name stories260K', async () => {
    const engine = await createEngine({ kvBlocks: 16 });
    try {
      expect(engine.modelName).toBe('stories260K');
      const g = engine.generate('Once upon a time', { max_tokens: 11 }); // generation_config: do_sample false
      for await (const _ of g) void _;
      const s = await g.done;
      expect(s.promptIds).toEqual(STORIES_PROMPT);
      expect(s.completionIds).toEqual(STORIES_FIRST_11);
    } finally {
      await engine.destroy();
    }
  });
});

describe('device limits', () => {
  test('a model whose largest weight exceeds the device limits is model_too_large, before any upload', async () => {
    const { Runtime } = await import('../../shaders/gpu/runtime.ts');
    const rt = await Runtime.create();
    try {
      // stories260K's largest weight: the embedding, 512 x 64 f32 = 131072 bytes
      rt.info.limits.maxStorageBufferBindingSize = 131072 - 4;
      await expect(createEngine({ device: rt, kvBlocks: 4 })).rejects.toMatchObject({ code: 'model_too_large', name: 'LorafleetError' });
      rt.info.limits.maxStorageBufferBindingSize = 131072; // exactly fits
      const e = await createEngine({ device: rt, kvBlocks: 4 });
      await e.destroy();
    } finally {
      rt.destroyAll();
    }
  });
});
