/**
 * loadRouter(file): reads a router file and its encoder — from disk in Node, over fetch in the
 * browser (or for any http(s) URL) — and returns a ready Router. Encoder paths in the file are
 * relative to the router file.
 */
import { HashedEncoder, HfEncoder, RouterError, type Encoder } from './encoder.ts';
import { Router } from './router.ts';
import { parseRouterFile, type EncoderSpec } from './schema.ts';

/** Where a router's files come from; `null` = the file does not exist. */
export interface FileSource {
  read(path: string): Promise<Uint8Array | null>;
  /** `rel` resolved against the directory of `base`. */
  resolve(base: string, rel: string): string;
}

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

export const fetchSource: FileSource = {
  async read(url) {
    const res = await fetch(url);
    if (res.status === 404) return null;
    if (!res.ok) throw new RouterError(`${url}: HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  },
  resolve: (base, rel) => new URL(rel, new URL(base, typeof location !== 'undefined' ? location.href : undefined)).href,
};

async function nodeSource(): Promise<FileSource> {
  // Hidden from bundlers: the browser build never takes this path.
  const fsName = 'node:fs/promises', pathName = 'node:path';
  const fs = (await import(/* @vite-ignore */ fsName)) as typeof import('node:fs/promises');
  const path = (await import(/* @vite-ignore */ pathName)) as typeof import('node:path');
  return {
    async read(p) {
      try {
        return new Uint8Array(await fs.readFile(p));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
    },
    resolve: (base, rel) => path.resolve(path.dirname(base), rel),
  };
}

function defaultSource(file: string): Promise<FileSource> | FileSource {
  return isNode && !/^https?:/i.test(file) ? nodeSource() : fetchSource;
}

function json(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new RouterError(`${what}: not valid JSON: ${(e as Error).message}`);
  }
}

async function need(src: FileSource, path: string, what: string): Promise<Uint8Array> {
  const b = await src.read(path);
  if (!b) throw new RouterError(`${what} not found: ${path}`);
  return b;
}

/** Loads the encoder a router file names. `base` is the router file's path or URL. */
export async function loadEncoder(spec: EncoderSpec, base: string, src?: FileSource): Promise<Encoder> {
  const s = src ?? (await defaultSource(base));
  if (spec.type === 'hashed') {
    const p = s.resolve(base, spec.model);
    return HashedEncoder.create(await need(s, p, 'encoder model (encoder.model)'), spec.features, spec.dim, p);
  }
  const dir = s.resolve(base, spec.dir.endsWith('/') ? spec.dir : `${spec.dir}/`);
  const at = (f: string) => s.resolve(`${dir.replace(/\/$/, '')}/x`, f);
  const model = (await s.read(at('model.onnx'))) ?? (await s.read(at('onnx/model.onnx')));
  if (!model) throw new RouterError(`encoder model not found: ${at('model.onnx')} (nor onnx/model.onnx) — encoder.dir must hold a Hugging Face ONNX export`);
  const tok = await need(s, at('tokenizer.json'), 'encoder tokenizer (tokenizer.json)');
  const cfg = await s.read(at('tokenizer_config.json'));
  const pool = await s.read(at('1_Pooling/config.json'));
  return HfEncoder.create(
    {
      model,
      tokenizerJson: json(tok, at('tokenizer.json')) as object,
      tokenizerConfig: cfg ? (json(cfg, at('tokenizer_config.json')) as object) : undefined,
      poolingConfig: pool ? (json(pool, at('1_Pooling/config.json')) as Record<string, unknown>) : undefined,
    },
    { pooling: spec.pooling, maxLength: spec.maxLength, what: dir },
  );
}

/** Loads a router file (path in Node, URL in the browser) and its encoder. */
export async function loadRouter(file: string, opts: { source?: FileSource } = {}): Promise<Router> {
  const src = opts.source ?? (await defaultSource(file));
  const bytes = await src.read(file);
  if (!bytes) throw new RouterError(`router file not found: ${file}`);
  const cfg = parseRouterFile(json(bytes, file), file);
  const encoder = await loadEncoder(cfg.encoder, file, src);
  return Router.create(cfg, encoder);
}
