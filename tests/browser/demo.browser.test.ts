// The demo (demo/, built by Vite) as `npm start` serves it (cli/start.ts serveDemo), on stories260K
// with four seeded random adapters under the served names and the shipped router. The engine runs
// in the page's WebGPU worker (model from the server's hub-layout route, adapters from its files,
// the router in the page): one message per intent (route + adapter; a tool call whose arguments
// validate against the tool's JSON schema, a label in its set, entities that parse, chat text), the
// adapter-pool panel's tiers, the multi-user simulator (mixed vs base tokens/s), the fine-tune tab
// (a few steps in the worker, live loss points, hot-swapped into the pool, then asked), and the
// page opened without the server's info (the embedded model, no adapters), and the message a
// browser without WebGPU gets. Screenshots in test-results/ (LORAFLEET_SCREENSHOT=<png>
// also writes the chat view there, e.g. docs/demo.png for the README). LORAFLEET_SOAK=1: a longer
// simulator and fine-tune run.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import Ajv from 'ajv';
import { mkdtemp, mkdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveDemo } from '../../cli/start.ts';
import { loadModelConfig } from '../../engine/model/weights.ts';
import { LocalDirSource } from '../../engine/model/source.ts';
import { adapterSpec, savePeftAdapter } from '../../engine/lora/peft.ts';
import { randomLoraAdapter } from '../helpers/random-lora.ts';
import { STORIES_DIR } from '../fixtures/stories.ts';
import { CHROMIUM, REPO_ROOT } from './harness.ts';

const DOMAIN = join(REPO_ROOT, 'trainer/data/samples/harborline/domain.json');
const ROUTER = join(REPO_ROOT, 'router/default/router.json');
const SOAK = !!process.env.LORAFLEET_SOAK;
const ADAPTERS = ['chat_adapter', 'tool_adapter', 'classifier_adapter', 'ner_adapter'];
let srv: Awaited<ReturnType<typeof serveDemo>>;
let browser: Browser;
let page: Page;
const shots = join(REPO_ROOT, 'test-results');
const errors: string[] = [];
/** 404s the page saw: only optional model files the hub source probes for are expected. */
const missing: string[] = [];

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lf-demo-'));
  const config = await loadModelConfig(new LocalDirSource(STORIES_DIR));
  const adapters: Record<string, string> = {};
  let seed = 1;
  for (const name of ADAPTERS) {
    adapters[name] = join(dir, name);
    await savePeftAdapter(adapters[name]!, adapterSpec(randomLoraAdapter(config, { name, r: 4, seed: seed++, std: 0.02 })));
  }
  srv = await serveDemo({ model: STORIES_DIR, adapters, adaptersDir: dir, router: ROUTER, domain: DOMAIN, port: 0, log: () => {} });
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader', '--disable-background-networking', '--no-first-run'],
  });
  page = await browser.newPage({ viewport: { width: 1180, height: 780 } });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => void (m.type() === 'error' && !/Failed to load resource: .* 404/.test(m.text()) && errors.push(m.text())));
  page.on('response', (r) => void (r.status() === 404 && missing.push(new URL(r.url()).pathname)));
  await mkdir(shots, { recursive: true });
  await page.goto(`${srv.url}/demo/`);
  await page.waitForSelector('body[data-ready]', { timeout: 180_000 });
}, 400_000);
afterAll(async () => {
  await browser?.close();
  await srv?.close(1000);
});

