// Hugging Face `config.json` → normalised ModelConfig for llama / qwen2 / mistral.
//
// Every error names the file and the field, e.g.
//   "config.json: num_key_value_heads (3) must divide num_attention_heads (8)".
import { z } from 'zod';
import { LorafleetError } from '../../shaders/lib/errors.ts';

export type ModelType = 'llama' | 'qwen2' | 'mistral';

export type RopeScaling =
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositions: number;
    }
  | { type: 'linear'; factor: number };

export interface ModelConfig {
  modelType: ModelType;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** From config `head_dim` when given, else hiddenSize / numHeads. */
  headDim: number;
  vocabSize: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** null for plain RoPE (also for `rope_type: "default"`). */
  ropeScaling: RopeScaling | null;
  tieWordEmbeddings: boolean;
  /**
   * Bias on q/k/v projections: qwen2 always. llama/mistral `attention_bias: true` is refused
   * (HF then biases o_proj too), so it is false for them.
   */
  qkvBias: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** Sliding-window attention size, or null when every position attends to all previous ones. */
  slidingWindow?: number | null;
}

export class ModelConfigError extends LorafleetError {
  constructor(
    message: string,
    readonly fileName: string,
    readonly field?: string,
  ) {
    super(message, 'model_invalid');
    this.name = 'ModelConfigError';
  }
}

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const posNum = z.number().positive().finite();

const ropeScalingSchema = z
  .object({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    factor: posNum.optional(),
    low_freq_factor: posNum.optional(),
    high_freq_factor: posNum.optional(),
    original_max_position_embeddings: posInt.optional(),
  })
  .passthrough();

const baseSchema = z
  .object({
    model_type: z.string(),
    hidden_size: posInt,
    intermediate_size: posInt,
    num_hidden_layers: posInt,
    num_attention_heads: posInt,
    num_key_value_heads: posInt.optional().nullable(),
    head_dim: posInt.optional().nullable(),
    vocab_size: posInt,
    max_position_embeddings: posInt.optional(),
    rms_norm_eps: posNum.optional(),
    rope_theta: posNum.optional(),
    rope_scaling: ropeScalingSchema.optional().nullable(),
    tie_word_embeddings: z.boolean().optional(),
    attention_bias: z.boolean().optional(),
    mlp_bias: z.boolean().optional(),
    hidden_act: z.string().optional(),
    bos_token_id: nonNegInt.optional().nullable(),
    eos_token_id: z.union([nonNegInt, z.array(nonNegInt)]).optional().nullable(),
    sliding_window: posInt.optional().nullable(),
    use_sliding_window: z.boolean().optional(),
    max_window_layers: nonNegInt.optional().nullable(),
  })
  .passthrough();

const SUPPORTED: readonly ModelType[] = ['llama', 'qwen2', 'mistral'];

/**
 * Parse and validate a Hugging Face config.json (already JSON-parsed, or a string).
 * `fileName` only appears in error messages.
 */
