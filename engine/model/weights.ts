// Validated weight map for a llama / qwen2 / mistral checkpoint, streamed a tensor at a time.
//
// loadModelWeights reads and validates every safetensors header, checks that each tensor the
// architecture needs is present with the right shape and an accepted dtype, and refuses
// layer tensors the config does not explain (e.g. a q_proj.bias when the config says no
// bias, or a layer index >= num_hidden_layers). Nothing else is read until you iterate.
import type { ModelConfig } from './config.ts';
import { parseModelConfig } from './config.ts';
import { bytesToFloat32 } from './dtype.ts';
import { openSafetensors, readTensorRaw, SafetensorsError, type SupportedDtype, type TensorInfo } from './safetensors.ts';
import type { ModelSource } from './source.ts';
import { LorafleetError } from '../../shaders/lib/errors.ts';

export class ModelWeightsError extends LorafleetError {
  constructor(
    message: string,
    readonly fileName: string,
    readonly tensorName?: string,
  ) {
    super(message, 'model_invalid');
    this.name = 'ModelWeightsError';
  }
}

export interface ExpectedTensor {
  name: string;
  shape: number[];
}

/** Every tensor the architecture needs, in upload order (embed, layer 0 …, norm, lm_head). */
export function expectedTensors(c: ModelConfig): ExpectedTensor[] {
  const H = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const out: ExpectedTensor[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, H] }];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    out.push({ name: p + 'input_layernorm.weight', shape: [H] });
    out.push({ name: p + 'self_attn.q_proj.weight', shape: [q, H] });
    out.push({ name: p + 'self_attn.k_proj.weight', shape: [kv, H] });
    out.push({ name: p + 'self_attn.v_proj.weight', shape: [kv, H] });
    if (c.qkvBias) {
      out.push({ name: p + 'self_attn.q_proj.bias', shape: [q] });
      out.push({ name: p + 'self_attn.k_proj.bias', shape: [kv] });
      out.push({ name: p + 'self_attn.v_proj.bias', shape: [kv] });
    }
    out.push({ name: p + 'self_attn.o_proj.weight', shape: [H, q] });
    out.push({ name: p + 'post_attention_layernorm.weight', shape: [H] });
    out.push({ name: p + 'mlp.gate_proj.weight', shape: [c.intermediateSize, H] });
    out.push({ name: p + 'mlp.up_proj.weight', shape: [c.intermediateSize, H] });
    out.push({ name: p + 'mlp.down_proj.weight', shape: [H, c.intermediateSize] });
  }
  out.push({ name: 'model.norm.weight', shape: [H] });
  if (!c.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [c.vocabSize, H] });
  return out;
}

export interface LoadedTensor {
  name: string;
  shape: number[];
  dtype: SupportedDtype;
  /** Shard file it came from. */
  file: string;
  /** Values as float32 (F16/BF16 converted exactly). Present unless `as: 'raw'`. */
  f32?: Float32Array;
  /** Raw little-endian bytes in `dtype` (upload f16 packed). Present when `as` is 'raw' or 'both'. */
  raw?: Uint8Array;
}

export interface LoadWeightsOptions {
  /** Accept only these storage dtypes (default: F32, F16, BF16). */
  dtypes?: SupportedDtype[];
}

export interface ModelWeights {
  config: ModelConfig;
  source: ModelSource;
  /** Expected tensors, validated, in upload order. */
  tensors: Map<string, TensorInfo>;
  /** Tensors present in the files but not used (e.g. rotary inv_freq, a tied lm_head). */
  ignored: string[];
  /** Sum of the byte sizes of the used tensors as stored. */
  totalBytes: number;
  /** Stream the used tensors one at a time, in upload order. */
  iterate(opts?: { as?: 'f32' | 'raw' | 'both' }): AsyncIterableIterator<LoadedTensor>;
  readF32(name: string): Promise<Float32Array>;
  readRaw(name: string): Promise<Uint8Array>;
}

