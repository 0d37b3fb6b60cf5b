// The worker engine in headless Chromium: a page runs createWorkerEngine from 'lorafleet' over a
// Web Worker that imports 'lorafleet/worker' (served by Vite from the sources). Its streamed tokens
// equal the Node engine's for the same embedded model, prompt and adapter; an aborted stream and a
// `break` give the worker's KV pages back; a typed error keeps its code across the boundary.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { openBrowserPage, type BrowserEnv } from './harness.ts';
import { createEngine } from '../../engine/api/engine.ts';
import { adapterSpec, encodePeftAdapter } from '../../engine/lora/peft.ts';
import { randomLoraAdapter } from '../helpers/random-lora.ts';
import { STORIES_GREEDY_40, STORIES_TEXT } from '../fixtures/stories.ts';
import type { WorkerTestResult } from './worker-main.ts';

const PROMPT = 'Once upon a time';
let env: BrowserEnv;
let r: WorkerTestResult;
let node: { ids: number[]; text: string; chat: string; adapterIds: number[] };

beforeAll(async () => {
  // The Node engine's answers for the same requests (the reference for the worker's).
  const engine = await createEngine({ kvBlocks: 64 });
  let adapterFiles: Record<string, Uint8Array>;
  try {
    const adapter = randomLoraAdapter(engine.config, { name: 'tone', r: 4, seed: 7, std: 0.4 });
    adapterFiles = encodePeftAdapter(adapterSpec(adapter));
    const run = async (g: ReturnType<typeof engine.generate>) => {
      for await (const _ of g) void _;
      return g.done;
    };
    const s = await run(engine.generate(PROMPT, { max_tokens: 40 }));
    const chat = await engine.chat.completions.create({ messages: [{ role: 'user', content: PROMPT }], max_tokens: 12 });
    await engine.loadAdapter('tone', adapterFiles);
    const a = await run(engine.generate(PROMPT, { max_tokens: 20, model: 'tone' }));
    node = { ids: s.completionIds, text: s.text, chat: chat.choices[0]!.message.content ?? '', adapterIds: a.completionIds };
  } finally {
    await engine.destroy();
  }

  env = await openBrowserPage('/tests/browser/worker.html');
  await env.page.waitForFunction(() => !!window.__workerTest, null, { timeout: 60_000 });
  const plain = Object.fromEntries(Object.entries(adapterFiles).map(([k, v]) => [k, [...v]]));
  r = await env.page.evaluate(([p, f]) => window.__workerTest!(p, f), [PROMPT, plain] as const);
}, 240_000);
afterAll(async () => env?.close());

describe('worker engine (browser, chromium)', () => {
  test('loads the embedded model in the worker, with progress events', () => {
    expect(r.modelName).toBe('stories260K');
    expect(r.gpuBackend).toBe('browser');
    expect(r.progressEvents).toBeGreaterThan(0);
    expect(r.totalBlocks).toBe(64);
    expect(r.baselineFree).toBe(64);
  });

  test('a streamed completion: tokens equal the Node engine (and llama2.c)', () => {
    expect(r.streamed.ids).toEqual(node.ids);
    expect(r.streamed.ids).toEqual(STORIES_GREEDY_40);
    expect(PROMPT + r.streamed.text).toBe(STORIES_TEXT);
    expect(r.streamed.finish).toBe('length');
  });

  test('chat.completions.create streaming across the boundary equals the Node engine', () => {
    expect(r.chat.content).toBe(node.chat);
    expect(r.chat.finish).toBe('length');
    expect(r.chat.chunks).toBeGreaterThan(2);
  });

  test('an adapter loaded as bytes: same tokens as in Node, different from the base; unload removes it', () => {
    expect(r.adapter.models).toEqual(['stories260K', 'tone']);
    expect(r.adapter.ids).toEqual(node.adapterIds);
    expect(r.adapter.ids).not.toEqual(node.ids.slice(0, 20));
    expect(r.adapter.afterUnload).toEqual(['stories260K']);
  });

  test('abort midway: AbortError in the page, the worker frees its KV pages', () => {
    expect(r.aborted.tokensBeforeAbort).toBe(5); // no token after the abort
    expect(r.aborted.errorName).toBe('AbortError');
    expect(r.aborted.freeDuringStream).toBeLessThan(r.baselineFree);
    expect(r.aborted.freeAfter).toBe(r.baselineFree);
    // the worker ended it as cancelled (not by running out its 400 tokens)
    expect(r.aborted.cancelled).toBe(1);
  });

  test('break out of a chat stream: the worker cancels it and frees its KV pages', () => {
    expect(r.broke.tokens).toBe(3);
    expect(r.broke.freeAfter).toBe(r.baselineFree);
    expect(r.broke.cancelled).toBe(2);
    // decoded tokens stopped growing soon after the break (far fewer than the 400 asked for)
    expect(r.broke.decodedAfter - r.aborted.decodedAfter).toBeLessThan(40);
  });

  test('typed errors keep their class and code across the boundary', () => {
    expect(r.badModel).toEqual({ isLorafleetError: true, code: 'model_not_found', name: 'ModelNotFoundError' });
  });
});
