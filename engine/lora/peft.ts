// LoRA adapters in the Hugging Face PEFT format: a directory with
//   adapter_config.json        { peft_type: "LORA", r, lora_alpha, target_modules, use_rslora, bias: "none", ... }
//   adapter_model.safetensors  base_model.model.model.layers.{N}.{self_attn|mlp}.{module}.lora_A.weight [r, in]
//                              base_model.model.model.layers.{N}.{self_attn|mlp}.{module}.lora_B.weight [out, r]
// Scaling: lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora (PEFT LoraLayer.update_layer).
// Targets: q/k/v/o/gate/up/down projections of a Llama-family model. Anything PEFT can write that this
// engine cannot serve exactly (DoRA, modules_to_save, bias, rank/alpha patterns, embedding adapters,
// fan_in_fan_out, LoRA bias) is rejected with a LoraAdapterError naming the file and the option.
import { nodeHost } from '../host.ts';
import { z } from 'zod';
import type { ModelConfig } from '../model/config.ts';
import { parseSafetensorsBuffer, writeSafetensors, SafetensorsError, type TensorToWrite } from '../model/safetensors.ts';
import { bytesToFloat32 } from '../model/dtype.ts';
import { LocalDirSource, type ModelSource } from '../model/source.ts';
import { LORA_MODULES, type LoraModule } from './hook.ts';
import { LoraAdapterError, type LoraAdapterErrorKind } from '../api/errors.ts';
export { LoraAdapterError, type LoraAdapterErrorKind };

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';



/** A/B of one (layer, module): A [r, in] and B [out, r], row-major float32. */
export interface LoraPair {
  A: Float32Array;
  B: Float32Array;
}

export interface LoraAdapter {
  name: string;
  r: number;
  alpha: number;
  useRslora: boolean;
  /** alpha / r, or alpha / sqrt(r) with rsLoRA. */
  scaling: number;
  /** Modules that have at least one (layer, module) pair, in LORA_MODULES order. */
  targetModules: LoraModule[];
  /** `${layer}.${module}` → pair (see loraKey). */
  weights: Map<string, LoraPair>;
  baseModel: string | null;
  /** float32 bytes of every A and B. */
  bytes: number;
}

export const loraKey = (layer: number, module: LoraModule): string => `${layer}.${module}`;

const MODULE_PARENT: Record<LoraModule, 'self_attn' | 'mlp'> = {
  q_proj: 'self_attn',
  k_proj: 'self_attn',
  v_proj: 'self_attn',
  o_proj: 'self_attn',
  gate_proj: 'mlp',
  up_proj: 'mlp',
  down_proj: 'mlp',
};

/** (in, out) features of a projection for this model. */
export function moduleDims(c: ModelConfig, m: LoraModule): { inDim: number; outDim: number } {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  switch (m) {
    case 'q_proj':
      return { inDim: c.hiddenSize, outDim: q };
    case 'k_proj':
    case 'v_proj':
      return { inDim: c.hiddenSize, outDim: kv };
    case 'o_proj':
      return { inDim: q, outDim: c.hiddenSize };
    case 'gate_proj':
    case 'up_proj':
      return { inDim: c.hiddenSize, outDim: c.intermediateSize };
    case 'down_proj':
      return { inDim: c.intermediateSize, outDim: c.hiddenSize };
  }
}

/** HF module path of a projection, e.g. `model.layers.3.self_attn.q_proj`. */
export const modulePath = (layer: number, m: LoraModule): string => `model.layers.${layer}.${MODULE_PARENT[m]}.${m}`;
/** PEFT tensor name of lora_A / lora_B. */
export const peftTensorName = (layer: number, m: LoraModule, ab: 'A' | 'B'): string => `base_model.model.${modulePath(layer, m)}.lora_${ab}.weight`;

export const scalingFor = (alpha: number, r: number, useRslora: boolean): number => (useRslora ? alpha / Math.sqrt(r) : alpha / r);

// ---------------------------------------------------------------- adapter_config.json

