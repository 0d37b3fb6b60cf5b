// model "auto" in the library: createEngine({ router }) asks the router (here the shipped default
// router of router/, an ONNX encoder run by onnxruntime-web) and serves the adapter it picks;
// the decision comes back with the response and on the first streamed chunk.
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine, type LocalEngine as Engine } from './engine.ts';
import type { ChatCompletion, ChatCompletionChunk, RouteDecision } from './types.ts';
import { loadRouter } from '../../router/index.ts';
import { STORIES_DIR } from '../../tests/fixtures/stories.ts';
import { randomLoraAdapter } from '../../tests/helpers/random-lora.ts';
import { adapterSpec, savePeftAdapter } from '../lora/peft.ts';
import { parseModelConfig } from '../model/config.ts';
import { readFileSync } from 'node:fs';

let engine: Engine;
let dir: string;
const seen: RouteDecision[] = [];
const adapters: Record<string, string> = {};
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lf-route-'));
  const config = parseModelConfig(JSON.parse(readFileSync(join(STORIES_DIR, 'config.json'), 'utf8')));
  for (const [i, name] of ['tool_adapter', 'classifier_adapter', 'ner_adapter', 'chat_adapter'].entries()) {
    const a = randomLoraAdapter(config, { name, r: 2, seed: 10 + i });
    await savePeftAdapter(join(dir, name), adapterSpec(a));
    adapters[name] = join(dir, name);
  }
  const router = await loadRouter(new URL('../../router/default/router.json', import.meta.url).pathname);
  const fn = router.asRouteFn();
  engine = await createEngine({
    model: STORIES_DIR,
    adapters,
    router: async (m) => {
      const d = await fn(m);
      seen.push(d);
      return d;
    },
  });
});
afterAll(async () => {
  await engine?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('model "auto" (createEngine router option)', () => {
  it('routes a tool request to tool_adapter and returns the decision with the response', async () => {
    const r = (await engine.chat.completions.create({
      model: 'auto',
      messages: [{ role: 'user', content: 'Please restart the billing worker in production' }],
      max_tokens: 3,
      temperature: 0,
    })) as ChatCompletion;
    const d = seen.at(-1)!;
    expect(d.adapter).toBe('tool_adapter');
    expect(r.route).toEqual(d);
    expect(r.model).toBe(d.adapter ?? engine.modelName);
    expect(engine.models()).toContain(r.model);
  });

  it('streams with the decision on the first chunk only; an NER request goes to ner_adapter', async () => {
    const s = (await engine.chat.completions.create({
      model: 'auto',
      messages: [{ role: 'user', content: 'Extract the services and error codes in: api-gateway returned HL-4030 after scheduler timed out' }],
      max_tokens: 3,
      temperature: 0,
      stream: true,
    })) as AsyncIterable<ChatCompletionChunk>;
    const chunks: ChatCompletionChunk[] = [];
    for await (const c of s) chunks.push(c);
    expect(chunks[0]!.route).toEqual(seen.at(-1));
    expect(chunks.slice(1).every((c) => c.route === undefined)).toBe(true);
    expect(chunks[0]!.model).toBe(seen.at(-1)!.adapter ?? engine.modelName);
    expect(seen.at(-1)!.adapter).toBe('ner_adapter');
  });

  it("an adapter the engine has not loaded: the router's fallback serves, and the route info says so", async () => {
    // only chat_adapter (the shipped router's fallback) is loaded: a tool request falls back to it
    const router = await loadRouter(new URL('../../router/default/router.json', import.meta.url).pathname);
    const e3 = await createEngine({ model: STORIES_DIR, device: engine.runtime, adapters: { chat_adapter: adapters.chat_adapter! }, router: router.asRouteFn() });
    try {
      const r = (await e3.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'Please restart the billing worker in production' }], max_tokens: 3, temperature: 0 })) as ChatCompletion;
      expect(r.route).toMatchObject({ route: 'tool', adapter: 'chat_adapter', not_loaded: 'tool_adapter', fallback: 'chat_adapter' });
      expect(r.model).toBe('chat_adapter');
      const direct = (await e3.chat.completions.create({ model: 'chat_adapter', messages: [{ role: 'user', content: 'Please restart the billing worker in production' }], max_tokens: 3, temperature: 0 })) as ChatCompletion;
      expect(r.choices[0]!.message.content).toBe(direct.choices[0]!.message.content);
      // a request for the loaded fallback itself: no not_loaded
      const c = (await e3.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'hello' }], max_tokens: 1 })) as ChatCompletion;
      expect(c.route).toMatchObject({ adapter: 'chat_adapter' });
      expect(c.route!.not_loaded).toBeUndefined();
    } finally {
      await e3.destroy();
      await router.dispose();
    }
  });

  it('without a router, model "auto" is model_not_found', async () => {
    const e2 = await createEngine({ model: STORIES_DIR, device: engine.runtime });
    try {
      await expect(e2.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 })).rejects.toMatchObject({ code: 'model_not_found', param: 'model' });
    } finally {
      await e2.destroy();
    }
  });
});
