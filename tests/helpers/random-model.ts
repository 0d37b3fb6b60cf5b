// Random-weight Hugging Face model directories for any config: test presets (tiny, every
// architecture feature) and real shapes (SmolLM2-135M, Qwen2.5-0.5B) for benchmarks.
//
// Weights (deterministic from `seed`, tensor by tensor in expectedTensors() order):
//   - default std 'fan-in': every linear weight N(0, 1/sqrt(in_features)), embeddings
//     N(0, 1/sqrt(hidden)) — activations stay O(1), attention is far from uniform and
//     logits have O(1) spread, so kernel bugs show up in the outputs;
//   - or a fixed `std` (e.g. 0.02 like HF's initializer_range) for every matrix;
//   - RMSNorm weights 1 + N(0, 0.1) (not exactly 1, so a kernel that forgets the norm
//     weight fails), q/k/v biases N(0, 0.1).
import type { ModelConfig } from '../../engine/model/config.ts';
import { toHfConfigJson } from '../../engine/model/config.ts';
import { encodeSafetensorsHeader, encodeTensorData, writeSafetensors, type SupportedDtype } from '../../engine/model/safetensors.ts';
import { expectedTensors } from '../../engine/model/weights.ts';
import { bytesToFloat32, float32ToBytes } from '../../engine/model/dtype.ts';
import { Rng } from '../../shaders/lib/random.ts';
import type { RefWeights } from '../../reference/llama.ts';

const base: Pick<ModelConfig, 'maxPositions' | 'rmsNormEps' | 'ropeTheta' | 'ropeScaling' | 'bosTokenId' | 'eosTokenIds' | 'slidingWindow'> = {
  maxPositions: 256,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  bosTokenId: 1,
  eosTokenIds: [2],
  slidingWindow: null,
};

export const PRESETS = {
  /** llama, GQA 2, tied, head_dim 16, vocab 512 (fits the stories260K tokenizer). */
  'tiny-llama': { ...base, modelType: 'llama', hiddenSize: 64, intermediateSize: 173, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, vocabSize: 512, tieWordEmbeddings: true, qkvBias: false },
  /** llama, MHA (GQA 1), untied lm_head, vocab 300. */
  'tiny-llama-mha': { ...base, modelType: 'llama', hiddenSize: 48, intermediateSize: 97, numLayers: 2, numHeads: 6, numKvHeads: 6, headDim: 8, vocabSize: 300, tieWordEmbeddings: false, qkvBias: false },
  /**
   * llama, GQA 4, untied, head_dim 12, Llama-3 rope scaling with a 32-position original
   * context so the 6 frequencies fall in all three regimes (high / smoothed / low).
   */
  'tiny-llama3': {
    ...base, modelType: 'llama', hiddenSize: 96, intermediateSize: 161, numLayers: 2, numHeads: 8, numKvHeads: 2, headDim: 12, vocabSize: 512,
    tieWordEmbeddings: false, qkvBias: false, ropeTheta: 10000, maxPositions: 256,
    ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 32 },
  },
  /** qwen2: q/k/v bias, GQA 2, tied, rope_theta 1e6, eps 1e-6, vocab 400. */
  'tiny-qwen2': {
    ...base, modelType: 'qwen2', hiddenSize: 64, intermediateSize: 139, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, vocabSize: 400,
    tieWordEmbeddings: true, qkvBias: true, ropeTheta: 1_000_000, rmsNormEps: 1e-6,
  },
  /** mistral: GQA 4, sliding window 4, untied, hidden 32, vocab 300. */
  'tiny-mistral': {
    ...base, modelType: 'mistral', hiddenSize: 32, intermediateSize: 75, numLayers: 2, numHeads: 4, numKvHeads: 1, headDim: 8, vocabSize: 300,
    tieWordEmbeddings: false, qkvBias: false, slidingWindow: 4,
  },
  /** HuggingFaceTB/SmolLM2-135M shapes. */
  'smollm2-135m': {
    modelType: 'llama', hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9, numKvHeads: 3, headDim: 64, vocabSize: 49152,
    maxPositions: 8192, rmsNormEps: 1e-5, ropeTheta: 100000, ropeScaling: null, tieWordEmbeddings: true, qkvBias: false,
    bosTokenId: 0, eosTokenIds: [0], slidingWindow: null,
  },
  /** Qwen/Qwen2.5-0.5B shapes. */
  'qwen2.5-0.5b': {
    modelType: 'qwen2', hiddenSize: 896, intermediateSize: 4864, numLayers: 24, numHeads: 14, numKvHeads: 2, headDim: 64, vocabSize: 151936,
    maxPositions: 32768, rmsNormEps: 1e-6, ropeTheta: 1_000_000, ropeScaling: null, tieWordEmbeddings: true, qkvBias: true,
    bosTokenId: 151643, eosTokenIds: [151643], slidingWindow: null,
  },
} satisfies Record<string, ModelConfig>;

