// The engine front end on stories260K (real weights, real tokenizer): the CLI's --json output,
// OpenAI-shaped chat completions (plain and streamed), stop strings, EOS, seeded sampling, and
// request validation errors.
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { MemorySource } from '../model/source.ts';
import { createEngine, InvalidRequestError, type LocalEngine, type ChatCompletion, type ChatCompletionChunk } from './engine.ts';
import { ContextLengthExceededError, errorBody, HTTP_STATUS, ModelNotFoundError } from './errors.ts';
import { generateCli } from '../../cli/generate.ts';
import { STORIES_DIR, STORIES_FIRST_11, STORIES_PROMPT } from '../../tests/fixtures/stories.ts';
import { presetConfig, randomModelFiles } from '../../tests/helpers/random-model.ts';

let rt: Runtime;
let engine: LocalEngine;
beforeAll(async () => {
  rt = await Runtime.create();
  engine = await createEngine({ model: STORIES_DIR, device: rt, kvBlocks: 64 });
});
afterAll(async () => {
  await engine?.destroy();
  rt?.destroyAll();
});

const user = (content: string) => [{ role: 'user' as const, content }];

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('lorafleet generate --json', () => {
  it('reproduces the stories260K reference ids (in-process CLI)', async () => {
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk);
      return true;
    });
    let code: number;
    try {
      code = await generateCli(['--model', STORIES_DIR, '--prompt', 'Once upon a time', '--temperature', '0', '--max-tokens', '11', '--json']);
    } finally {
      spy.mockRestore();
    }
    expect(code).toBe(0);
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(1); // exactly one JSON object
    const j = JSON.parse(lines[0]!);
    expect(j.prompt_ids).toEqual(STORIES_PROMPT);
    expect(j.completion_ids).toEqual(STORIES_FIRST_11);
    expect(j.text).toBe(', there was a little girl named Lily.');
    expect(j.full_text).toBe('Once upon a time, there was a little girl named Lily.');
  });

  it('--adapter <peft dir>: greedy ids = the float64 reference with the adapter merged', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const {savePeftAdapter, adapterSpec } = await import('../lora/index.ts');
    const { randomLoraAdapter } = await import('../../tests/helpers/random-lora.ts');
    const { toRefAdapter } = await import('../../reference/lora.ts');
    const { greedyGenerate, mergeLora } = await import('../../reference/llama.ts');
    const { loadReferenceModel } = await import('../../reference/load.ts');
    const { config, weights } = await loadReferenceModel(STORIES_DIR);
    const adapter = randomLoraAdapter(config, { name: 'x', r: 4, seed: 21, std: 0.15 });
    const ref = greedyGenerate(mergeLora(weights, toRefAdapter(adapter)), config, STORIES_PROMPT, 8);
    const base = greedyGenerate(weights, config, STORIES_PROMPT, 8);
    expect(ref.tokens).not.toEqual(base.tokens); // the adapter changes the path
    expect(Math.min(...ref.gaps)).toBeGreaterThan(1e-3); // no near-ties: float32 must agree exactly
    const dir = mkdtempSync(join(tmpdir(), 'lorafleet-adapter-'));
    try {
      await savePeftAdapter(dir, adapterSpec(adapter));
      let out = '';
      const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
        out += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk);
        return true;
      });
      let code: number;
      try {
        code = await generateCli(['--model', STORIES_DIR, '--prompt', 'Once upon a time', '--temperature', '0', '--max-tokens', '8', '--adapter', dir, '--json']);
      } finally {
        spy.mockRestore();
      }
      expect(code).toBe(0);
      expect(JSON.parse(out).completion_ids).toEqual(ref.tokens);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad arguments with exit code 2', async () => {
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await generateCli(['--max-tokens', '3'])).toBe(2); // no --prompt (--model defaults to the embedded model)
      expect(await generateCli(['--model', STORIES_DIR, '--prompt', 'x', '--max-tokens', 'many'])).toBe(2);
      expect(await generateCli(['--model', STORIES_DIR, '--prompt', 'x', '--bogus'])).toBe(2);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('engine.generate', () => {
  it('streams tokens and text; text = decode(completion)', async () => {
    const g = engine.generate('Once upon a time', { temperature: 0, max_tokens: 11 });
    const items = await collect(g);
    const s = await g.done;
    expect(items.filter((t) => t.token >= 0).map((t) => t.token)).toEqual(STORIES_FIRST_11);
    expect(items.map((t) => t.text).join('')).toBe(s.text);
    expect(s.text).toBe(', there was a little girl named Lily.');
    expect(s.finishReason).toBe('length');
    expect(s.usage).toEqual({ prompt_tokens: 5, completion_tokens: 11, total_tokens: 16 });
  });

  it('runs concurrent requests through the scheduler with the same greedy result', async () => {
    const gens = [0, 1, 2].map(() => engine.generate({ prompt_ids: STORIES_PROMPT }, { temperature: 0, max_tokens: 11 }));
    const outs = await Promise.all(gens.map(async (g) => (await collect(g), (await g.done).completionIds)));
    for (const o of outs) expect(o).toEqual(STORIES_FIRST_11);
  });

  it('chunked prefill (maxBatchTokens 3) and a tiny KV cache (preemption) give the same greedy ids', async () => {
    const e = await createEngine({ model: STORIES_DIR, device: rt, maxBatchTokens: 3, kvBlocks: 3, kvBlockSize: 8 });
    try {
      const gens = [0, 1].map(() => e.generate({ prompt_ids: STORIES_PROMPT }, { temperature: 0, max_tokens: 11 }));
      const outs = await Promise.all(gens.map(async (g) => (await collect(g), (await g.done).completionIds)));
      for (const o of outs) expect(o).toEqual(STORIES_FIRST_11);
      const m = e.metrics();
      expect(m.preemptions).toBeGreaterThan(0);
      expect(m.kvFreeBlocks).toBe(3);
    } finally {
      await e.destroy();
    }
  });

  it('breaking out of the iterator cancels the request; done settles', async () => {
    const g = engine.generate('Once upon a time', { temperature: 0, max_tokens: 40 });
    let n = 0;
    for await (const _ of g) if (++n === 3) break;
    await expect(g.done).rejects.toThrow(/early/);
    await new Promise((r) => setTimeout(r, 50)); // the cancel lands at the next step boundary
    expect(engine.cache.freeBlocks()).toBe(engine.cache.numBlocks);
  });

  it('an abort signal cancels the request and frees its KV pages', async () => {
    const ac = new AbortController();
    const g = engine.generate('Once upon a time', { temperature: 0, max_tokens: 50, signal: ac.signal });
    const got: number[] = [];
    const consume = async () => {
      for await (const t of g) {
        got.push(t.token);
        if (got.length === 2) ac.abort();
      }
    };
    await expect(consume()).rejects.toThrow(/abort/i);
    await expect(g.done).rejects.toThrow(/abort/i);
    expect(got.length).toBeLessThan(10);
    expect(engine.cache.freeBlocks()).toBe(engine.cache.numBlocks);
  });

  it('stops on an EOS id (finish_reason stop, EOS not in the text)', async () => {
    // A random tiny model whose config says EOS = the token it greedily generates third.
    const cfg = presetConfig('tiny-llama');
    const tok = {
      'tokenizer.json': new Uint8Array(readFileSync(join(STORIES_DIR, 'tokenizer.json'))),
      'tokenizer_config.json': new Uint8Array(readFileSync(join(STORIES_DIR, 'tokenizer_config.json'))),
    };
    const e1 = await createEngine({ model: new MemorySource({ ...randomModelFiles(cfg, { seed: 3 }), ...tok }), device: rt, kvBlocks: 16 });
    let ids: number[];
    try {
      const g = e1.generate('Once upon a time', { temperature: 0, max_tokens: 6 });
      await collect(g);
      ids = (await g.done).completionIds;
    } finally {
      await e1.destroy();
    }
    const eos = ids[2]!;
    const firstEos = ids.indexOf(eos);
    const e2 = await createEngine({ model: new MemorySource({ ...randomModelFiles({ ...cfg, eosTokenIds: [eos] }, { seed: 3 }), ...tok }), device: rt, kvBlocks: 16 });
    try {
      const g = e2.generate('Once upon a time', { temperature: 0, max_tokens: 6 });
      await collect(g);
      const s = await g.done;
      expect(s.completionIds).toEqual(ids.slice(0, firstEos));
      expect(s.finishReason).toBe('stop');
      expect(s.usage.completion_tokens).toBe(firstEos + 1); // the EOS counts as generated (OpenAI)
    } finally {
      await e2.destroy();
    }
  });
});

