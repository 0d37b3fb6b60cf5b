// Faults around `lorafleet serve`: a device loss mid-request (in-flight requests fail with 503
// device_lost, /health says 503 while a fresh engine is built on a new device, adapters loaded at
// run time come back, serving resumes with the same answers), a full queue (429 + Retry-After),
// and a graceful close (in-flight requests finish, new ones are refused, the engine is destroyed).
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine } from '../api/engine.ts';
import { loadModelConfig } from '../model/weights.ts';
import { LocalDirSource } from '../model/source.ts';
import { savePeftAdapter, adapterSpec } from '../lora/peft.ts';
import { EngineHost } from './host.ts';
import { startServer, type RunningServer } from './node.ts';
import { STORIES_DIR } from '../../tests/fixtures/stories.ts';
import { randomLoraAdapter } from '../../tests/helpers/random-lora.ts';

const dir = mkdtempSync(join(tmpdir(), 'lorafleet-faults-'));
const servers: RunningServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close(500);
  rmSync(dir, { recursive: true, force: true });
});

const chat = (srv: RunningServer, body: Record<string, unknown>, signal?: AbortSignal) =>
  fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'Once upon a time' }], ...body }), signal });

describe('serve: faults', () => {
  it('device loss: in-flight requests get 503 device_lost, the engine is recreated on a new device, serving resumes', async () => {
    const config = await loadModelConfig(new LocalDirSource(STORIES_DIR));
    await savePeftAdapter(join(dir, 'late'), adapterSpec(randomLoraAdapter(config, { name: 'late', r: 4, seed: 77, std: 0.3 })));
    let created = 0;
    const logs: Array<Record<string, unknown>> = [];
    const host = await EngineHost.start({ create: async () => (created++, createEngine({ model: STORIES_DIR, lora: { maxRank: 8 }, kvBlocks: 64, kvBlockSize: 8 })), log: (e) => logs.push(e) });
    const srv = await startServer(host, { port: 0, adaptersDir: dir });
    servers.push(srv);
    expect((await fetch(`${srv.url}/v1/load_lora_adapter`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ lora_name: 'late', lora_path: 'late' }) })).status).toBe(200);
    const before = await (await chat(srv, { model: 'late', max_tokens: 8, temperature: 0 })).json();
    const old = host.engine!;

    // two requests in flight: one plain, one streamed (already answering 200)
    const plain = chat(srv, { max_tokens: 400, temperature: 0 });
    const streamed = await chat(srv, { model: 'late', max_tokens: 400, temperature: 0, stream: true });
    expect(streamed.status).toBe(200);
    const reader = streamed.body!.getReader();
    await reader.read();
    old.runtime.device.destroy(); // what a driver reset / GPU process crash looks like to WebGPU

    const p = await plain;
    expect(p.status).toBe(503);
    expect((await p.json()).error).toMatchObject({ code: 'device_lost' });
    let rest = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toContain('"code":"device_lost"');
    expect(rest.trim().endsWith('data: [DONE]')).toBe(true);

    // recovering: 503 + Retry-After; then a new engine serves, with the adapter loaded at run time
    for (let i = 0; i < 400 && host.state !== 'ready'; i++) {
      const h = await fetch(`${srv.url}/health`);
      if (h.status === 503) expect(h.headers.get('retry-after')).toBeTruthy();
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(host.state).toBe('ready');
    expect(created).toBe(2);
    expect(host.engine).not.toBe(old);
    expect((await fetch(`${srv.url}/health`)).status).toBe(200);
    const after = await chat(srv, { model: 'late', max_tokens: 8, temperature: 0 });
    expect(after.status).toBe(200);
    expect((await after.json()).choices[0].message.content).toBe(before.choices[0].message.content);
    const m = await (await fetch(`${srv.url}/metrics`)).text();
    expect(m).toMatch(/lorafleet_engine_recoveries 1/);
    expect(logs.some((l) => l.msg === 'device lost')).toBe(true);
  });

  it('queue full: 429 with Retry-After, and the queued requests still finish (and --cors preflight)', async () => {
    const host = await EngineHost.start({ create: () => createEngine({ model: STORIES_DIR, maxQueue: 2, maxBatchTokens: 16, kvBlocks: 64, kvBlockSize: 8 }) });
    const srv = await startServer(host, { port: 0, retryAfterSeconds: 3, cors: 'https://app.example' });
    servers.push(srv);
    // (--cors: a browser page on that origin may call the API)
    const pre = await fetch(`${srv.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } });
    expect(pre.status).toBeLessThan(300);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(pre.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    // maxRunning = 16 per step; 40 at once overflow the queue of 2
    const rs = await Promise.all(Array.from({ length: 40 }, () => chat(srv, { max_tokens: 6, temperature: 0, stream: true })));
    const statuses = rs.map((r) => r.status);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    for (const r of rs) {
      if (r.status === 429) {
        expect(r.headers.get('retry-after')).toBe('3');
        expect((await r.json()).error).toMatchObject({ type: 'rate_limit_error', code: 'queue_full' });
      } else expect(await r.text()).toContain('data: [DONE]');
    }
    expect(host.engine!.metrics().running + host.engine!.metrics().queueDepth).toBe(0);
  });

  it('graceful close: in-flight requests finish, new ones are refused, the engine is destroyed', async () => {
    const host = await EngineHost.start({ create: () => createEngine({ model: STORIES_DIR, kvBlocks: 64, kvBlockSize: 8 }) });
    const srv = await startServer(host, { port: 0 });
    const inflight = chat(srv, { max_tokens: 24, temperature: 0 });
    await new Promise((r) => setTimeout(r, 100));
    expect(host.inflight).toBe(1);
    const closing = srv.close(30_000);
    await new Promise((r) => setTimeout(r, 20));
    expect(host.state).toBe('closing');
    const late = await chat(srv, { max_tokens: 2 }).then((r) => r.status, () => 'refused');
    expect([503, 'refused']).toContain(late);
    const r = await inflight;
    expect(r.status).toBe(200);
    expect((await r.json()).choices[0].finish_reason).toBe('length');
    await closing;
    expect(host.state).toBe('closed');
    expect(host.engine).toBe(null);
  });

  it('close after the grace period cancels what is left (503 to the client)', async () => {
    const host = await EngineHost.start({ create: () => createEngine({ model: STORIES_DIR, kvBlocks: 64, kvBlockSize: 8 }) });
    const srv = await startServer(host, { port: 0 });
    const inflight = chat(srv, { max_tokens: 400, temperature: 0 });
    await new Promise((r) => setTimeout(r, 100));
    await srv.close(200);
    const r = await inflight;
    expect(r.status).toBe(503);
    expect(host.state).toBe('closed');
  });
});
