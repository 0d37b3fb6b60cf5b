/**
 * Sentence encoders run by onnxruntime-web (WASM backend in Node and in the browser):
 *  - HashedEncoder: the embedded default (router/features.ts features → router/hashed.ts graph);
 *  - HfEncoder: a Hugging Face sentence-embedding export (model.onnx + tokenizer.json), BERT-style
 *    inputs (input_ids, attention_mask, token_type_ids when the graph takes them), mean or CLS
 *    pooling, L2 normalisation.
 * Every embedding comes back L2-normalised, so a dot product is the cosine similarity.
 */
import * as ort from 'onnxruntime-web';
import { Tokenizer } from '@huggingface/tokenizers';
import { featurize, packBatch, type FeatureSpec } from './features.ts';

export class RouterError extends Error {
  override name = 'RouterError';
}

export interface Encoder {
  readonly kind: 'hashed' | 'hf';
  readonly dim: number;
  /** One L2-normalised vector per text, in order. Texts must be non-empty. */
  embed(texts: string[]): Promise<Float32Array[]>;
  dispose(): Promise<void>;
}

let ortConfigured = false;
/** One WASM thread: routing is many tiny runs where worker hand-offs cost more than they save. */
export function configureOrt(opts: { numThreads?: number; wasmPaths?: string } = {}): typeof ort {
  if (!ortConfigured || opts.numThreads !== undefined || opts.wasmPaths !== undefined) {
    ort.env.wasm.numThreads = opts.numThreads ?? 1;
    if (opts.wasmPaths) ort.env.wasm.wasmPaths = opts.wasmPaths;
    ort.env.logLevel = 'error';
    ortConfigured = true;
  }
  return ort;
}

async function createSession(bytes: Uint8Array, what: string): Promise<ort.InferenceSession> {
  configureOrt();
  try {
    return await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  } catch (e) {
    throw new RouterError(`${what}: onnxruntime could not load the model: ${(e as Error).message}`);
  }
}

function rows(data: Float32Array, n: number, dim: number): Float32Array[] {
  return Array.from({ length: n }, (_, i) => data.slice(i * dim, (i + 1) * dim));
}

function checkTexts(texts: string[], what: string): void {
  texts.forEach((t, i) => {
    if (typeof t !== 'string' || t.trim() === '') throw new RouterError(`${what}: text ${i} is empty`);
  });
}

// ---------------------------------------------------------------- embedded (hashed) encoder

export class HashedEncoder implements Encoder {
  readonly kind = 'hashed' as const;
  private constructor(
    private session: ort.InferenceSession,
    readonly spec: FeatureSpec,
    readonly dim: number,
    private what: string,
  ) {}