describe('chat.completions.create', () => {
  it('returns an OpenAI-shaped chat.completion', async () => {
    const r = (await engine.chat.completions.create({ model: engine.modelName, messages: user('Once upon a time'), temperature: 0, max_tokens: 11 })) as ChatCompletion;
    expect(r.object).toBe('chat.completion');
    expect(typeof r.id).toBe('string');
    expect(r.id.startsWith('chatcmpl-')).toBe(true);
    expect(Number.isInteger(r.created)).toBe(true);
    expect(r.model).toBe(engine.modelName);
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0]!.index).toBe(0);
    expect(r.choices[0]!.message).toEqual({ role: 'assistant', content: ', there was a little girl named Lily.' });
    expect(r.choices[0]!.finish_reason).toBe('length');
    // base model without a chat template: the message content is the prompt (BOS + text)
    expect(r.usage).toEqual({ prompt_tokens: 5, completion_tokens: 11, total_tokens: 16 });
  });

  it('streams chat.completion.chunk objects: role first, content deltas, finish_reason, usage', async () => {
    const stream = await engine.chat.completions.create({
      model: engine.modelName,
      messages: user('Once upon a time'),
      temperature: 0,
      max_tokens: 11,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = (await collect(stream as AsyncIterable<ChatCompletionChunk>)) as ChatCompletionChunk[];
    expect(chunks.length).toBeGreaterThan(3);
    const ids = new Set(chunks.map((c) => c.id));
    expect(ids.size).toBe(1);
    for (const c of chunks) expect(c.object).toBe('chat.completion.chunk');
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const usageChunk = chunks[chunks.length - 1]!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toEqual({ prompt_tokens: 5, completion_tokens: 11, total_tokens: 16 });
    const finish = chunks[chunks.length - 2]!;
    expect(finish.choices[0]!.finish_reason).toBe('length');
    expect(finish.choices[0]!.delta).toEqual({});
    const body = chunks.slice(0, -2);
    for (const c of body) expect(c.choices[0]!.finish_reason).toBeNull();
    expect(body.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe(', there was a little girl named Lily.');
  });

  it('stop strings end the completion (not included), also when streaming', async () => {
    const base = { model: engine.modelName, messages: user('Once upon a time'), temperature: 0, max_tokens: 30, stop: ['named Lily', 'xyz'] };
    const r = (await engine.chat.completions.create(base)) as ChatCompletion;
    expect(r.choices[0]!.message.content).toBe(', there was a little girl ');
    expect(r.choices[0]!.finish_reason).toBe('stop');
    const chunks = (await collect((await engine.chat.completions.create({ ...base, stream: true })) as AsyncIterable<ChatCompletionChunk>)) as ChatCompletionChunk[];
    const deltas = chunks.map((c) => c.choices[0]?.delta.content ?? '');
    expect(deltas.join('')).toBe(', there was a little girl ');
    // held back while it could still be the stop string: no delta ever carries part of it
    expect(deltas.some((d) => d.includes('named'))).toBe(false);
    expect(chunks[chunks.length - 1]!.choices[0]!.finish_reason).toBe('stop');
    // a single-string stop works too
    const r2 = (await engine.chat.completions.create({ ...base, stop: '.' })) as ChatCompletion;
    expect(r2.choices[0]!.message.content).toBe(', there was a little girl named Lily');
  });

  it('frees the KV pages of finished and stopped requests', async () => {
    expect(engine.cache.freeBlocks()).toBe(engine.cache.numBlocks);
  });
});

describe('request validation', () => {
  const ok = { model: 'stories260K', messages: user('hi'), max_tokens: 2 };
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['empty messages', { ...ok, messages: [] }, /messages/],
    ['missing messages', { model: 'x' }, /messages/],
    ['bad role', { ...ok, messages: [{ role: 'wizard', content: 'x' }] }, /messages\.0\.role/],
    ['temperature < 0', { ...ok, temperature: -1 }, /temperature/],
    ['top_p > 1', { ...ok, top_p: 1.5 }, /top_p/],
    ['max_tokens 0', { ...ok, max_tokens: 0 }, /max_tokens/],
    ['max_tokens not an integer', { ...ok, max_tokens: 2.5 }, /max_tokens/],
    ['n > 1', { ...ok, n: 2 }, /\bn\b/],
    ['a model that is not a string', { ...ok, model: 7 }, /model/],
  ];
  for (const [name, body, re] of bad) {
    it(`rejects ${name}`, async () => {
      const p = engine.chat.completions.create(body as never);
      await expect(p).rejects.toThrow(InvalidRequestError);
      await expect(p).rejects.toThrow(re);
      await expect(p).rejects.toMatchObject({ code: 'invalid_request' });
    });
  }
  it('rejects an unknown model with model_not_found (param: model), listing the names', async () => {
    const p = engine.chat.completions.create({ ...ok, model: 'gpt-17' });
    await expect(p).rejects.toThrow(ModelNotFoundError);
    await expect(p).rejects.toThrow(/unknown model 'gpt-17': available: stories260K/);
    await expect(p).rejects.toMatchObject({ code: 'model_not_found', param: 'model' });
    const body = errorBody(await p.catch((e: unknown) => e));
    expect(body).toEqual({ error: { message: expect.stringMatching(/gpt-17/), type: 'invalid_request_error', param: 'model', code: 'model_not_found' } });
    expect(HTTP_STATUS[body.error.code]).toBe(404);
  });
  it('a request without model runs on the base model', async () => {
    const r = await engine.chat.completions.create({ messages: user('hi'), max_tokens: 2, temperature: 0 });
    expect(r.model).toBe(engine.modelName);
    expect(r.usage.completion_tokens).toBeGreaterThan(0);
  });
  it('a prompt longer than the context is context_length_exceeded', () => {
    const long = Array.from({ length: engine.config.maxPositions + 5 }, () => 1);
    expect(() => engine.generate({ prompt_ids: long })).toThrow(ContextLengthExceededError);
    expect(() => engine.generate({ prompt_ids: long })).toThrow(expect.objectContaining({ code: 'context_length_exceeded' }));
  });
  it('generate() rejects bad prompt ids and options', () => {
    expect(() => engine.generate({ prompt_ids: [1, 99999] })).toThrow(/prompt_ids/);
    expect(() => engine.generate('hi', { temperature: 'hot' as unknown as number })).toThrow(/temperature/);
    expect(() => engine.generate({ prompt_ids: [] })).toThrow(/empty/);
  });
});

