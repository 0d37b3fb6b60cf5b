// The float64 oracle: a Llama / Qwen2 / Mistral forward pass in plain TypeScript,
// llama2.c-style, written to be read next to HF transformers' modeling_llama.py.
// Every GPU test compares against this. No cleverness: full recomputation, no KV cache,
// Float64Array everywhere.
//
// Weights use Hugging Face tensor names:
//   model.embed_tokens.weight                       [vocab, hidden]
//   model.layers.{l}.input_layernorm.weight         [hidden]
//   model.layers.{l}.self_attn.{q,k,v}_proj.weight  [heads*headDim | kvHeads*headDim, hidden]
//   model.layers.{l}.self_attn.{q,k,v}_proj.bias    (qwen2 / attention_bias)
//   model.layers.{l}.self_attn.o_proj.weight        [hidden, heads*headDim]
//   model.layers.{l}.post_attention_layernorm.weight [hidden]
//   model.layers.{l}.mlp.{gate,up}_proj.weight      [intermediate, hidden]
//   model.layers.{l}.mlp.down_proj.weight           [hidden, intermediate]
//   model.norm.weight                               [hidden]
//   lm_head.weight                                  [vocab, hidden] (absent when tied)
import type { ModelConfig } from '../engine/model/config.ts';

export interface RefTensor {
  shape: number[];
  data: Float64Array;
}
/** Tensor name → tensor. */
export type RefWeights = Map<string, RefTensor>;

export interface LoraLayer {
  /** [r, in] row-major */
  A: Float64Array;
  /** [out, r] row-major */
  B: Float64Array;
  r: number;
}
export interface RefLoraAdapter {
  /** alpha / r (or whatever the adapter says); multiplies B·A. */
  scaling: number;
  /** Base tensor name (e.g. "model.layers.0.self_attn.q_proj.weight") → low-rank update. */
  layers: Map<string, LoraLayer>;
}

export interface ForwardOptions {
  /**
   * Called with intermediate activations, for debugging a GPU kernel layer by layer.
   * Names: "embed", "L{l}.attn_norm", "L{l}.q" / ".k" (after RoPE), ".v", ".attn_out"
   * (before o_proj), ".attn_resid" (x after attention residual), ".mlp_norm", ".mlp_act"
   * (silu(gate)*up), "L{l}.out", "final_norm". Shapes are [T, n].
   */
  trace?: (name: string, data: Float64Array, shape: number[]) => void;
}