export type PresetName = keyof typeof PRESETS;
export const TINY_PRESETS: PresetName[] = ['tiny-llama', 'tiny-llama-mha', 'tiny-llama3', 'tiny-qwen2', 'tiny-mistral'];

export function presetConfig(name: PresetName): ModelConfig {
  return structuredClone(PRESETS[name]) as ModelConfig;
}

export interface RandomWeightOptions {
  seed?: number;
  /** 'fan-in' (default) or a fixed standard deviation for every matrix. */
  std?: 'fan-in' | number;
}

/**
 * Random tensors one at a time (name, shape, float32 values), deterministic from the seed.
 * Each tensor gets its own generator seeded from (seed, index), so tensors can be regenerated
 * independently.
 */
export function* randomTensors(config: ModelConfig, opts: RandomWeightOptions = {}): Generator<{ name: string; shape: number[]; data: Float32Array }> {
  const seed = opts.seed ?? 1;
  const specs = expectedTensors(config);
  for (let i = 0; i < specs.length; i++) {
    const { name, shape } = specs[i]!;
    const rng = new Rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0);
    const n = shape.reduce((a, d) => a * d, 1);
    let data: Float32Array;
    if (name.endsWith('layernorm.weight') || name === 'model.norm.weight') data = rng.normalF32(n, 0.1, 1);
    else if (name.endsWith('.bias')) data = rng.normalF32(n, 0.1);
    else {
      const fanIn = name === 'model.embed_tokens.weight' || name === 'lm_head.weight' ? config.hiddenSize : shape[1]!;
      data = rng.normalF32(n, opts.std === undefined || opts.std === 'fan-in' ? 1 / Math.sqrt(fanIn) : opts.std);
    }
    yield { name, shape, data };
  }
}

/** Round values through the storage dtype (what a reader of an F16/BF16 file sees). */
function roundTo(data: Float32Array, dtype: SupportedDtype): Float32Array {
  return dtype === 'F32' ? data : bytesToFloat32(float32ToBytes(data, dtype), dtype);
}

/** Random weights as float64 for the reference (values as they would be read back from `dtype` storage). */
export function randomRefWeights(config: ModelConfig, opts: RandomWeightOptions & { dtype?: SupportedDtype } = {}): RefWeights {
  const w: RefWeights = new Map();
  for (const t of randomTensors(config, opts)) w.set(t.name, { shape: t.shape, data: Float64Array.from(roundTo(t.data, opts.dtype ?? 'F32')) });
  return w;
}

export interface RandomModelOptions extends RandomWeightOptions {
  /** Storage dtype (default F32). */
  dtype?: SupportedDtype;
  /** Copy tokenizer.json / tokenizer_config.json (and special_tokens_map.json) from this directory. */
  tokenizerFrom?: string;
  /** Split into shards of at most this many bytes plus model.safetensors.index.json. */
  shardBytes?: number;
}

const encJson = (o: unknown) => new TextEncoder().encode(JSON.stringify(o, null, 2) + '\n');

/**
 * In-memory files of a random model (config.json, generation_config.json, model.safetensors,
 * or shards + index). For tiny configs; use writeRandomModel for real shapes.
 */