describe.skipIf(!existsSync(CHROMIUM))('demo in headless Chromium (engine in the WebGPU worker)', () => {
  it('starts the worker engine with the served model and adapters and the router', async () => {
    expect(await page.getAttribute('body', 'data-ready')).toBe('1');
    const status = (await page.textContent('#status')) ?? '';
    expect(status).toMatch(/stories260K/);
    for (const a of ADAPTERS) expect(status).toContain(a);
    expect(status).toMatch(/WebGPU in a worker/);
    const models = await page.locator('#chat-model option').allTextContents();
    expect(models).toEqual(['auto', 'stories260K', ...[...ADAPTERS].sort()]);
  });

  it('one message per intent: the router picks the adapter; outputs have their task’s form', async () => {
    const domain = JSON.parse(await readFile(DOMAIN, 'utf8')) as { labelSets: { name: string; labels: string[] }[]; tools: { name: string; parameters: object }[]; entities: Record<string, unknown> };
    const ajv = new Ajv({ strict: false });
    const cases = [
      { text: 'Restart the billing-worker, it stopped responding.', route: 'tool', adapter: 'tool_adapter' },
      { text: 'Classify the sentiment: the new dashboard is great', route: 'classifier', adapter: 'classifier_adapter' },
      { text: 'Extract the entities: HL-4031 on scheduler, paged amara.okafor', route: 'ner', adapter: 'ner_adapter' },
      { text: 'What is the api-gateway latency objective?', route: 'chat', adapter: 'chat_adapter' },
    ];
    for (const [i, c] of cases.entries()) {
      await page.fill('#chat-input', c.text);
      await page.click('#chat-form button[type="submit"]');
      const bot = page.locator('.msg.bot').nth(i);
      await bot.and(page.locator('[data-done="1"]')).waitFor({ timeout: 120_000 });
      expect(await bot.locator('[data-route]').getAttribute('data-route'), `${c.text}: ${await bot.textContent()}`).toBe(c.route);
      expect(await bot.locator('[data-adapter]').getAttribute('data-adapter')).toBe(c.adapter);
      if (c.route === 'tool') {
        // the grammar allows only calls of the offered tools with schema-valid arguments; an untrained
        // (random) adapter may run into max_tokens inside a string, which the page must say
        if (await bot.locator('[data-kind="tool_call"]').count()) {
          const call = bot.locator('[data-kind="tool_call"]').first();
          const name = await call.getAttribute('data-name');
          const tool = domain.tools.find((t) => t.name === name);
          expect(tool, 'an offered tool').toBeTruthy();
          const args = JSON.parse((await call.getAttribute('data-arguments'))!);
          expect(ajv.validate(tool!.parameters, args), ajv.errorsText()).toBe(true); // checked here, not only by the page
          expect(await call.getAttribute('data-valid')).toBe('true');
        } else expect(await bot.locator('[data-kind="tool_call_incomplete"]').getAttribute('data-finish')).toBe('length');
      } else if (c.route === 'classifier') {
        const label = (await bot.locator('[data-kind="label"]').textContent())!.trim();
        expect(domain.labelSets.find((s) => s.name === 'sentiment')!.labels).toContain(label);
      } else if (c.route === 'ner') {
        const raw = (await bot.locator('[data-kind="entities"]').getAttribute('data-raw'))!;
        const ents = JSON.parse(raw) as { type: string; text: string; start: number; end: number }[];
        expect(Array.isArray(ents)).toBe(true);
        for (const e of ents) {
          expect(Object.keys(domain.entities)).toContain(e.type);
          expect(typeof e.text).toBe('string');
          expect(Number.isInteger(e.start) && Number.isInteger(e.end)).toBe(true);
        }
      } else {
        expect(((await bot.locator('[data-kind="text"]').textContent()) ?? '').length).toBeGreaterThan(0);
      }
    }
    // the pool panel: every adapter with its tier, the IndexedDB tier holding them, counters moving
    await page.waitForFunction(() => document.querySelectorAll('#pool-body [data-tier]').length === 4, null, { timeout: 10_000 });
    const tiers = await page.locator('#pool-body [data-tier]').evaluateAll((els) => els.map((e) => e.getAttribute('data-tier')));
    expect(tiers.every((t) => t === 'gpu' || t === 'cpu' || t === 'stored')).toBe(true);
    expect(tiers).toContain('gpu'); // the adapters just used are resident
    expect(await page.textContent('#pool-body')).toMatch(/IndexedDB (?!0\.00)\d+\.\d+ MiB/);
    expect(await page.textContent('[data-kind="pool-counters"]')).toMatch(/GPU loads [1-9]/);
    await page.screenshot({ path: join(shots, 'demo-chat.png') });
    if (process.env.LORAFLEET_SCREENSHOT) await page.screenshot({ path: process.env.LORAFLEET_SCREENSHOT });
  }, 600_000);

  it('the multi-user simulator: mixed adapters vs base only, tokens/s charted', async () => {
    await page.click('nav button[data-tab="sim"]');
    await page.fill('#sim-users', SOAK ? '16' : '4');
    await page.fill('#sim-tokens', SOAK ? '32' : '6');
    await page.click('#sim-run');
    await page.waitForSelector('#sim-status[data-done]', { timeout: 300_000 });
    expect(await page.locator('#sim-status').textContent()).toMatch(/mixed [\d.]+ tok\/s · base [\d.]+ tok\/s · ratio [\d.]+/);
    await page.screenshot({ path: join(shots, 'demo-simulator.png') });
  }, 400_000);

  it('the fine-tune tab: pasted examples trained in the worker, loss charted, hot-swapped into the pool, then asked', async () => {
    const steps = SOAK ? 20 : 3;
    await page.click('nav button[data-tab="tune"]');
    await page.fill('#tune-steps', String(steps));
    await page.fill('#tune-name', 'oncall');
    await page.click('#tune-run');
    await page.waitForSelector('#tune-status[data-done]', { timeout: 400_000 });
    expect(await page.getAttribute('#tune-status', 'data-done'), (await page.textContent('#tune-status')) ?? '').toBe('1');
    const losses = JSON.parse((await page.getAttribute('#tune-status', 'data-losses'))!) as number[];
    expect(losses.length).toBe(steps);
    expect(losses.every((l) => Number.isFinite(l) && l > 0)).toBe(true);
    expect(await page.textContent('#tune-steps-done')).toBe(String(steps));
    await page.waitForFunction(() => [...document.querySelectorAll('#pool-body td')].some((td) => td.textContent === 'oncall'), null, { timeout: 10_000 });
    expect(await page.locator('#chat-model option').allTextContents()).toContain('oncall');
    await page.click('#tune-ask');
    await page.waitForSelector('#tune-answers[data-done]', { timeout: 120_000 });
    expect(await page.getAttribute('#tune-answers', 'data-done')).toBe('1');
    const tuned = (await page.textContent('[data-kind="tuned-answer"]')) ?? '';
    const base = (await page.textContent('[data-kind="base-answer"]')) ?? '';
    expect(tuned.length + base.length).toBeGreaterThan(0);
    expect(tuned).not.toBe(base); // the adapter trained here changes the greedy answer
    await page.screenshot({ path: join(shots, 'demo-finetune.png') });
    expect(errors).toEqual([]);
    for (const m of missing) expect(m).toMatch(/^\/demo-hub\/lorafleet\/stories260K\/resolve\/\w+\/(chat_template\.jinja|[\w.-]+\.index\.json|generation_config\.json|tokenizer_config\.json|special_tokens_map\.json)$/);
  }, 600_000);

  it('opened without `lorafleet start` (no /demo-api/info): the embedded stories260K in the worker, no adapters, no router', async () => {
    const p = await browser.newPage();
    await p.route('**/demo-api/info', (r) => r.fulfill({ status: 404, body: 'Not Found' }));
    await p.goto(`${srv.url}/demo/`);
    await p.waitForSelector('body[data-ready]', { timeout: 120_000 });
    expect(await p.getAttribute('body', 'data-ready')).toBe('1');
    expect(await p.textContent('#status')).toMatch(/^stories260K \(embedded\) \+ no adapters · router: none/);
    expect(await p.locator('[data-kind="standalone"]').count()).toBe(1);
    expect(await p.locator('#chat-model option').allTextContents()).toEqual(['stories260K']);
    await p.fill('#chat-input', 'Once upon a time');
    await p.click('#chat-form button[type="submit"]');
    const bot = p.locator('.msg.bot').first();
    await bot.and(p.locator('[data-done="1"]')).waitFor({ timeout: 120_000 });
    expect(await bot.locator('[data-adapter]').getAttribute('data-adapter')).toBe('stories260K');
    expect(((await bot.locator('[data-kind="text"]').textContent()) ?? '').length).toBeGreaterThan(0);
    await p.close();
  }, 300_000);

  it('a browser without WebGPU gets a clear message instead of the app', async () => {
    const p = await browser.newPage();
    await p.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }));
    await p.goto(`${srv.url}/demo/`);
    await p.waitForSelector('body[data-ready]', { timeout: 60_000 });
    expect(await p.getAttribute('body', 'data-ready')).toBe('no-engine');
    expect(await p.textContent('[data-kind="webgpu-missing"]')).toMatch(/WebGPU is not available in this browser/);
    await p.close();
  });
});