const LAYER_RE = /^model\.layers\.(\d+)\./;

/** Read and validate the weights (headers only; no tensor data is read). */
export async function loadModelWeights(source: ModelSource, config: ModelConfig, opts: LoadWeightsOptions = {}): Promise<ModelWeights> {
  const st = await openSafetensors(source);
  const accept = opts.dtypes ?? ['F32', 'F16', 'BF16'];
  const expected = expectedTensors(config);
  const expectedNames = new Set(expected.map((e) => e.name));
  const where = (t?: TensorInfo) => (t ? t.file : st.files.length === 1 ? st.files[0]! : `${st.files.length} shards (${st.files.join(', ')})`);

  const tensors = new Map<string, TensorInfo>();
  let totalBytes = 0;
  for (const e of expected) {
    const t = st.tensors.get(e.name);
    if (!t) {
      throw new ModelWeightsError(`${source.name}/${where()}: missing tensor "${e.name}" (expected shape [${e.shape.join(', ')}])`, where(), e.name);
    }
    if (t.shape.length !== e.shape.length || t.shape.some((d, i) => d !== e.shape[i])) {
      throw new ModelWeightsError(
        `${source.name}/${t.file}: tensor "${e.name}" has shape [${t.shape.join(', ')}], config.json implies [${e.shape.join(', ')}]`,
        t.file,
        e.name,
      );
    }
    if (!accept.includes(t.dtype)) {
      throw new ModelWeightsError(`${source.name}/${t.file}: tensor "${e.name}" has dtype ${t.dtype}; accepted: ${accept.join(', ')}`, t.file, e.name);
    }
    tensors.set(e.name, t);
    totalBytes += t.end - t.start;
  }
  const ignored: string[] = [];
  for (const [name, t] of st.tensors) {
    if (expectedNames.has(name)) continue;
    const m = LAYER_RE.exec(name);
    if (m && !name.endsWith('.rotary_emb.inv_freq')) {
      const l = Number(m[1]);
      const why =
        l >= config.numLayers
          ? `layer ${l} but config.json has num_hidden_layers ${config.numLayers}`
          : /_proj\.bias$/.test(name)
            ? `a bias the config does not declare (${config.modelType}, qkvBias ${config.qkvBias})`
            : 'not part of the architecture';
      throw new ModelWeightsError(`${source.name}/${t.file}: unexpected tensor "${name}": ${why}`, t.file, name);
    }
    ignored.push(name);
  }

  const readRaw = async (name: string): Promise<Uint8Array> => {
    const t = tensors.get(name);
    if (!t) throw new ModelWeightsError(`${source.name}: no tensor "${name}"`, '', name);
    return readTensorRaw(source, t);
  };
  const readF32 = async (name: string): Promise<Float32Array> => bytesToFloat32(await readRaw(name), tensors.get(name)!.dtype);

  async function* iterate(o: { as?: 'f32' | 'raw' | 'both' } = {}): AsyncIterableIterator<LoadedTensor> {
    const as = o.as ?? 'f32';
    for (const t of tensors.values()) {
      const raw = await readTensorRaw(source, t);
      const lt: LoadedTensor = { name: t.name, shape: t.shape, dtype: t.dtype, file: t.file };
      if (as !== 'raw') lt.f32 = bytesToFloat32(raw, t.dtype);
      if (as !== 'f32') lt.raw = raw;
      yield lt;
    }
  }

  return { config, source, tensors, ignored, totalBytes, iterate, readF32, readRaw };
}

/** config.json from a source, errors naming `{source}/config.json`. */
export async function loadModelConfig(source: ModelSource): Promise<ModelConfig> {
  if (!(await source.exists('config.json'))) {
    throw new ModelWeightsError(`${source.name}/config.json: not found`, 'config.json');
  }
  return parseModelConfig(await source.readJson('config.json'), `${source.name}/config.json`);
}

export { SafetensorsError };