export function randomModelFiles(config: ModelConfig, opts: RandomModelOptions = {}): Record<string, Uint8Array> {
  const dtype = opts.dtype ?? 'F32';
  const files: Record<string, Uint8Array> = {
    'config.json': encJson({ ...toHfConfigJson(config), torch_dtype: torchDtype(dtype) }),
    'generation_config.json': encJson(generationConfig(config)),
  };
  const tensors = [...randomTensors(config, opts)];
  for (const shard of planShards(tensors.map((t) => ({ name: t.name, dtype, shape: t.shape })), opts.shardBytes)) {
    const rec: Record<string, { dtype: SupportedDtype; shape: number[]; data: Float32Array }> = {};
    for (const s of shard.specs) rec[s.name] = { dtype, shape: s.shape, data: tensors.find((t) => t.name === s.name)!.data };
    files[shard.file] = writeSafetensors(rec, { format: 'pt' });
  }
  const index = indexJson(tensors.map((t) => ({ name: t.name, dtype, shape: t.shape })), opts.shardBytes);
  if (index) files['model.safetensors.index.json'] = encJson(index);
  return files;
}

/**
 * Write a random model directory (Node). Streams tensor by tensor, so real-shape models
 * (Qwen2.5-0.5B in F32 is ~2 GB) never sit whole in memory. Returns the file names written.
 */
export async function writeRandomModel(dir: string, configOrPreset: ModelConfig | PresetName, opts: RandomModelOptions = {}): Promise<string[]> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const config = typeof configOrPreset === 'string' ? presetConfig(configOrPreset) : configOrPreset;
  const dtype = opts.dtype ?? 'F32';
  await fs.mkdir(dir, { recursive: true });
  const written: string[] = [];
  const put = async (f: string, b: Uint8Array) => {
    await fs.writeFile(path.join(dir, f), b);
    written.push(f);
  };
  await put('config.json', encJson({ ...toHfConfigJson(config), torch_dtype: torchDtype(dtype) }));
  await put('generation_config.json', encJson(generationConfig(config)));
  const specs = expectedTensors(config).map((e) => ({ name: e.name, dtype, shape: e.shape }));
  const shards = planShards(specs, opts.shardBytes);
  const gen = randomTensors(config, opts);
  for (const shard of shards) {
    const fh = await fs.open(path.join(dir, shard.file), 'w');
    try {
      await fh.write(encodeSafetensorsHeader(shard.specs, { format: 'pt' }));
      for (const s of shard.specs) {
        const t = gen.next().value!;
        if (t.name !== s.name) throw new Error('writeRandomModel: tensor order mismatch');
        await fh.write(encodeTensorData(t.name, { dtype, shape: t.shape, data: t.data }));
      }
    } finally {
      await fh.close();
    }
    written.push(shard.file);
  }
  const index = indexJson(specs, opts.shardBytes);
  if (index) await put('model.safetensors.index.json', encJson(index));
  if (opts.tokenizerFrom) {
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
      try {
        await fs.copyFile(path.join(opts.tokenizerFrom, f), path.join(dir, f));
        written.push(f);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || f === 'tokenizer.json') throw e;
      }
    }
  }
  return written;
}

function torchDtype(d: SupportedDtype): string {
  return { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[d];
}

function generationConfig(c: ModelConfig): Record<string, unknown> {
  return { bos_token_id: c.bosTokenId, eos_token_id: c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds, do_sample: false };
}

interface Spec {
  name: string;
  dtype: SupportedDtype;
  shape: number[];
}

function planShards(specs: Spec[], shardBytes?: number): { file: string; specs: Spec[] }[] {
  if (!shardBytes) return [{ file: 'model.safetensors', specs }];
  const groups: Spec[][] = [[]];
  let cur = 0;
  for (const s of specs) {
    const n = s.shape.reduce((a, d) => a * d, 1) * (s.dtype === 'F32' ? 4 : 2);
    if (cur > 0 && cur + n > shardBytes) {
      groups.push([]);
      cur = 0;
    }
    groups[groups.length - 1]!.push(s);
    cur += n;
  }
  const N = String(groups.length).padStart(5, '0');
  return groups.map((g, i) => ({ file: `model-${String(i + 1).padStart(5, '0')}-of-${N}.safetensors`, specs: g }));
}

function indexJson(specs: Spec[], shardBytes?: number): Record<string, unknown> | null {
  if (!shardBytes) return null;
  const weight_map: Record<string, string> = {};
  let total = 0;
  for (const sh of planShards(specs, shardBytes)) {
    for (const s of sh.specs) {
      weight_map[s.name] = sh.file;
      total += s.shape.reduce((a, d) => a * d, 1) * (s.dtype === 'F32' ? 4 : 2);
    }
  }
  return { metadata: { total_size: total }, weight_map };
}
