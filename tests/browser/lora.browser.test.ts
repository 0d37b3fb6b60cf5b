// The adapter pool in headless Chromium: the persistent tier is IndexedDB (idb-keyval), selected by
// environment; adapters written by one pool are restored by another and applied on the GPU.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openBrowserPage, type BrowserEnv } from './harness.ts';
import { STORIES_DIR } from '../fixtures/stories.ts';

let env: BrowserEnv;
beforeAll(async () => {
  env = await openBrowserPage('/tests/browser/lora.html');
  await env.page.waitForFunction(() => !!window.__loraTest, null, { timeout: 60_000 });
});
afterAll(async () => env?.close());

describe('adapter pool (browser, chromium)', () => {
  test('IndexedDB persistent tier: register, restore in a second pool, apply = float64 reference, unload clears it', async () => {
    const cfg = JSON.parse(await readFile(join(STORIES_DIR, 'config.json'), 'utf8'));
    const r = await env.page.evaluate((c) => window.__loraTest!(c), cfg);
    expect(r.storeKind).toBe('indexeddb');
    expect(r.storedAfterRegister).toEqual(['a', 'b']);
    expect(r.restored).toEqual(['a', 'b']);
    expect(r.persistentLoads).toBe(2);
    expect(r.untouchedOk).toBe(true);
    expect(r.maxRelErr).toBeLessThan(1e-5);
    expect(r.storedAfterUnload).toEqual([]);
    expect(r.persistentBytesAfterUnload).toBe(0);
  });
});
