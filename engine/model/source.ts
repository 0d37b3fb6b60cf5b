import { LorafleetError } from '../../shaders/lib/errors.ts';
import { hasNodeHost, nodeHost } from '../host.ts';
// Where model files come from: a local directory (Node), memory, or a Hugging Face
// hub-layout URL `{endpoint}/{repo}/resolve/{revision}/{file}` with an offline cache
// (a directory in Node, IndexedDB in the browser).
//
// Readers take byte ranges so a big checkpoint is read a tensor at a time and never
// needs to sit whole in the JS heap.

export interface ModelSource {
  /** Human-readable name for error messages (a path or URL). */
  readonly name: string;
  readJson(file: string): Promise<unknown>;
  /** Bytes [start, end) of a file (whole file by default). The result is the caller's. */
  readBytes(file: string, start?: number, end?: number): Promise<Uint8Array>;
  exists(file: string): Promise<boolean>;
  /** File size in bytes. */
  size(file: string): Promise<number>;
}

export type ProgressCallback = (file: string, loadedBytes: number, totalBytes: number) => void;

export class ModelSourceError extends LorafleetError {
  constructor(message: string) {
    super(message, 'model_invalid');
    this.name = 'ModelSourceError';
  }
}

function checkRelative(file: string): void {
  if (!file || file.startsWith('/') || file.includes('\\') || file.split('/').some((p) => p === '..' || p === '' || p === '.')) {
    throw new ModelSourceError(`bad model file name ${JSON.stringify(file)} (must be a relative path without "..")`);
  }
}

function parseJson(bytes: Uint8Array, where: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new ModelSourceError(`${where}: not valid JSON (${(e as Error).message})`);
  }
}



// ---------------------------------------------------------------- memory

/** Files held in memory (tests, or files the user picked in a browser). */
export class MemorySource implements ModelSource {
  constructor(
    readonly files: Record<string, Uint8Array>,
    readonly name = 'memory',
  ) {}
  private get(file: string): Uint8Array {
    const f = this.files[file];
    if (!f) throw new ModelSourceError(`${this.name}/${file}: file not found`);
    return f;
  }
  async readJson(file: string): Promise<unknown> {
    return parseJson(this.get(file), `${this.name}/${file}`);
  }
  async readBytes(file: string, start = 0, end?: number): Promise<Uint8Array> {
    const f = this.get(file);
    return f.slice(start, end ?? f.byteLength);
  }
  async exists(file: string): Promise<boolean> {
    return file in this.files;
  }
  async size(file: string): Promise<number> {
    return this.get(file).byteLength;
  }
}

// ---------------------------------------------------------------- files at URLs

/**
 * A model whose files each have their own URL (a bundler's emitted assets, a CDN folder):
 * each file is fetched whole once, on first use, and kept in memory. Files not in the map
 * do not exist (optional files such as chat_template.jinja).
 */
export class UrlFilesSource implements ModelSource {
  private bytes = new Map<string, Promise<Uint8Array>>();
  constructor(
    readonly name: string,
    readonly files: Readonly<Record<string, string | URL>>,
    private readonly fetchFn: typeof fetch = (...a) => globalThis.fetch(...a),
  ) {}
  private load(file: string): Promise<Uint8Array> {
    const url = this.files[file];
    if (url === undefined) return Promise.reject(new ModelSourceError(`${this.name}/${file}: file not found`));
    let p = this.bytes.get(file);
    if (!p) {
      p = (async () => {
        let res: Response;
        try {
          res = await this.fetchFn(String(url));
        } catch (e) {
          throw new ModelSourceError(`${String(url)}: fetch failed (${(e as Error).message})`);
        }
        if (!res.ok) throw new ModelSourceError(`${String(url)}: HTTP ${res.status} ${res.statusText}`);
        return new Uint8Array(await res.arrayBuffer());
      })();
      this.bytes.set(file, p);
      p.catch(() => this.bytes.delete(file));
    }
    return p;
  }
  async readJson(file: string): Promise<unknown> {
    return parseJson(await this.load(file), `${this.name}/${file}`);
  }
  async readBytes(file: string, start = 0, end?: number): Promise<Uint8Array> {
    const b = await this.load(file);
    return b.slice(start, end ?? b.byteLength);
  }
  async exists(file: string): Promise<boolean> {
    return this.files[file] !== undefined;
  }
  async size(file: string): Promise<number> {
    return (await this.load(file)).byteLength;
  }
}

