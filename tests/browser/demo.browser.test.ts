// The demo (demo/, built by Vite) against the `npm start` server (cli/start.ts serveDemo) on
// stories260K with four seeded random adapters under the served names and the shipped router:
// one message per intent (route + adapter shown; a tool call that validates against its schema, a
// label in its set, entities that parse, chat text), the multi-user simulator (mixed vs base
// tokens/s), the fine-tune tab's message; screenshots in test-results/ (LORAFLEET_SCREENSHOT=<png>
// also writes the chat view there, e.g. docs/demo.png for the README).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { mkdtemp, mkdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveDemo } from '../../cli/start.ts';
import { loadModelConfig } from '../../engine/model/weights.ts';
import { LocalDirSource } from '../../engine/model/source.ts';
import { adapterSpec, savePeftAdapter } from '../../engine/lora/peft.ts';
import { randomLoraAdapter } from '../helpers/random-lora.ts';
import { STORIES_DIR } from '../fixtures/stories.ts';
import { CHROMIUM, REPO_ROOT } from './harness.ts';

const DOMAIN = join(REPO_ROOT, 'trainer/data/samples/harborline/domain.json');
const ROUTER = join(REPO_ROOT, 'router/default/router.json');
let srv: Awaited<ReturnType<typeof serveDemo>>;
let browser: Browser;
let page: Page;
const shots = join(REPO_ROOT, 'test-results');

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lf-demo-'));
  const config = await loadModelConfig(new LocalDirSource(STORIES_DIR));
  const adapters: Record<string, string> = {};
  let seed = 1;
  for (const name of ['chat_adapter', 'tool_adapter', 'classifier_adapter', 'ner_adapter']) {
    adapters[name] = join(dir, name);
    await savePeftAdapter(adapters[name]!, adapterSpec(randomLoraAdapter(config, { name, r: 4, seed: seed++, std: 0.02 })));
  }
  srv = await serveDemo({ model: STORIES_DIR, adapters, adaptersDir: dir, router: ROUTER, domain: DOMAIN, port: 0, log: () => {} });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--disable-background-networking', '--no-first-run'] });
  page = await browser.newPage({ viewport: { width: 1180, height: 760 } });
  await mkdir(shots, { recursive: true });
}, 240_000);
afterAll(async () => {
  await browser?.close();
  await srv?.close(1000);
});

describe.skipIf(!existsSync(CHROMIUM))('demo in headless Chromium', () => {
  it('one message per intent: router decision, adapter, and outputs of the right form; simulator; fine-tune tab', async () => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${srv.url}/demo/`);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 60_000 });
    const domain = JSON.parse(await readFile(DOMAIN, 'utf8')) as { labelSets: { name: string; labels: string[] }[]; tools: { name: string }[] };
    const cases = [
      { text: 'Restart the billing-worker, it stopped responding.', route: 'tool', adapter: 'tool_adapter' },
      { text: 'Classify the sentiment: the new dashboard is great', route: 'classifier', adapter: 'classifier_adapter' },
      { text: 'Extract the entities: HL-4031 on scheduler, paged amara.okafor', route: 'ner', adapter: 'ner_adapter' },
      { text: 'What is the api-gateway latency objective?', route: 'chat', adapter: 'chat_adapter' },
    ];
    for (const [i, c] of cases.entries()) {
      await page.fill('#chat-input', c.text);
      await page.click('#chat-form button');
      await page.waitForSelector(`.msg.bot:nth-of-type(${2 * (i + 1)})[data-done="1"]`, { timeout: 90_000 });
      const bot = page.locator('.msg.bot').nth(i);
      expect(await bot.locator('[data-route]').getAttribute('data-route'), c.text).toBe(c.route);
      expect(await bot.locator('[data-adapter]').getAttribute('data-adapter')).toBe(c.adapter);
      if (c.route === 'tool') {
        // the grammar allows only calls of the offered tools with schema-valid arguments; an untrained
        // (random) adapter may run into max_tokens inside a string, which the page must say
        if (await bot.locator('[data-kind="tool_call"]').count()) {
          const call = bot.locator('[data-kind="tool_call"]').first();
          expect(domain.tools.map((t) => t.name)).toContain(await call.getAttribute('data-name'));
          expect(await call.getAttribute('data-valid')).toBe('true'); // arguments checked against the tool's schema
        } else expect(await bot.locator('[data-kind="tool_call_incomplete"]').getAttribute('data-finish')).toBe('length');
      } else if (c.route === 'classifier') {
        const label = (await bot.locator('[data-kind="label"]').textContent())!.trim();
        expect(domain.labelSets.find((s) => s.name === 'sentiment')!.labels).toContain(label);
      } else if (c.route === 'ner') {
        expect(await bot.locator('[data-kind="entities"]').count()).toBe(1); // the entity list parsed
      } else {
        expect(((await bot.locator('[data-kind="text"]').textContent()) ?? '').length).toBeGreaterThan(0);
      }
    }
    await page.waitForSelector('#pool-body table');
    expect(await page.locator('#pool-body [data-tier]').count()).toBe(4);
    await page.screenshot({ path: join(shots, 'demo-chat.png') });
    if (process.env.LORAFLEET_SCREENSHOT) await page.screenshot({ path: process.env.LORAFLEET_SCREENSHOT });

    await page.click('nav button[data-tab="sim"]');
    await page.fill('#sim-users', '4');
    await page.fill('#sim-tokens', '6');
    await page.click('#sim-run');
    await page.waitForSelector('#sim-status[data-done="1"]', { timeout: 120_000 });
    expect(await page.locator('#sim-status').textContent()).toMatch(/mixed [\d.]+ tok\/s · base [\d.]+ tok\/s/);
    await page.screenshot({ path: join(shots, 'demo-simulator.png') });

    await page.click('nav button[data-tab="tune"]');
    expect(await page.locator('[data-kind="tune-unavailable"]').count()).toBe(1);
    await page.screenshot({ path: join(shots, 'demo-finetune.png') });
    expect(errors).toEqual([]);
  }, 400_000);
});
