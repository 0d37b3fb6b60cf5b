// The persistent adapter tier: PEFT files (adapter_config.json + adapter_model.safetensors) kept
// by adapter name in a directory (Node) or in IndexedDB (browser, idb-keyval). Selected by
// environment in defaultAdapterStore(); MemoryAdapterStore for tests.
import { ModelSourceError } from '../model/source.ts';
import { hasNodeHost, nodeHost } from '../host.ts';

export type AdapterFiles = Record<string, Uint8Array>;

export interface AdapterStore {
  readonly kind: 'dir' | 'indexeddb' | 'memory';
  put(name: string, files: AdapterFiles): Promise<void>;
  get(name: string): Promise<AdapterFiles | null>;
  delete(name: string): Promise<void>;
  list(): Promise<string[]>;
  /** Stored bytes of one adapter (0 when absent). */
  bytes(name: string): Promise<number>;
}


const FILES = ['adapter_config.json', 'adapter_model.safetensors'];
const sum = (f: AdapterFiles) => Object.values(f).reduce((a, b) => a + b.byteLength, 0);

export class MemoryAdapterStore implements AdapterStore {
  readonly kind = 'memory' as const;
  private m = new Map<string, AdapterFiles>();
  async put(name: string, files: AdapterFiles) {
    this.m.set(name, { ...files });
  }
  async get(name: string) {
    return this.m.get(name) ?? null;
  }
  async delete(name: string) {
    this.m.delete(name);
  }
  async list() {
    return [...this.m.keys()].sort();
  }
  async bytes(name: string) {
    const f = this.m.get(name);
    return f ? sum(f) : 0;
  }
}

/** Node: `{dir}/{encodeURIComponent(name)}/adapter_config.json` etc.; written to a temp dir then renamed. */
export class DirAdapterStore implements AdapterStore {
  readonly kind = 'dir' as const;
  constructor(readonly dir: string) {}
  private async p(name: string, file?: string): Promise<string> {
    const { path } = nodeHost('the adapter directory store');
    if (!name) throw new ModelSourceError('adapter store: empty adapter name');
    return file ? path.join(this.dir, encodeURIComponent(name), file) : path.join(this.dir, encodeURIComponent(name));
  }
  async put(name: string, files: AdapterFiles) {
    const { fs } = nodeHost('the adapter directory store');
    const final = await this.p(name);
    const tmp = `${final}.${Math.random().toString(36).slice(2)}.tmp`;
    await fs.mkdir(tmp, { recursive: true });
    for (const [f, b] of Object.entries(files)) await fs.writeFile(`${tmp}/${f}`, b);
    await fs.rm(final, { recursive: true, force: true });
    await fs.rename(tmp, final);
  }
  async get(name: string) {
    const { fs } = nodeHost('the adapter directory store');
    const out: AdapterFiles = {};
    for (const f of FILES) {
      try {
        out[f] = new Uint8Array(await fs.readFile(await this.p(name, f)));
      } catch {
        return null;
      }
    }
    return out;
  }
  async delete(name: string) {
    const { fs } = nodeHost('the adapter directory store');
    await fs.rm(await this.p(name), { recursive: true, force: true });
  }
  async list() {
    const { fs } = nodeHost('the adapter directory store');
    try {
      return (await fs.readdir(this.dir, { withFileTypes: true }))
        .filter((d) => d.isDirectory() && !d.name.endsWith('.tmp'))
        .map((d) => decodeURIComponent(d.name))
        .sort();
    } catch {
      return [];
    }
  }
  async bytes(name: string) {
    const { fs } = nodeHost('the adapter directory store');
    let n = 0;
    for (const f of FILES) {
      try {
        n += (await fs.stat(await this.p(name, f))).size;
      } catch {
        /* absent */
      }
    }
    return n;
  }
}

/** Browser: one IndexedDB record per adapter name holding both files. */
export class IdbAdapterStore implements AdapterStore {
  readonly kind = 'indexeddb' as const;
  private s: Promise<{ m: typeof import('idb-keyval'); store: import('idb-keyval').UseStore }>;
  constructor(dbName = 'lorafleet-adapters', storeName = 'adapters') {
    this.s = import('idb-keyval').then((m) => ({ m, store: m.createStore(dbName, storeName) }));
  }
  async put(name: string, files: AdapterFiles) {
    const { m, store } = await this.s;
    await m.set(name, files, store);
  }
  async get(name: string) {
    const { m, store } = await this.s;
    return ((await m.get(name, store)) as AdapterFiles | undefined) ?? null;
  }
  async delete(name: string) {
    const { m, store } = await this.s;
    await m.del(name, store);
  }
  async list() {
    const { m, store } = await this.s;
    return ((await m.keys(store)) as string[]).sort();
  }
  async bytes(name: string) {
    const f = await this.get(name);
    return f ? sum(f) : 0;
  }
}

/** `$LORAFLEET_ADAPTERS` or `~/.cache/lorafleet/adapters` in Node, IndexedDB in a browser, memory otherwise. */
export async function defaultAdapterStore(): Promise<AdapterStore> {
  if (hasNodeHost()) {
    const { os } = nodeHost('the adapter directory store');
    const { path } = nodeHost('the adapter directory store');
    const { env } = nodeHost('the adapter directory store');
    return new DirAdapterStore(env.LORAFLEET_ADAPTERS || path.join(os.homedir(), '.cache', 'lorafleet', 'adapters'));
  }
  if (typeof indexedDB !== 'undefined') return new IdbAdapterStore();
  return new MemoryAdapterStore();
}
