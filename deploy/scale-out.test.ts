// Scale-out on loopback: two `lorafleet serve` replicas behind Debian's nginx, which hashes
// requests consistently on the `x-lorafleet-adapter` header (`hash $http_x_lorafleet_adapter
// consistent`), so every request for an adapter lands on the replica that already holds it; when
// a replica stops, nginx retries its requests on the other (`proxy_next_upstream`), and adapters
// that hashed to the survivor stay there. deploy/nginx.conf.template is the config; the test only
// fills in ports and paths. Skips (saying why) when nginx is not installed.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { createEngine } from '../engine/api/engine.ts';
import { loadModelConfig } from '../engine/model/weights.ts';
import { LocalDirSource } from '../engine/model/source.ts';
import { savePeftAdapter, adapterSpec } from '../engine/lora/peft.ts';
import { EngineHost } from '../engine/server/host.ts';
import { startServer, type RunningServer } from '../engine/server/node.ts';
import { STORIES_DIR } from '../tests/fixtures/stories.ts';
import { randomLoraAdapter } from '../tests/helpers/random-lora.ts';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx'].find((p) => existsSync(p));
if (!NGINX) console.warn('deploy/scale-out.test.ts: skipped — nginx is not installed (apt-get install -y nginx)');

const freePort = () =>
  new Promise<number>((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });

let dir: string;
let nginx: ChildProcess | null = null;
let lbPort = 0;
const replicas: RunningServer[] = [];

beforeAll(async () => {
  if (!NGINX) return;
  dir = mkdtempSync(join(tmpdir(), 'lorafleet-lb-'));
  const adaptersDir = join(dir, 'adapters');
  mkdirSync(adaptersDir);
  const config = await loadModelConfig(new LocalDirSource(STORIES_DIR));
  for (let i = 0; i < 16; i++) await savePeftAdapter(join(adaptersDir, `a${i}`), adapterSpec(randomLoraAdapter(config, { name: `a${i}`, r: 2, seed: 900 + i })));
  for (let k = 0; k < 2; k++) {
    const host = await EngineHost.start({ create: () => createEngine({ model: STORIES_DIR, lora: { maxRank: 8 }, kvBlocks: 32, kvBlockSize: 8, maxBatchTokens: 32 }) });
    replicas.push(await startServer(host, { port: 0, adaptersDir }));
  }
  lbPort = await freePort();
  const prefix = join(dir, 'nginx');
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  const conf = readFileSync(new URL('./nginx.conf.template', import.meta.url), 'utf8')
    .replaceAll('@PREFIX@', prefix)
    .replaceAll('@LISTEN@', `127.0.0.1:${lbPort}`)
    .replaceAll('@UPSTREAMS@', replicas.map((r) => `    server 127.0.0.1:${r.port} max_fails=1 fail_timeout=30s;`).join('\n'));
  writeFileSync(join(prefix, 'nginx.conf'), conf);
  nginx = spawn(NGINX, ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-g', 'daemon off; master_process off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  nginx.stderr!.on('data', (d) => (err += d));
  for (let i = 0; i < 100; i++) {
    if (await fetch(`http://127.0.0.1:${lbPort}/health`).then((r) => r.ok, () => false)) return;
    if (nginx.exitCode !== null) throw new Error(`nginx exited: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not start: ${err}`);
});
afterAll(async () => {
  nginx?.kill('SIGTERM');
  for (const r of replicas) await r.close(500);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const upstreamOf = async (adapter: string): Promise<string> => {
  const r = await fetch(`http://127.0.0.1:${lbPort}/health`, { headers: { 'x-lorafleet-adapter': adapter } });
  expect(r.status).toBe(200);
  return r.headers.get('x-upstream')!;
};

describe.skipIf(!NGINX)('two replicas behind nginx (consistent hash on the adapter header)', () => {
  it('keeps each adapter on one replica, and fails over when that replica stops', { timeout: 120_000 }, async () => {
    const addr = (r: RunningServer) => `127.0.0.1:${r.port}`;
    // which adapter names hash to which replica (bounded probe over 16 names)
    const home = new Map<string, string>();
    for (let i = 0; i < 16; i++) home.set(`a${i}`, await upstreamOf(`a${i}`));
    const onA = [...home].filter(([, u]) => u === addr(replicas[0]!)).map(([n]) => n).slice(0, 2);
    const onB = [...home].filter(([, u]) => u === addr(replicas[1]!)).map(([n]) => n).slice(0, 2);
    expect(onA.length, 'the hash spreads adapters over both replicas').toBe(2);
    expect(onB.length).toBe(2);
    // every replica can serve every adapter (shared --adapters volume), loaded at run time
    for (const r of replicas) {
      for (const n of [...onA, ...onB]) {
        const res = await fetch(`${r.url}/v1/load_lora_adapter`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ lora_name: n, lora_path: n }) });
        expect(res.status).toBe(200);
      }
    }
    const client = (adapter: string) => new OpenAI({ baseURL: `http://127.0.0.1:${lbPort}/v1`, apiKey: 'none', maxRetries: 0, defaultHeaders: { 'x-lorafleet-adapter': adapter } });
    const ask = async (adapter: string, stream = false) => {
      const c = client(adapter);
      if (stream) {
        const { data, response } = await c.chat.completions.create({ model: adapter, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0, stream: true }).withResponse();
        let text = '';
        for await (const ch of data) text += ch.choices[0]?.delta.content ?? '';
        return { upstream: response.headers.get('x-upstream')!, text };
      }
      const { data, response } = await c.chat.completions.create({ model: adapter, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0 }).withResponse();
      return { upstream: response.headers.get('x-upstream')!, text: data.choices[0]!.message.content ?? '' };
    };

    // affinity: 3 requests per adapter (one streamed through nginx), all on the adapter's replica
    const texts = new Map<string, string>();
    for (const n of [...onA, ...onB]) {
      for (let k = 0; k < 3; k++) {
        const r = await ask(n, k === 0);
        expect(r.upstream, n).toBe(home.get(n));
        if (texts.has(n)) expect(r.text).toBe(texts.get(n));
        texts.set(n, r.text);
      }
    }
    // the replica that did not own an adapter never ran it: its GPU tier never loaded it
    const [A, B] = replicas as [RunningServer, RunningServer];
    for (const n of onA) expect(B.host.engine!.lora!.pool.isResident(n), `${n} on B`).toBe(false);
    for (const n of onB) expect(A.host.engine!.lora!.pool.isResident(n), `${n} on A`).toBe(false);

    // failover: replica A stops; nginx sends A's adapters to B (same answers: same model and
    // adapters, greedy), B's adapters stay on B
    await A.close(1000);
    for (const n of onA) {
      const r = await ask(n);
      expect(r.upstream.split(', ').pop()).toBe(addr(B));
      expect(r.text).toBe(texts.get(n));
    }
    for (const n of onB) expect((await ask(n)).upstream).toBe(addr(B));
    for (const n of onA) expect(B.host.engine!.lora!.pool.isResident(n)).toBe(true);
  });
});