export function parseModelConfig(json: unknown, fileName = 'config.json'): ModelConfig {
  const fail = (field: string | undefined, msg: string): never => {
    throw new ModelConfigError(`${fileName}: ${msg}`, fileName, field);
  };
  if (typeof json === 'string') {
    try {
      json = JSON.parse(json);
    } catch (e) {
      fail(undefined, `not valid JSON (${(e as Error).message})`);
    }
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    fail(undefined, 'expected a JSON object');
  }
  const mt = (json as Record<string, unknown>).model_type;
  if (mt === undefined) fail('model_type', 'model_type is missing');
  if (typeof mt !== 'string' || !SUPPORTED.includes(mt as ModelType)) {
    fail('model_type', `unsupported model_type ${JSON.stringify(mt)} (supported: ${SUPPORTED.join(', ')})`);
  }
  const parsed = baseSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.');
    const got = issue.path.reduce<unknown>((o, k) => (o as Record<string | number, unknown> | undefined)?.[k], json);
    fail(field, `${field}: ${issue.message} (got ${JSON.stringify(got)})`);
  }
  const c = parsed.data!;
  const modelType = c.model_type as ModelType;

  const numHeads = c.num_attention_heads;
  const numKvHeads = c.num_key_value_heads ?? numHeads;
  if (numKvHeads > numHeads || numHeads % numKvHeads !== 0) {
    fail(
      'num_key_value_heads',
      `num_key_value_heads (${numKvHeads}) must divide num_attention_heads (${numHeads})`,
    );
  }
  let headDim: number;
  if (c.head_dim != null) {
    headDim = c.head_dim;
  } else {
    if (c.hidden_size % numHeads !== 0) {
      fail('num_attention_heads', `num_attention_heads (${numHeads}) must divide hidden_size (${c.hidden_size}) when head_dim is not given`);
    }
    headDim = c.hidden_size / numHeads;
  }
  if (headDim % 2 !== 0) fail('head_dim', `head_dim (${headDim}) must be even for RoPE`);
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') {
    fail('hidden_act', `hidden_act ${JSON.stringify(c.hidden_act)} is not supported (only "silu")`);
  }
  if (c.mlp_bias === true) fail('mlp_bias', 'mlp_bias: true is not supported');

  let ropeScaling: RopeScaling | null = null;
  if (c.rope_scaling != null) {
    const rs = c.rope_scaling;
    const kind = rs.rope_type ?? rs.type;
    const need = (v: number | undefined, name: string): number =>
      v === undefined ? fail(`rope_scaling.${name}`, `rope_scaling.${name} is required for rope_type ${JSON.stringify(kind)}`) : v;
    if (kind === 'llama3') {
      const lowFreqFactor = need(rs.low_freq_factor, 'low_freq_factor');
      const highFreqFactor = need(rs.high_freq_factor, 'high_freq_factor');
      if (!(highFreqFactor > lowFreqFactor)) {
        fail('rope_scaling.high_freq_factor', `rope_scaling.high_freq_factor (${highFreqFactor}) must be greater than low_freq_factor (${lowFreqFactor})`);
      }
      ropeScaling = {
        type: 'llama3',
        factor: need(rs.factor, 'factor'),
        lowFreqFactor,
        highFreqFactor,
        originalMaxPositions: need(rs.original_max_position_embeddings, 'original_max_position_embeddings'),
      };
    } else if (kind === 'linear') {
      ropeScaling = { type: 'linear', factor: need(rs.factor, 'factor') };
    } else if (kind === 'default') {
      ropeScaling = null;
    } else {
      fail('rope_scaling.rope_type', `rope_scaling type ${JSON.stringify(kind)} is not supported (supported: llama3, linear, default)`);
    }
  }

  // qwen2: q/k/v always biased, o_proj never. llama/mistral `attention_bias: true` biases
  // q, k, v AND o_proj in HF (LlamaAttention: o_proj = nn.Linear(..., bias=config.attention_bias)).
  // An o_proj bias has no field in ModelConfig and no GPU kernel path, so it is refused here
  // rather than loaded and silently ignored.
  let qkvBias: boolean;
  if (modelType === 'qwen2') qkvBias = true;
  else if (c.attention_bias === true) {
    return fail('attention_bias', `attention_bias: true is not supported for ${modelType} (HF then also adds an o_proj bias, which this engine does not implement)`);
  } else qkvBias = false;

  // Mistral: one window for every layer. Qwen2 (HF Qwen2Attention): the window applies only when
  // use_sliding_window and only to layers >= max_window_layers (HF default 28).
  let slidingWindow: number | null = null;
  if (modelType === 'mistral') slidingWindow = c.sliding_window ?? null;
  else if (modelType === 'qwen2' && c.use_sliding_window && c.sliding_window != null) {
    const mwl = c.max_window_layers ?? 28;
    if (mwl === 0) slidingWindow = c.sliding_window;
    else if (mwl < c.num_hidden_layers) {
      fail('max_window_layers', `max_window_layers (${mwl}) < num_hidden_layers (${c.num_hidden_layers}) with use_sliding_window: a per-layer sliding window is not supported`);
    }
  }

  const eos = c.eos_token_id;
  const eosTokenIds = eos == null ? [] : Array.isArray(eos) ? [...eos] : [eos];
  for (const id of eosTokenIds) {
    if (id >= c.vocab_size) fail('eos_token_id', `eos_token_id ${id} is outside vocab_size ${c.vocab_size}`);
  }
  const bosTokenId = c.bos_token_id ?? null;
  if (bosTokenId !== null && bosTokenId >= c.vocab_size) {
    fail('bos_token_id', `bos_token_id ${bosTokenId} is outside vocab_size ${c.vocab_size}`);
  }

  return {
    modelType,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: c.vocab_size,
    maxPositions: c.max_position_embeddings ?? 2048,
    rmsNormEps: c.rms_norm_eps ?? 1e-6,
    ropeTheta: c.rope_theta ?? 10000,
    ropeScaling,
    tieWordEmbeddings: c.tie_word_embeddings ?? false,
    qkvBias,
    bosTokenId,
    eosTokenIds,
    slidingWindow,
  };
}

/** Inverse of parseModelConfig: a HF-style config.json object (used by the random-model writer). */
export function toHfConfigJson(cfg: ModelConfig): Record<string, unknown> {
  const arch = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', mistral: 'MistralForCausalLM' }[cfg.modelType];
  const out: Record<string, unknown> = {
    architectures: [arch],
    model_type: cfg.modelType,
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numLayers,
    num_attention_heads: cfg.numHeads,
    num_key_value_heads: cfg.numKvHeads,
    head_dim: cfg.headDim,
    vocab_size: cfg.vocabSize,
    max_position_embeddings: cfg.maxPositions,
    rms_norm_eps: cfg.rmsNormEps,
    rope_theta: cfg.ropeTheta,
    hidden_act: 'silu',
    tie_word_embeddings: cfg.tieWordEmbeddings,
    bos_token_id: cfg.bosTokenId,
    eos_token_id: cfg.eosTokenIds.length === 1 ? cfg.eosTokenIds[0] : cfg.eosTokenIds,
  };
  if (cfg.modelType !== 'qwen2') {
    if (cfg.qkvBias) throw new Error(`toHfConfigJson: ${cfg.modelType} with q/k/v bias has no HF config form (attention_bias also biases o_proj)`);
    out.attention_bias = false;
  } else if (!cfg.qkvBias) throw new Error('toHfConfigJson: qwen2 always has q/k/v bias');
  if (cfg.ropeScaling?.type === 'llama3') {
    out.rope_scaling = {
      rope_type: 'llama3',
      factor: cfg.ropeScaling.factor,
      low_freq_factor: cfg.ropeScaling.lowFreqFactor,
      high_freq_factor: cfg.ropeScaling.highFreqFactor,
      original_max_position_embeddings: cfg.ropeScaling.originalMaxPositions,
    };
  } else if (cfg.ropeScaling?.type === 'linear') {
    out.rope_scaling = { rope_type: 'linear', factor: cfg.ropeScaling.factor };
  }
  if (cfg.slidingWindow != null) {
    out.sliding_window = cfg.slidingWindow;
    if (cfg.modelType === 'qwen2') {
      out.use_sliding_window = true;
      out.max_window_layers = 0;
    }
  }
  return out;
}