describe('seeded sampling', () => {
  const run = async (seed: number, extra: Record<string, number> = {}) => {
    const g = engine.generate('Once upon a time', { temperature: 1, max_tokens: 6, seed, ...extra });
    await collect(g);
    return (await g.done).completionIds;
  };
  it('same seed → same tokens (also when batched with other requests); other seeds differ', async () => {
    const a = await run(1234);
    const b = await run(1234);
    expect(b).toEqual(a);
    const [c, d, e] = await Promise.all([run(1234), run(99), run(7, { top_p: 0.9, top_k: 40 })]);
    expect(c).toEqual(a);
    const others = [await run(1)];
    expect([d, ...others].some((o) => JSON.stringify(o) !== JSON.stringify(a))).toBe(true);
    expect(e.length).toBeGreaterThan(0);
  });
  it('chat.completions with a seed is reproducible', async () => {
    const body = { model: engine.modelName, messages: user('Once upon a time'), temperature: 0.8, max_tokens: 12, seed: 5 };
    const r1 = (await engine.chat.completions.create(body)) as ChatCompletion;
    const r2 = (await engine.chat.completions.create(body)) as ChatCompletion;
    expect(r2.choices[0]!.message.content).toBe(r1.choices[0]!.message.content);
  });
});

describe('models from a hub URL', () => {
  it('downloads through the cache with progress, then runs offline from the cache', async () => {
    const { createServer } = await import('node:http');
    const { mkdtempSync, rmSync, readFileSync: rf, existsSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    let requests = 0;
    const server = createServer((req, res) => {
      requests++;
      const m = /^\/acme\/stories\/resolve\/main\/([\w.-]+)$/.exec(req.url ?? '');
      const file = m ? join(STORIES_DIR, m[1]!) : '';
      if (!m || !existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      const body = rf(file);
      res.writeHead(200, { 'content-length': String(body.byteLength) });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const cacheDir = mkdtempSync(join(tmpdir(), 'lorafleet-hub-'));
    const url = `http://127.0.0.1:${port}/acme/stories`;
    try {
      const events: string[] = [];
      const e1 = await createEngine({ model: url, cacheDir, device: rt, kvBlocks: 16, onProgress: (p) => events.push(p.phase) });
      try {
        expect(events).toContain('download');
        expect(events).toContain('upload');
        const g = e1.generate('Once upon a time', { temperature: 0, max_tokens: 11 });
        await collect(g);
        expect((await g.done).completionIds).toEqual(STORIES_FIRST_11);
      } finally {
        await e1.destroy();
      }
      expect(requests).toBeGreaterThan(0);
      await new Promise<void>((r) => server.close(() => r()));
      // server gone: everything comes from the cache
      const e2 = await createEngine({ model: url, cacheDir, device: rt, kvBlocks: 16 });
      try {
        const g = e2.generate({ prompt_ids: STORIES_PROMPT }, { temperature: 0, max_tokens: 4 });
        await collect(g);
        expect((await g.done).completionIds).toEqual(STORIES_FIRST_11.slice(0, 4));
      } finally {
        await e2.destroy();
      }
    } finally {
      server.close();
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });
});
