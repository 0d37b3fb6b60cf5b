// The kernel checks again, in headless Chromium's WebGPU (playwright-core + system Chromium).
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { allChecks } from '../helpers/all-checks.ts';
import { openBrowserPage, type BrowserEnv } from './harness.ts';

let env: BrowserEnv;
beforeAll(async () => {
  env = await openBrowserPage('/tests/browser/index.html');
  await env.page.waitForFunction(() => !!window.__lorafleet, null, { timeout: 60_000 });
  const info = await env.page.evaluate(() => window.__lorafleet!.ready);
  console.log(`browser WebGPU adapter: ${info.adapter}`);
});
afterAll(async () => env?.close());

describe('kernels (browser, chromium)', () => {
  for (const c of allChecks) {
    test(c.name, async () => {
      const r = await env.page.evaluate((name) => window.__lorafleet!.runCheck(name), c.name);
      expect(r.gpuError ?? null).toBeNull();
      expect(r.maxRelErr, `${c.name}: rel err ${r.maxRelErr} (bound ${r.bound}) ${r.detail ?? ''}`).toBeLessThan(r.bound);
    });
  }
});
