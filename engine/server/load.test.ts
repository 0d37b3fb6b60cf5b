// Load test of `lorafleet serve` on loopback (bounded in count and time): ≥ 200 concurrent
// mixed-adapter streaming requests, ≥ 20 % of them cancelled mid-stream by the client, ≥ 50
// malformed requests among them — zero 5xx, the server keeps serving, KV pages and GPU bytes
// return to the baseline, and /metrics counts exactly what was sent.
// LORAFLEET_SOAK=1 (set by .ci/run) runs a bigger variant (400 streams, 100 malformed, 8-token outputs).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine } from '../api/engine.ts';
import { loadModelConfig } from '../model/weights.ts';
import { LocalDirSource } from '../model/source.ts';
import { savePeftAdapter, adapterSpec } from '../lora/peft.ts';
import { Rng } from '../../shaders/lib/random.ts';
import { EngineHost } from './host.ts';
import { startServer, type RunningServer } from './node.ts';
import { STORIES_DIR } from '../../tests/fixtures/stories.ts';
import { randomLoraAdapter } from '../../tests/helpers/random-lora.ts';

const SOAK = !!process.env.LORAFLEET_SOAK;
const STREAMS = SOAK ? 400 : 200;
const MALFORMED = SOAK ? 100 : 56;
const MAX_TOKENS = SOAK ? 8 : 4;
const ADAPTERS = ['tool_adapter', 'chat_adapter', 'ner_adapter'];
const KEY = 'sk-load';

