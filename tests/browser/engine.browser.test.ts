// The engine in headless Chromium: stories260K loaded from a hub-layout URL served on loopback
// (through HubSource and its IndexedDB cache), greedy generation token for token against the
// llama2.c reference, and a second load served from the cache.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { openBrowserPage, type BrowserEnv } from './harness.ts';
import { STORIES_DIR, STORIES_PROMPT, STORIES_FIRST_11 } from '../fixtures/stories.ts';
import Ajv from 'ajv';

let env: BrowserEnv;
const hubRequests: string[] = [];
beforeAll(async () => {
  env = await openBrowserPage('/tests/browser/engine.html', { hub: { 'local/stories260K': STORIES_DIR } });
  env.page.on('request', (req) => {
    if (req.url().includes('/hub/')) hubRequests.push(req.url());
  });
  await env.page.waitForFunction(() => !!window.__engineTest, null, { timeout: 60_000 });
});
afterAll(async () => env?.close());

describe('engine (browser, chromium)', () => {
  test('stories260K greedy generation equals the llama2.c reference', async () => {
    const url = `${env.baseUrl}/hub/local/stories260K`;
    const r = await env.page.evaluate(([u]) => window.__engineTest!(u, 'Once upon a time', 11), [url] as const);
    expect(r.promptIds).toEqual(STORIES_PROMPT);
    expect(r.completionIds).toEqual(STORIES_FIRST_11);
    expect(r.text).toBe(', there was a little girl named Lily.');
    expect(hubRequests.some((u) => u.endsWith('/model.safetensors'))).toBe(true);
  });

  test('a second load comes from the IndexedDB cache (no hub requests)', async () => {
    const before = hubRequests.length;
    const url = `${env.baseUrl}/hub/local/stories260K`;
    const r = await env.page.evaluate(([u]) => window.__engineTest!(u, 'Once upon a time', 3), [url] as const);
    expect(r.completionIds).toEqual(STORIES_FIRST_11.slice(0, 3));
    expect(hubRequests.slice(before)).toEqual([]);
  });

  test('structured output in the page: a JSON schema at temperature 1 validates (XGrammar web build)', async () => {
    const schema = { type: 'object', properties: { ok: { type: 'boolean' }, n: { type: 'integer', minimum: -5, maximum: 5 }, tag: { enum: ['a', 'b'] } }, required: ['ok', 'n', 'tag'] };
    const url = `${env.baseUrl}/hub/local/stories260K`;
    const outs = await env.page.evaluate(([u, s]) => window.__structuredTest!(u, s, [1, 2]), [url, schema] as const);
    const validate = new Ajv().compile(schema);
    for (const o of outs) expect(validate(JSON.parse(o)), o).toBe(true);
  });
});
