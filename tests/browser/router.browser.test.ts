// The router in headless Chromium: the shipped router (embedded hashed encoder) and a BERT-shaped
// HF export give the same decisions in the page (onnxruntime-web WASM, files over fetch) as in Node.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openBrowserPage, type BrowserEnv } from './harness.ts';
import { loadRouter, type RouteDecision } from '../../router/index.ts';
import { bertOnnx, randomBertWeights, wordpieceTokenizerJson } from '../helpers/bert-onnx.ts';

let env: BrowserEnv;
let hfDir: string;
beforeAll(async () => {
  // A BERT-shaped export served in the hub layout (flat files: router.json, model.onnx, tokenizer.json).
  hfDir = await mkdtemp(join(tmpdir(), 'lorafleet-router-hf-'));
  const words = ['restart', 'the', 'scheduler', 'page', 'on', 'call', 'what', 'is', 'sentiment', 'of', 'this', 'extract', 'services', 'hello', 'how', 'are', 'you'];
  await writeFile(join(hfDir, 'model.onnx'), bertOnnx(randomBertWeights({ vocab: 4 + words.length, hidden: 32, layers: 2, heads: 4, ffn: 64, maxPos: 64 }, 9)));
  await writeFile(join(hfDir, 'tokenizer.json'), JSON.stringify(wordpieceTokenizerJson(words)));
  await writeFile(
    join(hfDir, 'router.json'),
    JSON.stringify({
      version: 1,
      encoder: { type: 'hf', dir: '.' },
      scoring: { topK: 2 },
      routes: [
        { name: 'tool', adapter: 'tool_adapter', utterances: ['restart the scheduler', 'page the on call'] },
        { name: 'classifier', adapter: 'classifier_adapter', utterances: ['what is the sentiment of this'] },
        { name: 'chat', adapter: 'chat_adapter', utterances: ['hello how are you'] },
      ],
    }),
  );
  env = await openBrowserPage('/tests/browser/router.html', { hub: { 'local/router-hf': hfDir } });
  await env.page.waitForFunction(() => !!window.__routerTest, null, { timeout: 60_000 });
});
afterAll(async () => {
  await env?.close();
  if (hfDir) await rm(hfDir, { recursive: true, force: true });
});

async function heldoutTexts(): Promise<string[]> {
  const text = await readFile(new URL('../../router/testdata/heldout.jsonl', import.meta.url), 'utf8');
  return text.trim().split('\n').map((l) => (JSON.parse(l) as { text: string }).text);
}

function expectSame(page: RouteDecision[], node: RouteDecision[]) {
  expect(page.length).toBe(node.length);
  page.forEach((d, i) => {
    expect({ route: d.route, adapter: d.adapter, reason: d.reason, tied: d.tied }).toEqual({ route: node[i].route, adapter: node[i].adapter, reason: node[i].reason, tied: node[i].tied });
    expect(Math.abs(d.score - node[i].score)).toBeLessThan(1e-5);
    for (const k of Object.keys(node[i].scores)) expect(Math.abs(d.scores[k] - node[i].scores[k])).toBeLessThan(1e-5);
  });
}

describe('router (browser, chromium)', () => {
  test('the shipped router: the same decisions in the page as in Node (held-out requests + chat messages)', async () => {
    const texts = await heldoutTexts();
    const inputs = [...texts, [{ role: 'system', content: 'You are helpful.' }, { role: 'user', content: 'restart the notifier please' }]];
    const page = await env.page.evaluate(([u, xs]) => window.__routerTest!(u, xs), [`${env.baseUrl}/router/default/router.json`, inputs] as const);
    expect(page.kind).toBe('hashed');
    const r = await loadRouter(new URL('../../router/default/router.json', import.meta.url).pathname);
    const node = await r.routeBatch(inputs);
    await r.dispose();
    expectSame(page.batch, node);
    expectSame(page.single, node);
  });

  test('an HF (BERT-shaped) export: the same decisions in the page as in Node', async () => {
    const inputs = ['restart the scheduler', 'what is the sentiment of this', 'hello how are you', 'page the on call now', 'extract services'];
    const page = await env.page.evaluate(([u, xs]) => window.__routerTest!(u, xs), [`${env.baseUrl}/hub/local/router-hf/resolve/main/router.json`, inputs] as const);
    expect(page.kind).toBe('hf');
    const r = await loadRouter(join(hfDir, 'router.json'));
    const node = await r.routeBatch(inputs);
    await r.dispose();
    expectSame(page.batch, node);
    expect(page.batch[0].route).toBe('tool');
  });

  test('clear errors in the page: missing router file, empty input', async () => {
    expect(await env.page.evaluate((u) => window.__routerError!(u), `${env.baseUrl}/hub/local/router-hf/resolve/main/absent.json`)).toMatch(/router file not found: .*absent\.json/);
    expect(await env.page.evaluate((u) => window.__routerError!(u, '  '), `${env.baseUrl}/router/default/router.json`)).toMatch(/the text is empty/);
  });
});