function get(w: RefWeights, name: string, shape: number[]): Float64Array {
  const t = w.get(name);
  if (!t) throw new Error(`reference: missing tensor ${name}`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`reference: ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
  return t.data;
}

/** out[t, o] = sum_i x[t, i] * W[o, i] (+ b[o])  — nn.Linear: x @ W.T + b */
export function linear(x: Float64Array, T: number, inDim: number, W: Float64Array, outDim: number, b?: Float64Array): Float64Array {
  const out = new Float64Array(T * outDim);
  for (let t = 0; t < T; t++) {
    const xo = t * inDim;
    for (let o = 0; o < outDim; o++) {
      const wo = o * inDim;
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[xo + i]! * W[wo + i]!;
      out[t * outDim + o] = s + (b ? b[o]! : 0);
    }
  }
  return out;
}

/**
 * LlamaRMSNorm:
 *   variance = hidden_states.pow(2).mean(-1, keepdim=True)
 *   hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
 *   return self.weight * hidden_states
 */
export function rmsNorm(x: Float64Array, T: number, n: number, w: Float64Array, eps: number): Float64Array {
  const out = new Float64Array(T * n);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[t * n + i]! ** 2;
    const r = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) out[t * n + i] = w[i]! * (x[t * n + i]! * r);
  }
  return out;
}

/**
 * RoPE inverse frequencies, length headDim/2.
 *   inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
 * then, per rope_scaling:
 *   linear:  inv_freq /= factor                       (_compute_linear_scaling_rope_parameters)
 *   llama3:  _compute_llama3_parameters:
 *     low_freq_wavelen  = old_context_len / low_freq_factor
 *     high_freq_wavelen = old_context_len / high_freq_factor
 *     wavelen = 2 * math.pi / inv_freq
 *     inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
 *     smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
 *     smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
 *     is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
 *     inv_freq_llama = torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
 * (attention_factor is 1.0 for both, so cos/sin are not rescaled.)
 */
export function ropeInvFreq(config: Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float64Array {
  const dim = config.headDim;
  const inv = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) inv[i] = 1 / config.ropeTheta ** ((2 * i) / dim);
  const rs = config.ropeScaling;
  if (!rs) return inv;
  if (rs.type === 'linear') return inv.map((f) => f / rs.factor);
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions: old } = rs;
  const lowFreqWavelen = old / lowFreqFactor;
  const highFreqWavelen = old / highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f; // high frequency: unchanged
    if (wavelen > lowFreqWavelen) return f / factor; // low frequency: divided by factor
    const smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return ((1 - smooth) * f) / factor + smooth * f; // medium: interpolate
  });
}

/**
 * apply_rotary_pos_emb, in place, on x [T, nHeads*headDim] at positions startPos + t:
 *   freqs = position_ids * inv_freq;  emb = torch.cat((freqs, freqs), dim=-1)
 *   rotate_half(x) = torch.cat((-x[..., d/2:], x[..., :d/2]), dim=-1)
 *   q_embed = (q * cos) + (rotate_half(q) * sin)
 * i.e. pairs (i, i + d/2) rotate by angle pos * inv_freq[i].
 */
export function applyRope(x: Float64Array, T: number, nHeads: number, headDim: number, invFreq: Float64Array, startPos = 0): void {
  const half = headDim / 2;
  for (let t = 0; t < T; t++) {
    const pos = startPos + t;
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const ang = pos * invFreq[i]!;
        const c = Math.cos(ang);
        const s = Math.sin(ang);
        const x1 = x[base + i]!;
        const x2 = x[base + i + half]!;
        x[base + i] = x1 * c - x2 * s;
        x[base + i + half] = x2 * c + x1 * s;
      }
    }
  }
}

/** silu(x) = x * sigmoid(x) */
export const silu = (x: number): number => x / (1 + Math.exp(-x));

/**
 * Full forward over `tokens` (positions 0..T-1, causal). Returns logits [T, vocab].
 */
export function forward(weights: RefWeights, config: ModelConfig, tokens: number[], opts: ForwardOptions = {}): RefTensor {
  const { hiddenSize: Hd, intermediateSize: I, numHeads: H, numKvHeads: KV, headDim: D, vocabSize: V } = config;
  const T = tokens.length;
  const trace = opts.trace;
  const eps = config.rmsNormEps;
  const invFreq = ropeInvFreq(config);
  const group = H / KV; // num_key_value_groups
  const scale = 1 / Math.sqrt(D); // self.scaling = head_dim ** -0.5
  const window = config.slidingWindow ?? Infinity;

  // inputs_embeds = self.embed_tokens(input_ids)
  const emb = get(weights, 'model.embed_tokens.weight', [V, Hd]);
  let x: Float64Array = new Float64Array(T * Hd);
  tokens.forEach((tok, t) => {
    if (!Number.isInteger(tok) || tok < 0 || tok >= V) throw new Error(`reference: token ${tok} outside vocab ${V}`);
    x.set(emb.subarray(tok * Hd, (tok + 1) * Hd), t * Hd);
  });
  trace?.('embed', x, [T, Hd]);

  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.`;
    // hidden_states = self.input_layernorm(hidden_states)
    const h = rmsNorm(x, T, Hd, get(weights, p + 'input_layernorm.weight', [Hd]), eps);
    trace?.(`L${l}.attn_norm`, h, [T, Hd]);

    // query_states = self.q_proj(hidden_states); key_states = self.k_proj(...); value_states = self.v_proj(...)
    const bias = (n: string, len: number) => (config.qkvBias ? get(weights, p + `self_attn.${n}.bias`, [len]) : undefined);
    const q = linear(h, T, Hd, get(weights, p + 'self_attn.q_proj.weight', [H * D, Hd]), H * D, bias('q_proj', H * D));
    const k = linear(h, T, Hd, get(weights, p + 'self_attn.k_proj.weight', [KV * D, Hd]), KV * D, bias('k_proj', KV * D));
    const v = linear(h, T, Hd, get(weights, p + 'self_attn.v_proj.weight', [KV * D, Hd]), KV * D, bias('v_proj', KV * D));

    // query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)
    applyRope(q, T, H, D, invFreq);
    applyRope(k, T, KV, D, invFreq);
    trace?.(`L${l}.q`, q, [T, H * D]);
    trace?.(`L${l}.k`, k, [T, KV * D]);
    trace?.(`L${l}.v`, v, [T, KV * D]);

    // eager_attention_forward: key_states = repeat_kv(key, n_rep) (head h uses kv head h // n_rep)
    //   attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling + causal_mask
    //   attn_weights = softmax(attn_weights, dim=-1, dtype=torch.float32)
    //   attn_output = torch.matmul(attn_weights, value_states)
    const att = new Float64Array(T * H * D);
    const scores = new Float64Array(T);
    for (let hh = 0; hh < H; hh++) {
      const kvh = Math.floor(hh / group);
      for (let t = 0; t < T; t++) {
        const qo = (t * H + hh) * D;
        const j0 = Math.max(0, t - window + 1); // sliding window (Mistral): keys t-window+1 .. t
        let max = -Infinity;
        for (let j = j0; j <= t; j++) {
          const ko = (j * KV + kvh) * D;
          let s = 0;
          for (let d = 0; d < D; d++) s += q[qo + d]! * k[ko + d]!;
          s *= scale;
          scores[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = j0; j <= t; j++) {
          const e = Math.exp(scores[j]! - max);
          scores[j] = e;
          sum += e;
        }
        for (let j = j0; j <= t; j++) {
          const pj = scores[j]! / sum;
          const vo = (j * KV + kvh) * D;
          for (let d = 0; d < D; d++) att[qo + d] += pj * v[vo + d]!;
        }
      }
    }
    trace?.(`L${l}.attn_out`, att, [T, H * D]);

    // attn_output = self.o_proj(attn_output); hidden_states = residual + hidden_states
    const o = linear(att, T, H * D, get(weights, p + 'self_attn.o_proj.weight', [Hd, H * D]), Hd);
    for (let i = 0; i < x.length; i++) x[i] += o[i]!;
    trace?.(`L${l}.attn_resid`, x, [T, Hd]);

    // hidden_states = self.post_attention_layernorm(hidden_states)
    const h2 = rmsNorm(x, T, Hd, get(weights, p + 'post_attention_layernorm.weight', [Hd]), eps);
    trace?.(`L${l}.mlp_norm`, h2, [T, Hd]);
    // LlamaMLP: down_proj(act_fn(gate_proj(x)) * up_proj(x))
    const g = linear(h2, T, Hd, get(weights, p + 'mlp.gate_proj.weight', [I, Hd]), I);
    const u = linear(h2, T, Hd, get(weights, p + 'mlp.up_proj.weight', [I, Hd]), I);
    for (let i = 0; i < g.length; i++) g[i] = silu(g[i]!) * u[i]!;
    trace?.(`L${l}.mlp_act`, g, [T, I]);
    const dn = linear(g, T, I, get(weights, p + 'mlp.down_proj.weight', [Hd, I]), Hd);
    // hidden_states = residual + hidden_states
    for (let i = 0; i < x.length; i++) x[i] += dn[i]!;
    trace?.(`L${l}.out`, x, [T, Hd]);
  }

  // hidden_states = self.norm(hidden_states)
  x = rmsNorm(x, T, Hd, get(weights, 'model.norm.weight', [Hd]), eps);
  trace?.('final_norm', x, [T, Hd]);
  // logits = self.lm_head(hidden_states)   (tie_word_embeddings: lm_head.weight is embed_tokens.weight)
  const head = config.tieWordEmbeddings ? emb : get(weights, 'lm_head.weight', [V, Hd]);
  return { shape: [T, V], data: linear(x, T, Hd, head, V) };
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

export interface GreedyResult {
  /** Generated ids only (not the prompt). */
  tokens: number[];
  /** Top-1 minus top-2 logit at each step: how robust each choice is to rounding. */
  gaps: number[];
}

/**
 * Greedy decoding: n new tokens after `prompt` (stops early at an EOS id only if stopAtEos).
 * Recomputes the whole sequence each step; fine for test-sized models.
 */
export function greedyGenerate(weights: RefWeights, config: ModelConfig, prompt: number[], n: number, opts: { stopAtEos?: boolean } = {}): GreedyResult {
  const seq = [...prompt];
  const tokens: number[] = [];
  const gaps: number[] = [];
  const V = config.vocabSize;
  for (let s = 0; s < n; s++) {
    const logits = forward(weights, config, seq).data;
    const last = logits.subarray((seq.length - 1) * V, seq.length * V);
    const best = argmax(last);
    let second = -Infinity;
    for (let i = 0; i < V; i++) if (i !== best && last[i]! > second) second = last[i]!;
    tokens.push(best);
    gaps.push(last[best]! - second);
    seq.push(best);
    if (opts.stopAtEos && config.eosTokenIds.includes(best)) break;
  }
  return { tokens, gaps };
}

/**
 * W' = W + scaling · B·A for each adapted tensor (PEFT LoRA merge:
 * `self.weight.data += self.get_delta_weight(adapter)` with delta = (B @ A) * scaling).
 * Returns a new map; untouched tensors are shared, merged ones copied.
 */
export function mergeLora(weights: RefWeights, adapter: RefLoraAdapter): RefWeights {
  const out: RefWeights = new Map(weights);
  for (const [name, { A, B, r }] of adapter.layers) {
    const base = weights.get(name);
    if (!base) throw new Error(`mergeLora: adapter targets ${name}, which is not a base weight`);
    if (base.shape.length !== 2) throw new Error(`mergeLora: ${name} is not a matrix`);
    const [outDim, inDim] = base.shape as [number, number];
    if (A.length !== r * inDim) throw new Error(`mergeLora: ${name}: A has ${A.length} values, expected r×in = ${r}×${inDim}`);
    if (B.length !== outDim * r) throw new Error(`mergeLora: ${name}: B has ${B.length} values, expected out×r = ${outDim}×${r}`);
    const W = Float64Array.from(base.data);
    for (let o = 0; o < outDim; o++) {
      for (let k = 0; k < r; k++) {
        const b = adapter.scaling * B[o * r + k]!;
        if (b === 0) continue;
        const ao = k * inDim;
        const wo = o * inDim;
        for (let i = 0; i < inDim; i++) W[wo + i] += b * A[ao + i]!;
      }
    }
    out.set(name, { shape: [outDim, inDim], data: W });
  }
  return out;
}