const intOrIntList = z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]);
const peftConfigSchema = z
  .object({
    peft_type: z.string().optional(),
    r: z.number().int().positive(),
    lora_alpha: z.number().finite(),
    target_modules: z.union([z.array(z.string()).min(1), z.string().min(1)]),
    use_rslora: z.boolean().optional(),
    bias: z.string().optional(),
    modules_to_save: z.array(z.string()).nullable().optional(),
    use_dora: z.boolean().optional(),
    fan_in_fan_out: z.boolean().optional(),
    rank_pattern: z.record(z.unknown()).nullable().optional(),
    alpha_pattern: z.record(z.unknown()).nullable().optional(),
    layers_to_transform: intOrIntList.nullable().optional(),
    lora_bias: z.boolean().optional(),
    base_model_name_or_path: z.string().nullable().optional(),
    target_parameters: z.array(z.string()).nullable().optional(),
    trainable_token_indices: z.unknown().optional(),
    layer_replication: z.unknown().optional(),
    init_lora_weights: z.union([z.boolean(), z.string()]).optional(),
    alora_invocation_tokens: z.unknown().optional(),
    arrow_config: z.unknown().optional(),
    use_bdlora: z.unknown().optional(),
  })
  .passthrough();

export interface PeftConfig {
  r: number;
  alpha: number;
  useRslora: boolean;
  /** Matches a module path (`model.layers.N.self_attn.q_proj`) the way PEFT does. */
  matches: (path: string) => boolean;
  /** target_modules as written. */
  targetModules: string[] | string;
  layersToTransform: number[] | null;
  baseModel: string | null;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function parsePeftConfig(json: unknown, file = ADAPTER_CONFIG): PeftConfig {
  const fail = (msg: string, kind: LoraAdapterErrorKind = 'config'): never => {
    throw new LoraAdapterError(`${file}: ${msg}`, kind, file);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('expected a JSON object');
  const parsed = peftConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.');
    const got = issue.path.reduce<unknown>((o, k) => (o as Record<string | number, unknown> | undefined)?.[k], json);
    fail(`${field || '(root)'}: ${issue.message} (got ${JSON.stringify(got)})`);
  }
  const c = parsed.data!;
  if (c.peft_type !== undefined && c.peft_type !== 'LORA') fail(`peft_type ${JSON.stringify(c.peft_type)} is not supported (only "LORA")`, 'unsupported');
  if ((c.bias ?? 'none') !== 'none') fail(`bias ${JSON.stringify(c.bias)} is not supported (only "none": the engine adds no trained biases)`, 'unsupported');
  if (c.modules_to_save && c.modules_to_save.length) {
    fail(`modules_to_save ${JSON.stringify(c.modules_to_save)} is not supported (fully trained copies of modules cannot be batched with other adapters)`, 'unsupported');
  }
  if (c.use_dora) fail('use_dora: true (DoRA) is not supported: only plain LoRA', 'unsupported');
  if (c.fan_in_fan_out) fail('fan_in_fan_out: true is not supported (Conv1D-style GPT-2 weights)', 'unsupported');
  if (c.lora_bias) fail('lora_bias: true is not supported', 'unsupported');
  if (c.rank_pattern && Object.keys(c.rank_pattern).length) fail(`rank_pattern ${JSON.stringify(c.rank_pattern)} is not supported (one rank per adapter)`, 'unsupported');
  if (c.alpha_pattern && Object.keys(c.alpha_pattern).length) fail(`alpha_pattern ${JSON.stringify(c.alpha_pattern)} is not supported (one alpha per adapter)`, 'unsupported');
  if (c.target_parameters && c.target_parameters.length) fail('target_parameters is not supported', 'unsupported');
  if (c.trainable_token_indices != null) fail('trainable_token_indices is not supported', 'unsupported');
  if (c.layer_replication != null) fail('layer_replication is not supported', 'unsupported');
  if (c.alora_invocation_tokens != null) fail('alora_invocation_tokens (activated LoRA) is not supported', 'unsupported');
  if (c.arrow_config != null) fail('arrow_config (Arrow routing) is not supported', 'unsupported');
  if (c.use_bdlora != null && c.use_bdlora !== false) fail('use_bdlora is not supported', 'unsupported');
  const init = c.init_lora_weights;
  if (typeof init === 'string' && /^(pissa|olora|loftq|corda|lora_ga)/i.test(init)) {
    // These initialisations change the base weights too: the saved A/B only fit the modified base
    // unless PEFT converted them (save_pretrained(path_initial_model_for_weight_conversion=...)).
    fail(`init_lora_weights ${JSON.stringify(init)} modifies the base model's weights; convert the adapter to plain LoRA first (PEFT save_pretrained with path_initial_model_for_weight_conversion)`, 'unsupported');
  }

  let matches: (p: string) => boolean;
  const tm = c.target_modules;
  if (typeof tm === 'string') {
    if (tm === 'all-linear') {
      matches = (p) => LORA_MODULES.some((m) => p.endsWith(`.${m}`));
    } else {
      // PEFT: a string is a regex that must match the whole module name (re.fullmatch).
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${tm})$`);
      } catch (e) {
        return fail(`target_modules regex ${JSON.stringify(tm)} is invalid (${(e as Error).message})`);
      }
      matches = (p) => re.test(p);
    }
  } else {
    // PEFT: a list entry matches a module whose name equals it or ends with "." + it.
    for (const t of tm) {
      const last = t.split('.').pop()!;
      if (!(LORA_MODULES as readonly string[]).includes(last)) {
        fail(`target_modules entry ${JSON.stringify(t)} is not supported (supported: ${LORA_MODULES.join(', ')})`, 'unsupported');
      }
    }
    const res = tm.map((t) => new RegExp(`(^|\\.)${escapeRe(t)}$`));
    matches = (p) => res.some((re) => re.test(p));
  }
  const ltt = c.layers_to_transform;
  return {
    r: c.r,
    alpha: c.lora_alpha,
    useRslora: c.use_rslora ?? false,
    matches,
    targetModules: tm,
    layersToTransform: ltt == null ? null : Array.isArray(ltt) ? ltt : [ltt],
    baseModel: c.base_model_name_or_path ?? null,
  };
}

// ---------------------------------------------------------------- adapter_model.safetensors

const TENSOR_RE = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)(?:\.([A-Za-z0-9_-]+))?\.weight$/;

/**
 * Load and validate a PEFT LoRA adapter against a base model config.
 * `source`: a directory path (Node) or any ModelSource (memory, hub URL).
 */
export async function loadPeftAdapter(source: ModelSource | string, config: ModelConfig, name?: string): Promise<LoraAdapter> {
  const src = typeof source === 'string' ? new LocalDirSource(source) : source;
  const where = (f: string) => `${src.name}/${f}`;
  if (!(await src.exists(ADAPTER_CONFIG))) throw new LoraAdapterError(`${where(ADAPTER_CONFIG)}: not found (not a PEFT adapter directory?)`, 'missing', ADAPTER_CONFIG);
  let json: unknown;
  try {
    json = await src.readJson(ADAPTER_CONFIG);
  } catch (e) {
    throw new LoraAdapterError(`${where(ADAPTER_CONFIG)}: ${(e as Error).message}`, 'corrupt', ADAPTER_CONFIG);
  }
  const pc = parsePeftConfig(json, where(ADAPTER_CONFIG));
  if (!(await src.exists(ADAPTER_WEIGHTS))) {
    const bin = (await src.exists('adapter_model.bin')) ? ' (found adapter_model.bin: pickled PyTorch weights are not supported, re-save with safe_serialization=True)' : '';
    throw new LoraAdapterError(`${where(ADAPTER_WEIGHTS)}: not found${bin}`, 'missing', ADAPTER_WEIGHTS);
  }
  let bytes: Uint8Array;
  let header;
  try {
    bytes = await src.readBytes(ADAPTER_WEIGHTS);
    header = parseSafetensorsBuffer(bytes, where(ADAPTER_WEIGHTS));
  } catch (e) {
    if (e instanceof SafetensorsError) throw new LoraAdapterError(`corrupt adapter weights: ${e.message}`, 'corrupt', ADAPTER_WEIGHTS);
    throw e;
  }
  const file = where(ADAPTER_WEIGHTS);
  const found = new Map<string, { A?: Float32Array; B?: Float32Array }>();
  const modules = new Set<LoraModule>();
  for (const info of header.tensors.values()) {
    const n = info.name;
    const bad = (msg: string, kind: LoraAdapterErrorKind = 'unsupported'): never => {
      throw new LoraAdapterError(`${file}: tensor "${n}": ${msg}`, kind, ADAPTER_WEIGHTS);
    };
    if (n.includes('lora_magnitude_vector')) bad('DoRA magnitude vectors are not supported (use_dora)');
    if (n.includes('lora_embedding_')) bad('LoRA on embeddings is not supported');
    if (n.includes('modules_to_save')) bad('modules_to_save weights are not supported');
    const m = TENSOR_RE.exec(n);
    if (!m) {
      if (/\.lora_B(\.[^.]+)?\.bias$/.test(n)) bad('LoRA bias (lora_bias) is not supported');
      bad('not a LoRA A/B weight of a Llama-family q/k/v/o/gate/up/down projection (expected base_model.model.model.layers.N.{self_attn|mlp}.<module>.lora_{A|B}.weight)');
    }
    const [, ls, parent, mod, ab] = m!;
    if (!(LORA_MODULES as readonly string[]).includes(mod!) || MODULE_PARENT[mod as LoraModule] !== parent) bad(`module ${parent}.${mod} is not supported (supported: ${LORA_MODULES.join(', ')})`);
    const module = mod as LoraModule;
    const layer = Number(ls);
    if (layer >= config.numLayers) bad(`layer ${layer} does not exist: the base model has ${config.numLayers} layers (adapter trained for a different base model?)`, 'shape');
    if (!pc.matches(modulePath(layer, module))) bad(`module ${modulePath(layer, module)} is not covered by target_modules ${JSON.stringify(pc.targetModules)}`, 'config');
    if (pc.layersToTransform && !pc.layersToTransform.includes(layer)) bad(`layer ${layer} is not in layers_to_transform ${JSON.stringify(pc.layersToTransform)}`, 'config');
    const { inDim, outDim } = moduleDims(config, module);
    const want = ab === 'A' ? [pc.r, inDim] : [outDim, pc.r];
    const got = info.shape;
    if (got.length !== 2 || got[0] !== want[0] || got[1] !== want[1]) {
      const rankHint = got.length === 2 && (ab === 'A' ? got[0] : got[1]) !== pc.r && (ab === 'A' ? got[1] === inDim : got[0] === outDim);
      bad(
        rankHint
          ? `shape [${got.join(', ')}] does not match r = ${pc.r} from adapter_config.json (expected [${want.join(', ')}])`
          : `shape [${got.join(', ')}] does not fit the base model: lora_${ab} of ${module} must be [${want.join(', ')}] for hidden ${config.hiddenSize}, intermediate ${config.intermediateSize}, ${config.numHeads}×${config.headDim} q / ${config.numKvHeads}×${config.headDim} kv (adapter trained for a different base model?)`,
        'shape',
      );
    }
    const data = bytesToFloat32(bytes!.subarray(info.start, info.end), info.dtype);
    for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) bad(`value ${data[i]} at index ${i} is not finite`, 'corrupt');
    const key = loraKey(layer, module);
    const e = found.get(key) ?? {};
    if (e[ab as 'A' | 'B']) bad(`duplicate lora_${ab} for ${modulePath(layer, module)}`, 'corrupt');
    e[ab as 'A' | 'B'] = data;
    found.set(key, e);
    modules.add(module);
  }
  const weights = new Map<string, LoraPair>();
  for (const [key, e] of found) {
    const [l, mod] = key.split('.') as [string, LoraModule];
    if (!e.A || !e.B) {
      throw new LoraAdapterError(`${file}: ${modulePath(Number(l), mod)} has lora_${e.A ? 'A' : 'B'} but no lora_${e.A ? 'B' : 'A'}`, 'corrupt', ADAPTER_WEIGHTS);
    }
    weights.set(key, { A: e.A, B: e.B });
  }
  if (!weights.size) throw new LoraAdapterError(`${file}: no LoRA weights found`, 'corrupt', ADAPTER_WEIGHTS);
  return makeLoraAdapter(name ?? src.name, pc.r, pc.alpha, pc.useRslora, weights, pc.baseModel);
}

/** A LoraAdapter from its (layer.module → A/B) weights; scaling per PEFT (alpha/r, or alpha/√r with rsLoRA). */
export function makeLoraAdapter(name: string, r: number, alpha: number, useRslora: boolean, weights: Map<string, LoraPair>, baseModel: string | null): LoraAdapter {
  const mods = new Set<string>();
  let bytes = 0;
  for (const [k, p] of weights) {
    mods.add(k.split('.')[1]!);
    bytes += (p.A.length + p.B.length) * 4;
  }
  return {
    name,
    r,
    alpha,
    useRslora,
    scaling: scalingFor(alpha, r, useRslora),
    targetModules: LORA_MODULES.filter((m) => mods.has(m)),
    weights,
    baseModel,
    bytes,
  };
}

// ---------------------------------------------------------------- writer

export interface PeftAdapterSpec {
  r: number;
  alpha: number;
  targetModules: LoraModule[];
  useRslora?: boolean;
  /** `${layer}.${module}` → A [r, in], B [out, r] (see loraKey). */
  tensors: Map<string, LoraPair>;
  baseModel?: string | null;
  /** Stored dtype (default F32). */
  dtype?: 'F32' | 'F16' | 'BF16';
}

/** The two files of a PEFT adapter directory, in memory (for IndexedDB, MemorySource, or disk). */
export function encodePeftAdapter(spec: PeftAdapterSpec): Record<string, Uint8Array> {
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: spec.baseModel ?? null,
    r: spec.r,
    lora_alpha: spec.alpha,
    lora_dropout: 0,
    target_modules: [...spec.targetModules],
    use_rslora: spec.useRslora ?? false,
    use_dora: false,
    bias: 'none',
    modules_to_save: null,
    fan_in_fan_out: false,
    init_lora_weights: true,
    rank_pattern: {},
    alpha_pattern: {},
    inference_mode: true,
  };
  const tensors: Record<string, TensorToWrite> = {};
  const keys = [...spec.tensors.keys()].sort((a, b) => {
    const [la, ma] = a.split('.'), [lb, mb] = b.split('.');
    return Number(la) - Number(lb) || LORA_MODULES.indexOf(ma as LoraModule) - LORA_MODULES.indexOf(mb as LoraModule);
  });
  const dtype = spec.dtype ?? 'F32';
  for (const key of keys) {
    const [l, m] = key.split('.') as [string, LoraModule];
    const { A, B } = spec.tensors.get(key)!;
    if (A.length % spec.r || B.length % spec.r) throw new Error(`encodePeftAdapter: ${key}: A (${A.length}) / B (${B.length}) not multiples of r = ${spec.r}`);
    tensors[peftTensorName(Number(l), m, 'A')] = { dtype, shape: [spec.r, A.length / spec.r], data: A };
    tensors[peftTensorName(Number(l), m, 'B')] = { dtype, shape: [B.length / spec.r, spec.r], data: B };
  }
  return {
    [ADAPTER_CONFIG]: new TextEncoder().encode(JSON.stringify(config, null, 2)),
    [ADAPTER_WEIGHTS]: writeSafetensors(tensors, { format: 'pt' }),
  };
}

/** Writes a PEFT adapter directory (Node). */
export async function savePeftAdapter(dir: string, spec: PeftAdapterSpec): Promise<void> {
  const { fs, path } = nodeHost('savePeftAdapter');
  await fs.mkdir(dir, { recursive: true });
  for (const [f, bytes] of Object.entries(encodePeftAdapter(spec))) await fs.writeFile(path.join(dir, f), bytes);
}

export function adapterSpec(a: LoraAdapter): PeftAdapterSpec {
  return { r: a.r, alpha: a.alpha, targetModules: a.targetModules, useRslora: a.useRslora, tensors: a.weights, baseModel: a.baseModel };
}
