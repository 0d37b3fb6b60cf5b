import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { HubSource, LocalDirSource, openModelSource, type FileCache, type ModelSource } from './source.ts';
import { loadModelConfig, loadModelWeights } from './weights.ts';
import { loadTokenizer } from './tokenizer.ts';
import { STORIES_DIR, STORIES_PROMPT } from '../../tests/fixtures/stories.ts';

/** A tiny Hugging Face hub on 127.0.0.1: GET/HEAD /{owner}/{name}/resolve/{rev}/{file}, with Range. */
function hub(root: string, repo: string, rev: string) {
  const log: { method: string; file: string; range?: string }[] = [];
  const server: Server = createServer((req, res) => {
    const prefix = `/${repo}/resolve/${rev}/`;
    const url = decodeURIComponent(req.url ?? '');
    if (!url.startsWith(prefix)) return void res.writeHead(404).end();
    const file = url.slice(prefix.length);
    log.push({ method: req.method!, file, range: req.headers.range });
    const p = join(root, file);
    if (file.includes('..') || !existsSync(p)) return void res.writeHead(404).end('Entry not found');
    const body = readFileSync(p);
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m) {
      const s = Number(m[1]);
      const e = m[2] ? Math.min(Number(m[2]) + 1, body.length) : body.length;
      res.writeHead(206, { 'content-length': e - s, 'content-range': `bytes ${s}-${e - 1}/${body.length}` });
      return void res.end(req.method === 'HEAD' ? undefined : body.subarray(s, e));
    }
    res.writeHead(200, { 'content-length': body.length, 'accept-ranges': 'bytes' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return {
    log,
    server,
    start: () => new Promise<string>((ok) => server.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${(server.address() as AddressInfo).port}`))),
    stop: () => new Promise<void>((ok) => { server.closeAllConnections(); server.close(() => ok()); }),
  };
}

/** Bitwise equality of two float arrays (fast; vitest's deep equal is slow on 100k-element arrays). */
const same = (a: Float32Array | undefined, b: Float32Array) =>
  !!a && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

async function loadAll(src: ModelSource) {
  const config = await loadModelConfig(src);
  const w = await loadModelWeights(src, config);
  const tensors = new Map<string, Float32Array>();
  for await (const t of w.iterate()) tensors.set(t.name, t.f32!);
  const tok = await loadTokenizer(src);
  return { config, tensors, prompt: tok.encode('Once upon a time') };
}

describe('HubSource', () => {
  const repo = 'karpathy/stories260K';
  const rev = 'main';
  const h = hub(STORIES_DIR, repo, rev);
  let endpoint = '';
  const cacheDir = mkdtempSync(join(tmpdir(), 'lorafleet-cache-'));
  beforeAll(async () => { endpoint = await h.start(); });
  afterAll(async () => { if (h.server.listening) await h.stop(); rmSync(cacheDir, { recursive: true, force: true }); });

  it('loads over HTTP into the cache, then again offline from the cache', async () => {
    const progress: [string, number, number][] = [];
    const online = new HubSource({ repo, revision: rev, endpoint, cacheDir, onProgress: (f, l, t) => progress.push([f, l, t]) });
    const first = await loadAll(online);
    expect(first.prompt).toEqual(STORIES_PROMPT);
    const local = await loadAll(new LocalDirSource(STORIES_DIR));
    expect(first.config).toEqual(local.config);
    for (const [n, t] of local.tensors) expect(same(first.tensors.get(n), t), n).toBe(true);
    // each file downloaded once, whole (not once per tensor)
    const gets = h.log.filter((r) => r.method === 'GET').map((r) => r.file).sort();
    expect(gets).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const st = progress.filter((p) => p[0] === 'model.safetensors');
    expect(st.at(-1)).toEqual(['model.safetensors', 1044984, 1044984]);
    expect(statSync(join(cacheDir, '127.0.0.1_' + endpoint.split(':').at(-1), 'karpathy', 'stories260K', 'main', 'model.safetensors')).size).toBe(1044984);

    await h.stop();
    const requests = h.log.length;
    const offline = new HubSource({
      repo, revision: rev, endpoint, cacheDir,
      fetch: () => { throw new Error('network is gone'); },
    });
    const second = await loadAll(offline);
    expect(second.config).toEqual(first.config);
    expect(second.prompt).toEqual(STORIES_PROMPT);
    for (const [n, t] of first.tensors) expect(same(second.tensors.get(n), t), n).toBe(true);
    expect(h.log.length).toBe(requests);
    // the real fetch against the stopped server also works from cache (no request needed)
    const again = await loadAll(new HubSource({ repo, revision: rev, endpoint, cacheDir }));
    expect(again.tensors.size).toBe(first.tensors.size);
    // a file that was never cached gives a clear error with the network gone
    await expect(new HubSource({ repo, revision: 'other', endpoint, cacheDir }).readJson('config.json')).rejects.toThrow(
      /\/karpathy\/stories260K\/resolve\/other\/config\.json: fetch failed and the file is not cached/,
    );
  });
});

describe('HubSource without cache: Range requests', () => {
  const repo = 'org/model';
  const h = hub(STORIES_DIR, repo, 'v1');
  let endpoint = '';
  beforeAll(async () => { endpoint = await h.start(); });
  afterAll(async () => { await h.stop(); });

  it('reads byte ranges and sizes without downloading whole files', async () => {
    const src = new HubSource({ repo, revision: 'v1', endpoint, cache: false });
    expect(await src.size('model.safetensors')).toBe(1044984);
    expect(await src.exists('model.safetensors')).toBe(true);
    expect(await src.exists('nope.json')).toBe(false);
    const whole = readFileSync(join(STORIES_DIR, 'model.safetensors'));
    expect(Buffer.from(await src.readBytes('model.safetensors', 1000, 1100))).toEqual(whole.subarray(1000, 1100));
    const config = await loadModelConfig(src);
    const w = await loadModelWeights(src, config);
    expect(Array.from(await w.readF32('model.norm.weight'))).toEqual(
      Array.from(await (await loadModelWeights(new LocalDirSource(STORIES_DIR), config)).readF32('model.norm.weight')),
    );
    const ranged = h.log.filter((r) => r.method === 'GET' && r.file === 'model.safetensors');
    expect(ranged.length).toBeGreaterThan(0);
    expect(ranged.every((r) => r.range)).toBe(true);
  });

  it('openModelSource picks hub for URLs and a directory otherwise', () => {
    const s = openModelSource(`${endpoint}/org/model/resolve/v1`, { cache: false });
    expect(s).toBeInstanceOf(HubSource);
    expect((s as HubSource).url('config.json')).toBe(`${endpoint}/org/model/resolve/v1/config.json`);
    expect(openModelSource(STORIES_DIR)).toBeInstanceOf(LocalDirSource);
    expect(() => (s as HubSource).url('../etc/passwd')).toThrow(/bad model file name/);
  });
});

describe('HubSource with a custom FileCache (the path the browser IndexedDB cache takes)', () => {
  const h = hub(STORIES_DIR, 'a/b', 'main');
  let endpoint = '';
  beforeAll(async () => { endpoint = await h.start(); });
  afterAll(async () => { if (h.server.listening) await h.stop(); });

  it('downloads each file once into the cache, concurrent readers share the download', async () => {
    const store = new Map<string, Uint8Array>();
    let writes = 0;
    const cache: FileCache = {
      async size(k) { return store.get(k)?.byteLength ?? null; },
      async read(k, s, e) { return store.get(k)!.slice(s, e); },
      async write(k, chunks) {
        writes++;
        const parts: Uint8Array[] = [];
        for await (const c of chunks) parts.push(c);
        store.set(k, new Uint8Array(Buffer.concat(parts)));
      },
    };
    const src = new HubSource({ repo: 'a/b', endpoint, cache });
    const [x, y] = await Promise.all([src.readBytes('model.safetensors', 0, 8), src.readBytes('model.safetensors', 100, 200)]);
    expect(x.byteLength).toBe(8);
    expect(y.byteLength).toBe(100);
    expect(writes).toBe(1);
    expect(await src.exists('chat_template.jinja')).toBe(false); // 404 remembered
    await loadAll(src);
    expect(writes).toBe(5 + 1); // 5 files, each once, + the 404 marker for chat_template.jinja
    await h.stop();
    const off = new HubSource({ repo: 'a/b', endpoint, cache, fetch: () => { throw new Error('offline'); } });
    const st = await loadAll(off);
    expect(st.prompt).toEqual(STORIES_PROMPT);
  });
});