let dir: string;
let srv: RunningServer;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lorafleet-load-'));
  const config = await loadModelConfig(new LocalDirSource(STORIES_DIR));
  const adapters: Record<string, string> = {};
  for (const [i, name] of ADAPTERS.entries()) {
    await savePeftAdapter(join(dir, name), adapterSpec(randomLoraAdapter(config, { name, r: [2, 8, 16][i]!, seed: 500 + i })));
    adapters[name] = join(dir, name);
  }
  const host = await EngineHost.start({ create: () => createEngine({ model: STORIES_DIR, adapters, kvBlocks: 160, kvBlockSize: 8, maxBatchTokens: 256, maxQueue: 1024 }) });
  srv = await startServer(host, { port: 0, apiKey: KEY, maxBodyBytes: 64 << 10 });
});
afterAll(async () => {
  await srv?.close(1000);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const metric = (text: string, name: string, labels: Record<string, string>): number => {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const lab = line.slice(name.length, line.lastIndexOf(' '));
    if (want.every((w) => lab.includes(w))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
};

describe('lorafleet serve under load', () => {
  it(`${STREAMS} concurrent streams (mixed adapters, ≥20 % cancelled) + ${MALFORMED} malformed: no 5xx, pages and GPU bytes back, metrics = what was sent`, { timeout: SOAK ? 400_000 : 120_000 }, async () => {
    const url = srv.url;
    const engine = srv.host.engine!;
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${KEY}` };
    // warm-up before the baseline: every adapter (pool uploads, pipelines), and one full-size burst
    // (step scratch buffers grow to the largest batch once; that high-water mark is not a leak)
    const warm = (model: string) =>
      fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Tell me about the sea' }], max_tokens: 2 }) }).then(async (r) => {
        expect(r.status).toBe(200);
        await r.json();
      });
    for (const model of ['stories260K', ...ADAPTERS]) await warm(model);
    await Promise.all(Array.from({ length: 64 }, (_, i) => warm(['stories260K', ...ADAPTERS][i % 4]!)));
    const inUse = () => engine.runtime.stats().allocatedBytes - engine.runtime.stats().pooledBytes;
    const base = { free: engine.cache.freeBlocks(), bytes: inUse(), metrics: await (await fetch(`${url}/metrics`)).text() };

    const rng = new Rng(11);
    const statuses = new Map<number, number>();
    const sent = { completed: 0, cancelled: 0, promptTokens: 0, completionTokens: 0, malformed: { 400: 0, 401: 0, 404: 0, 413: 0 } as Record<number, number> };
    const count = (s: number) => statuses.set(s, (statuses.get(s) ?? 0) + 1);

    const stream = async (i: number) => {
      const model = ['stories260K', ...ADAPTERS][i % 4]!;
      const cancel = i % 4 === 1 || rng.uniform() < 0.15; // ≥ 25 % cancelled
      const ac = new AbortController();
      const body = {
        model, stream: true, stream_options: { include_usage: true }, seed: i,
        messages: [{ role: 'user', content: ['Once upon a time', 'Tell me about the sea', 'Lily and the ball', 'A dog'][rng.int(4)]! }],
        max_tokens: cancel ? 200 : MAX_TOKENS, temperature: rng.uniform() < 0.5 ? 0 : 0.8,
      };
      const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify(body), signal: ac.signal });
      count(res.status);
      if (res.status !== 200) return;
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      let buf = '';
      let contentChunks = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        for (let k = buf.indexOf('\n\n'); k >= 0; k = buf.indexOf('\n\n')) {
          const ev = buf.slice(0, k);
          buf = buf.slice(k + 2);
          const data = ev.replace(/^data: /, '');
          if (data === '[DONE]') continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(`stream error: ${JSON.stringify(j.error)}`);
          if (j.choices?.[0]?.delta?.content) contentChunks++;
          if (j.usage) {
            sent.promptTokens += j.usage.prompt_tokens;
            sent.completionTokens += j.usage.completion_tokens;
          }
        }
        if (cancel && contentChunks >= 1) {
          ac.abort(); // mid-stream: the server must cancel the generation and free its pages
          await reader.cancel().catch(() => {});
          sent.cancelled++;
          return;
        }
      }
      sent.completed++;
    };

    const malformed = async (i: number) => {
      const kinds: Array<[number, () => RequestInit & { path?: string }]> = [
        [400, () => ({ body: '{"model": "stories260K", "messages": [' })],
        [400, () => ({ body: JSON.stringify({ model: 'stories260K', messages: [{ role: 'wizard', content: 'x' }], stream: true }) })],
        [400, () => ({ body: JSON.stringify({ model: 'stories260K', messages: [{ role: 'user', content: 'x' }], temperature: -1, stream: true }) })],
        [400, () => ({ body: JSON.stringify({ model: 'stories260K', messages: [{ role: 'user', content: 'x' }], max_tokens: 'many' }) })],
        [400, () => ({ body: JSON.stringify([1, 2, 3]) })],
        [404, () => ({ body: JSON.stringify({ model: `ghost-${i % 3}`, messages: [{ role: 'user', content: 'x' }], stream: true }) })],
        [413, () => ({ body: JSON.stringify({ model: 'stories260K', messages: [{ role: 'user', content: 'y'.repeat(80 << 10) }] }) })],
        [401, () => ({ body: JSON.stringify({ model: 'stories260K', messages: [{ role: 'user', content: 'x' }] }), headers: { 'content-type': 'application/json', authorization: 'Bearer nope' } })],
      ];
      const [want, make] = kinds[i % kinds.length]!;
      const init = make();
      const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, ...init });
      count(res.status);
      const j = await res.json();
      expect(res.status, JSON.stringify(j)).toBe(want);
      expect(j.error).toMatchObject({ message: expect.any(String), type: expect.any(String), code: expect.any(String) });
      sent.malformed[want]!++;
    };

    // all at once: the streams and the malformed requests interleaved
    const jobs: Array<Promise<void>> = [];
    for (let i = 0, m = 0; i < STREAMS; i++) {
      jobs.push(stream(i));
      if (m < MALFORMED && i % Math.floor(STREAMS / MALFORMED) === 0) jobs.push(malformed(m++));
    }
    while (jobs.length < STREAMS + MALFORMED) jobs.push(malformed(jobs.length));
    await Promise.all(jobs);

    // the server notices the last disconnects and reaps at the next step boundary
    for (let t = 0; t < 200 && (srv.host.inflight > 0 || engine.metrics().running + engine.metrics().queueDepth > 0); t++) await new Promise((r) => setTimeout(r, 25));

    expect([...statuses.keys()].filter((s) => s >= 500)).toEqual([]);
    expect(sent.cancelled).toBeGreaterThanOrEqual(0.2 * STREAMS);
    expect(sent.completed + sent.cancelled).toBe(STREAMS);
    expect(Object.values(sent.malformed).reduce((a, b) => a + b, 0)).toBe(MALFORMED);
    expect(srv.host.inflight).toBe(0);
    expect(engine.cache.freeBlocks()).toBe(base.free);
    for (const a of ADAPTERS) expect(engine.lora!.pool.pinCount(a)).toBe(0);
    expect(inUse()).toBe(base.bytes);
    expect((await fetch(`${url}/health`)).status).toBe(200);

    const m = await (await fetch(`${url}/metrics`)).text();
    const d = (name: string, labels: Record<string, string>) => metric(m, name, labels) - metric(base.metrics, name, labels);
    const chat = { route: '/v1/chat/completions' };
    expect(d('lorafleet_http_requests_total', { ...chat, status: '200' })).toBe(STREAMS);
    for (const s of [400, 401, 404, 413]) expect(d('lorafleet_http_requests_total', { ...chat, status: String(s) }), `status ${s}`).toBe(sent.malformed[s]);
    expect(d('lorafleet_http_requests_total', chat)).toBe(STREAMS + MALFORMED);
    expect(d('lorafleet_requests_total', { outcome: 'cancelled' })).toBe(sent.cancelled);
    expect(d('lorafleet_requests_total', { outcome: 'length' }) + d('lorafleet_requests_total', { outcome: 'stop' })).toBe(sent.completed);
    // malformed that reach the handler (not 401 / 413, stopped by middleware) are counted as rejected
    expect(d('lorafleet_requests_total', { outcome: 'rejected' })).toBe(sent.malformed[400]! + sent.malformed[404]!);
    expect(d('lorafleet_requests_total', { outcome: 'error' })).toBe(0);
    expect(d('vllm:request_success_total', { finished_reason: 'abort' })).toBe(sent.cancelled);
    // usage of the completed streams = the token counters' share of them (cancelled ones add their generated tokens only)
    expect(d('vllm:prompt_tokens_total', {})).toBe(sent.promptTokens);
    expect(d('vllm:generation_tokens_total', {})).toBeGreaterThanOrEqual(sent.completionTokens + sent.cancelled);
    expect(m).not.toMatch(/lorafleet_http_requests_total\{[^}]*status="5\d\d"/);
    expect(metric(m, 'vllm:num_requests_running', {})).toBe(0);
    expect(metric(m, 'vllm:num_requests_waiting', {})).toBe(0);
    expect(metric(m, 'vllm:kv_cache_usage_perc', {})).toBe(0);
  });
});