// ---------------------------------------------------------------- local directory (Node)

/** A model directory on disk, read with positioned reads (Node only). */
export class LocalDirSource implements ModelSource {
  readonly name: string;
  /** `name` (default: the directory) is what errors and the engine's model name show. */
  constructor(
    readonly dir: string,
    name?: string,
  ) {
    this.name = name ?? dir;
  }
  private async p(file: string): Promise<string> {
    checkRelative(file);
    const { path } = nodeHost('a local model directory');
    return path.join(this.dir, file);
  }
  async readJson(file: string): Promise<unknown> {
    return parseJson(await this.readBytes(file), `${this.name}/${file}`);
  }
  async readBytes(file: string, start = 0, end?: number): Promise<Uint8Array> {
    const { fs } = nodeHost('a local model directory');
    const full = await this.p(file);
    let fh;
    try {
      fh = await fs.open(full, 'r');
    } catch (e) {
      throw new ModelSourceError(`${full}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      const size = (await fh.stat()).size;
      const e = Math.min(end ?? size, size);
      if (start < 0 || start > e) throw new ModelSourceError(`${full}: bad byte range [${start}, ${end})`);
      const out = new Uint8Array(e - start);
      let got = 0;
      while (got < out.byteLength) {
        const { bytesRead } = await fh.read(out, got, out.byteLength - got, start + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === out.byteLength ? out : out.subarray(0, got);
    } finally {
      await fh.close();
    }
  }
  async exists(file: string): Promise<boolean> {
    const { fs } = nodeHost('a local model directory');
    try {
      return (await fs.stat(await this.p(file))).isFile();
    } catch {
      return false;
    }
  }
  async size(file: string): Promise<number> {
    const { fs } = nodeHost('a local model directory');
    const full = await this.p(file);
    try {
      return (await fs.stat(full)).size;
    } catch (e) {
      throw new ModelSourceError(`${full}: cannot stat (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
}

// ---------------------------------------------------------------- caches

/** A store of whole downloaded files keyed by string. */
export interface FileCache {
  size(key: string): Promise<number | null>;
  read(key: string, start: number, end: number): Promise<Uint8Array>;
  /** Store a file from a stream of chunks; only visible (size() non-null) once complete. */
  write(key: string, chunks: AsyncIterable<Uint8Array>): Promise<void>;
}

/** Node: files under a directory (`{dir}/{key}`), written to `.part` then renamed. */
export class DirCache implements FileCache {
  constructor(readonly dir: string) {}
  private async p(key: string): Promise<string> {
    const { path } = nodeHost('a local model directory');
    return path.join(this.dir, ...key.split('/'));
  }
  async size(key: string): Promise<number | null> {
    const { fs } = nodeHost('a local model directory');
    try {
      const st = await fs.stat(await this.p(key));
      return st.isFile() ? st.size : null;
    } catch {
      return null;
    }
  }
  async read(key: string, start: number, end: number): Promise<Uint8Array> {
    return new LocalDirSource(this.dir).readBytes(key, start, end);
  }
  async write(key: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const { fs } = nodeHost('a local model directory');
    const { path } = nodeHost('a local model directory');
    const full = await this.p(key);
    await fs.mkdir(path.dirname(full), { recursive: true });
    const part = `${full}.${Math.random().toString(36).slice(2)}.part`;
    const fh = await fs.open(part, 'w');
    try {
      for await (const c of chunks) await fh.write(c);
    } catch (e) {
      await fh.close();
      await fs.rm(part, { force: true });
      throw e;
    }
    await fh.close();
    await fs.rename(part, full);
  }
}

/** Browser: whole files as Blobs in IndexedDB (idb-keyval); ranges are Blob slices. */
export class IdbCache implements FileCache {
  private store: Promise<{ get: typeof import('idb-keyval').get; set: typeof import('idb-keyval').set; store: import('idb-keyval').UseStore }>;
  constructor(dbName = 'lorafleet-models', storeName = 'files') {
    this.store = import('idb-keyval').then((m) => ({ get: m.get, set: m.set, store: m.createStore(dbName, storeName) }));
  }
  async size(key: string): Promise<number | null> {
    const s = await this.store;
    const b = (await s.get(key, s.store)) as Blob | undefined;
    return b ? b.size : null;
  }
  async read(key: string, start: number, end: number): Promise<Uint8Array> {
    const s = await this.store;
    const b = (await s.get(key, s.store)) as Blob | undefined;
    if (!b) throw new ModelSourceError(`cache: ${key} missing`);
    return new Uint8Array(await b.slice(start, end).arrayBuffer());
  }
  async write(key: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const parts: BlobPart[] = [];
    for await (const c of chunks) parts.push(c as Uint8Array<ArrayBuffer>);
    const s = await this.store;
    await s.set(key, new Blob(parts), s.store);
  }
}

/** Default cache for this environment: `$LORAFLEET_CACHE` or `~/.cache/lorafleet` in Node, IndexedDB in a browser, none otherwise. */
export async function defaultCache(): Promise<FileCache | null> {
  if (hasNodeHost()) {
    const { os } = nodeHost('a local model directory');
    const { path } = nodeHost('a local model directory');
    const { env } = nodeHost('a local model directory');
    return new DirCache(env.LORAFLEET_CACHE || path.join(os.homedir(), '.cache', 'lorafleet'));
  }
  if (typeof indexedDB !== 'undefined') return new IdbCache();
  return null;
}

// ---------------------------------------------------------------- Hugging Face hub layout

export interface HubSourceOptions {
  /** "owner/name" */
  repo: string;
  /** Default "main". Cached files are keyed by this string and never revalidated. */
  revision?: string;
  /** Default "https://huggingface.co". */
  endpoint?: string;
  /** 'auto' (default): defaultCache(); a FileCache; or false: no cache, Range requests per read. */
  cache?: FileCache | 'auto' | false;
  /** Directory cache in Node (shorthand for `cache: new DirCache(dir)`). */
  cacheDir?: string;
  onProgress?: ProgressCallback;
  /** Bearer token for gated/private repos. */
  token?: string;
  fetch?: typeof fetch;
}

/**
 * Files from `{endpoint}/{repo}/resolve/{revision}/{file}`. With a cache, the first read of
 * a file downloads it whole (streamed to the cache, with progress) and every later read,
 * also in a later process with the network gone, is served from the cache. Without a
 * cache, reads are HTTP Range requests.
 */
export class HubSource implements ModelSource {
  readonly name: string;
  readonly repo: string;
  readonly revision: string;
  readonly endpoint: string;
  private cachePromise: Promise<FileCache | null>;
  private downloads = new Map<string, Promise<number>>();
  private opts: HubSourceOptions;

  constructor(opts: HubSourceOptions) {
    if (!/^[\w.-]+(\/[\w.-]+)?$/.test(opts.repo) || opts.repo.split('/').includes('..')) {
      throw new ModelSourceError(`bad repo name ${JSON.stringify(opts.repo)}`);
    }
    this.opts = opts;
    this.repo = opts.repo;
    this.revision = opts.revision ?? 'main';
    this.endpoint = (opts.endpoint ?? 'https://huggingface.co').replace(/\/+$/, '');
    this.name = `${this.endpoint}/${this.repo}@${this.revision}`;
    this.cachePromise =
      opts.cacheDir !== undefined
        ? Promise.resolve(new DirCache(opts.cacheDir))
        : opts.cache === false
          ? Promise.resolve(null)
          : opts.cache === undefined || opts.cache === 'auto'
            ? defaultCache()
            : Promise.resolve(opts.cache);
  }

  url(file: string): string {
    checkRelative(file);
    return `${this.endpoint}/${this.repo}/resolve/${encodeURIComponent(this.revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;
  }

  private key(file: string): string {
    const host = this.endpoint.replace(/^[a-z]+:\/\//i, '').replace(/[^\w.-]+/g, '_');
    return `${host}/${this.repo}/${encodeURIComponent(this.revision)}/${file}`;
  }

  private async doFetch(file: string, init: RequestInit = {}): Promise<Response> {
    const f = this.opts.fetch ?? globalThis.fetch;
    const headers = new Headers(init.headers);
    if (this.opts.token) headers.set('Authorization', `Bearer ${this.opts.token}`);
    try {
      return await f(this.url(file), { ...init, headers });
    } catch (e) {
      throw new ModelSourceError(`${this.url(file)}: fetch failed and the file is not cached (${(e as Error).message})`);
    }
  }

  /** Ensure a file is in the cache; returns its size. */
  private ensureCached(cache: FileCache, file: string): Promise<number> {
    let p = this.downloads.get(file);
    if (!p) {
      p = (async () => {
        const key = this.key(file);
        const have = await cache.size(key);
        if (have !== null) return have;
        const res = await this.doFetch(file);
        if (!res.ok || !res.body) throw new ModelSourceError(`${this.url(file)}: HTTP ${res.status} ${res.statusText}`);
        const total = Number(res.headers.get('content-length') ?? NaN);
        const onProgress = this.opts.onProgress;
        let loaded = 0;
        const body = res.body;
        async function* chunks(): AsyncIterable<Uint8Array> {
          const reader = body.getReader();
          onProgress?.(file, 0, total);
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            loaded += value.byteLength;
            onProgress?.(file, loaded, Number.isFinite(total) ? total : loaded);
            yield value;
          }
          if (Number.isFinite(total) && loaded !== total) {
            throw new ModelSourceError(`${file}: download ended after ${loaded} of ${total} bytes`);
          }
        }
        await cache.write(key, chunks());
        const size = await cache.size(key);
        if (size === null) throw new ModelSourceError(`${file}: cache write failed`);
        return size;
      })();
      this.downloads.set(file, p);
      p.catch(() => this.downloads.delete(file));
    }
    return p;
  }

  async readJson(file: string): Promise<unknown> {
    return parseJson(await this.readBytes(file), this.url(file));
  }

  async readBytes(file: string, start = 0, end?: number): Promise<Uint8Array> {
    const cache = await this.cachePromise;
    if (cache) {
      const size = await this.ensureCached(cache, file);
      return cache.read(this.key(file), start, Math.min(end ?? size, size));
    }
    const headers: Record<string, string> = {};
    const ranged = start > 0 || end !== undefined;
    if (ranged) headers.Range = `bytes=${start}-${end !== undefined ? end - 1 : ''}`;
    if (end !== undefined && end <= start) return new Uint8Array(0);
    const res = await this.doFetch(file, { headers });
    if (!res.ok) throw new ModelSourceError(`${this.url(file)}: HTTP ${res.status} ${res.statusText}`);
    const buf = new Uint8Array(await res.arrayBuffer());
    if (ranged && res.status !== 206) return buf.slice(start, end ?? buf.byteLength); // server ignored Range
    return buf;
  }

  async exists(file: string): Promise<boolean> {
    const cache = await this.cachePromise;
    // A 404 is remembered in the cache too (an empty "{file}.404" marker), so optional files
    // (chat_template.jinja, an index for a single-file model, …) do not need the network offline.
    const missingKey = `${this.key(file)}.404`;
    if (cache && (await cache.size(this.key(file))) !== null) return true;
    if (cache && (await cache.size(missingKey)) !== null) return false;
    const res = await this.doFetch(file, { method: 'HEAD' });
    if (res.status === 404) {
      if (cache) await cache.write(missingKey, (async function* () {})());
      return false;
    }
    if (!res.ok) throw new ModelSourceError(`${this.url(file)}: HTTP ${res.status} ${res.statusText}`);
    return true;
  }

  async size(file: string): Promise<number> {
    const cache = await this.cachePromise;
    if (cache) return this.ensureCached(cache, file);
    const res = await this.doFetch(file, { method: 'HEAD' });
    if (!res.ok) throw new ModelSourceError(`${this.url(file)}: HTTP ${res.status} ${res.statusText}`);
    const n = Number(res.headers.get('content-length'));
    if (!Number.isFinite(n)) throw new ModelSourceError(`${this.url(file)}: no Content-Length`);
    return n;
  }
}

/** `dir` → LocalDirSource in Node; an http(s) URL or "owner/name" → HubSource. */
export function openModelSource(pathOrRepo: string, hub: Omit<HubSourceOptions, 'repo'> = {}): ModelSource {
  const m = /^(https?:\/\/.+?)\/([\w.-]+\/[\w.-]+)(?:\/resolve\/([^/]+))?\/?$/.exec(pathOrRepo);
  if (m) return new HubSource({ ...hub, endpoint: m[1], repo: m[2]!, revision: m[3] ? decodeURIComponent(m[3]) : hub.revision });
  if (!hasNodeHost() && /^[\w.-]+\/[\w.-]+$/.test(pathOrRepo)) return new HubSource({ ...hub, repo: pathOrRepo });
  return new LocalDirSource(pathOrRepo);
}