  static async create(bytes: Uint8Array, spec: FeatureSpec, dim: number, what = 'hashed encoder'): Promise<HashedEncoder> {
    const s = await createSession(bytes, what);
    for (const name of ['ids', 'weights'])
      if (!s.inputNames.includes(name))
        throw new RouterError(`${what}: the model has inputs [${s.inputNames}], a hashed encoder needs 'ids' and 'weights'`);
    return new HashedEncoder(s, spec, dim, what);
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    checkTexts(texts, this.what);
    if (texts.length === 0) return [];
    const feats = texts.map((t) => featurize(t, this.spec));
    const b = packBatch(feats);
    const out = await this.session.run({
      ids: new ort.Tensor('int32', b.ids, [b.n, b.len]),
      weights: new ort.Tensor('float32', b.weights, [b.n, b.len]),
    });
    const t = out[this.session.outputNames[0]];
    if (t.dims.length !== 2 || t.dims[1] !== this.dim)
      throw new RouterError(`${this.what}: output shape [${t.dims}], expected [${b.n}, ${this.dim}]`);
    return rows(t.data as Float32Array, b.n, this.dim);
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

// ---------------------------------------------------------------- Hugging Face sentence encoder

export type Pooling = 'mean' | 'cls';

export interface HfEncoderFiles {
  model: Uint8Array;
  tokenizerJson: object;
  tokenizerConfig?: object;
  /** sentence-transformers `1_Pooling/config.json`, if the export has one. */
  poolingConfig?: Record<string, unknown>;
}

/** Pooling from a sentence-transformers pooling config: CLS when it says so, else mean. */
export function poolingFromConfig(cfg: Record<string, unknown> | undefined, fallback: Pooling = 'mean'): Pooling {
  if (!cfg) return fallback;
  if (cfg.pooling_mode_cls_token === true) return 'cls';
  if (cfg.pooling_mode_mean_tokens === true) return 'mean';
  throw new RouterError(`pooling config asks for a mode this router does not implement: ${JSON.stringify(cfg)} (mean or CLS only)`);
}

export class HfEncoder implements Encoder {
  readonly kind = 'hf' as const;
  private constructor(
    private session: ort.InferenceSession,
    private tokenizer: Tokenizer,
    readonly dim: number,
    readonly pooling: Pooling,
    private maxLength: number,
    private what: string,
  ) {}

  static async create(files: HfEncoderFiles, opts: { pooling?: Pooling; maxLength?: number; what?: string } = {}): Promise<HfEncoder> {
    const what = opts.what ?? 'hf encoder';
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(files.tokenizerJson, files.tokenizerConfig ?? {});
    } catch (e) {
      throw new RouterError(`${what}: tokenizer.json could not be loaded: ${(e as Error).message}`);
    }
    const s = await createSession(files.model, what);
    for (const name of ['input_ids', 'attention_mask'])
      if (!s.inputNames.includes(name))
        throw new RouterError(`${what}: the model has inputs [${s.inputNames}], a BERT-style encoder needs input_ids and attention_mask`);
    const pooling = opts.pooling ?? poolingFromConfig(files.poolingConfig);
    const enc = new HfEncoder(s, tokenizer, 0, pooling, opts.maxLength ?? 256, what);
    // The hidden size is read from a probe run (exports often leave it symbolic).
    const [probe] = await enc.embed(['probe']);
    (enc as { dim: number }).dim = probe.length;
    return enc;
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    checkTexts(texts, this.what);
    if (texts.length === 0) return [];
    const encs = texts.map((t) => {
      let ids = this.tokenizer.encode(t).ids;
      if (ids.length > this.maxLength) ids = [...ids.slice(0, this.maxLength - 1), ids[ids.length - 1]];
      return ids;
    });
    const n = texts.length;
    const len = Math.max(...encs.map((e) => e.length));
    const ids = new BigInt64Array(n * len);
    const mask = new BigInt64Array(n * len);
    encs.forEach((e, i) =>
      e.forEach((id, j) => {
        ids[i * len + j] = BigInt(id);
        mask[i * len + j] = 1n;
      }),
    );
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [n, len]),
      attention_mask: new ort.Tensor('int64', mask, [n, len]),
    };
    if (this.session.inputNames.includes('token_type_ids')) feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(n * len), [n, len]);
    const out = await this.session.run(feeds);
    const name = this.session.outputNames.includes('last_hidden_state') ? 'last_hidden_state' : this.session.outputNames[0];
    const t = out[name];
    if (t.dims.length !== 3 || t.dims[0] !== n || t.dims[1] !== len)
      throw new RouterError(`${this.what}: output '${name}' has shape [${t.dims}], expected [${n}, ${len}, hidden]`);
    const h = t.dims[2];
    const x = t.data as Float32Array;
    const res: Float32Array[] = [];
    for (let i = 0; i < n; i++) {
      const v = new Float32Array(h);
      if (this.pooling === 'cls') v.set(x.subarray(i * len * h, i * len * h + h));
      else {
        const m = encs[i].length;
        for (let j = 0; j < m; j++) for (let k = 0; k < h; k++) v[k] += x[(i * len + j) * h + k];
        for (let k = 0; k < h; k++) v[k] /= m;
      }
      res.push(l2normalize(v));
    }
    return res;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

export function l2normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  const n = Math.sqrt(s);
  if (n > 0) for (let i = 0; i < v.length; i++) v[i] /= n;
  return v;
}
