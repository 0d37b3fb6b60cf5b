// File IO behind a small interface so the trainer runs the same in Node (node-io.ts) and in a page
// or worker (MemoryIO, or any store that implements it). Paths are '/'-separated.

export interface TrainIO {
  readText(path: string): Promise<string>;
  readBytes(path: string): Promise<Uint8Array>;
  /** Whole-file write; implementations write atomically (a killed run never leaves half a file). */
  write(path: string, data: Uint8Array | string): Promise<void>;
  append(path: string, text: string): Promise<void>;
  exists(path: string): Promise<boolean>;
  /** Names (not paths) of the entries of a directory; [] when it does not exist. */
  list(dir: string): Promise<string[]>;
  /** Remove a file or directory tree (no error when absent). */
  remove(path: string): Promise<void>;
}

export const joinPath = (...parts: string[]): string => parts.filter((p) => p !== '').join('/').replace(/\/+/g, '/');

/** In-memory files (browser worker, tests). */
export class MemoryIO implements TrainIO {
  readonly files = new Map<string, Uint8Array>();
  private key = (p: string) => p.replace(/\/+/g, '/').replace(/^\.\//, '');
  async readText(path: string): Promise<string> {
    return new TextDecoder().decode(await this.readBytes(path));
  }
  async readBytes(path: string): Promise<Uint8Array> {
    const f = this.files.get(this.key(path));
    if (!f) throw new Error(`${path}: no such file`);
    return f;
  }
  async write(path: string, data: Uint8Array | string): Promise<void> {
    this.files.set(this.key(path), typeof data === 'string' ? new TextEncoder().encode(data) : data);
  }
  async append(path: string, text: string): Promise<void> {
    const k = this.key(path);
    const old = this.files.get(k);
    const add = new TextEncoder().encode(text);
    const out = new Uint8Array((old?.length ?? 0) + add.length);
    if (old) out.set(old);
    out.set(add, old?.length ?? 0);
    this.files.set(k, out);
  }
  async exists(path: string): Promise<boolean> {
    const k = this.key(path);
    return this.files.has(k) || [...this.files.keys()].some((f) => f.startsWith(k + '/'));
  }
  async list(dir: string): Promise<string[]> {
    const k = this.key(dir).replace(/\/$/, '') + '/';
    const names = new Set<string>();
    for (const f of this.files.keys()) if (f.startsWith(k)) names.add(f.slice(k.length).split('/')[0]!);
    return [...names];
  }
  async remove(path: string): Promise<void> {
    const k = this.key(path);
    for (const f of [...this.files.keys()]) if (f === k || f.startsWith(k + '/')) this.files.delete(f);
  }
}
