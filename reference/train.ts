// The float64 oracle for LoRA training: forward with LoRA on any of the 7 projections, the loss
// (causal-LM cross-entropy with -100 labels, TRL's sigmoid DPO, TRL's ORPO), the backward pass of
// that loss with respect to every lora_A / lora_B, global-norm clipping, torch.optim.AdamW and
// HF transformers' warmup schedules. Written llm.c-style: each forward line and the backward line
// that inverts it under one banner; no cleverness, Float64Array everywhere, full recomputation.
//
// Conventions (Hugging Face / PEFT / TRL):
//   - a row is { tokens, labels } aligned (labels[t] is the target of position t-1: the loss shifts,
//     logits[t] predicts labels[t+1]); -100 is ignored;
//   - a packed row carries `docStarts` (first index of each document); positions restart at 0 at
//     each document and attention never crosses a document (Axolotl sample_packing, HF
//     DataCollatorWithFlattening);
//   - LoRA: y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ, A [r, in], B [out, r], s = alpha/r (or alpha/√r with rsLoRA);
//     keys `${layer}.${module}` as engine/lora/peft.ts loraKey.
import type { ModelConfig } from '../engine/model/config.ts';
import { ropeInvFreq, rmsNorm, linear, silu, type RefWeights } from './llama.ts';

export type Module = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';
export const MODULES: readonly Module[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

export interface RefLoraPair {
  A: Float64Array; // [r, in]
  B: Float64Array; // [out, r]
}
export interface RefLoraParams {
  r: number;
  scaling: number;
  /** `${layer}.${module}` → pair */
  pairs: Map<string, RefLoraPair>;
}

export interface RefRow {
  tokens: number[];
  /** aligned with tokens; -100 ignored (HF convention, shifted inside the loss) */
  labels: number[];
  /** first index of each packed document (default [0]) */
  docStarts?: number[];
  /** this row's first token index in its micro-batch (dropout masks are indexed over the batch) */
  tokenOffset?: number;
}

/**
 * lora_dropout (PEFT: lora_B(lora_A(dropout(x)))): keep(key, n, offset) gives the keep mask of n
 * elements of module `key`'s input starting at element `offset`; kept values are scaled by 1/(1−p).
 */
export interface RefDropout {
  p: number;
  keep: (key: string, n: number, offset: number) => Uint8Array;
}

export const IGNORE = -100;

function get(w: RefWeights, name: string): Float64Array {
  const t = w.get(name);
  if (!t) throw new Error(`reference/train: missing tensor ${name}`);
  return t.data;
}

export function moduleDims(c: ModelConfig, m: Module): { inDim: number; outDim: number } {
  const Q = c.numHeads * c.headDim, KV = c.numKvHeads * c.headDim;
  switch (m) {
    case 'q_proj': return { inDim: c.hiddenSize, outDim: Q };
    case 'k_proj': case 'v_proj': return { inDim: c.hiddenSize, outDim: KV };
    case 'o_proj': return { inDim: Q, outDim: c.hiddenSize };
    case 'gate_proj': case 'up_proj': return { inDim: c.hiddenSize, outDim: c.intermediateSize };
    case 'down_proj': return { inDim: c.intermediateSize, outDim: c.hiddenSize };
  }
}
const weightName = (l: number, m: Module) => `model.layers.${l}.${m === 'gate_proj' || m === 'up_proj' || m === 'down_proj' ? 'mlp' : 'self_attn'}.${m}.weight`;

// ------------------------------------------------------------------ LoRA linear
// forward:  H = X·Aᵀ [T, r];  Y = X·Wᵀ + s·H·Bᵀ
// backward: dB = s·dYᵀ·H;  dH = s·dY·B;  dA = dHᵀ·X;  dX = dY·W + dH·A
interface LinTape { x: Float64Array; hA: Float64Array | null; keep?: Uint8Array; p?: number }

function loraLinear(x: Float64Array, T: number, W: Float64Array, inDim: number, outDim: number, pair: RefLoraPair | undefined, r: number, s: number, bias?: Float64Array, drop?: { keep: Uint8Array; p: number }): { y: Float64Array; tape: LinTape } {
  const y = linear(x, T, inDim, W, outDim, bias);
  if (!pair) return { y, tape: { x, hA: null } };
  // xd = dropout(x) feeds the LoRA branch only
  const xd = drop ? Float64Array.from(x, (v, i) => (drop.keep[i] ? v / (1 - drop.p) : 0)) : x;
  const hA = linear(xd, T, inDim, pair.A, r);
  const d = linear(hA, T, r, pair.B, outDim);
  for (let i = 0; i < y.length; i++) y[i] += s * d[i]!;
  return { y, tape: { x: xd, hA, keep: drop?.keep, p: drop?.p } };
}

function loraLinearBack(dY: Float64Array, T: number, W: Float64Array, inDim: number, outDim: number, pair: RefLoraPair | undefined, r: number, s: number, tape: LinTape, grad: RefLoraPair | undefined): Float64Array {
  // dX = dY·W
  const dX = new Float64Array(T * inDim);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < outDim; o++) {
      const g = dY[t * outDim + o]!;
      if (g === 0) continue;
      for (let i = 0; i < inDim; i++) dX[t * inDim + i] += g * W[o * inDim + i]!;
    }
  }
  if (!pair || !tape.hA) return dX;
  const { A, B } = pair;
  const hA = tape.hA;
  // dH = s·dY·B   [T, r]
  const dH = new Float64Array(T * r);
  for (let t = 0; t < T; t++) for (let o = 0; o < outDim; o++) {
    const g = s * dY[t * outDim + o]!;
    for (let k = 0; k < r; k++) dH[t * r + k] += g * B[o * r + k]!;
  }
  if (grad) {
    // dB += s·dYᵀ·H   [out, r]
    for (let t = 0; t < T; t++) for (let o = 0; o < outDim; o++) {
      const g = s * dY[t * outDim + o]!;
      for (let k = 0; k < r; k++) grad.B[o * r + k] += g * hA[t * r + k]!;
    }
    // dA += dHᵀ·X   [r, in]
    for (let t = 0; t < T; t++) for (let k = 0; k < r; k++) {
      const g = dH[t * r + k]!;
      for (let i = 0; i < inDim; i++) grad.A[k * inDim + i] += g * tape.x[t * inDim + i]!;
    }
  }
  // dX += dropout⁻¹(dH·A)   (the same mask and scale)
  const kp = tape.keep, sc = tape.p !== undefined ? 1 / (1 - tape.p) : 1;
  for (let t = 0; t < T; t++) for (let k = 0; k < r; k++) {
    const g = dH[t * r + k]!;
    for (let i = 0; i < inDim; i++) if (!kp || kp[t * inDim + i]) dX[t * inDim + i] += g * A[k * inDim + i]! * sc;
  }
  return dX;
}

// ------------------------------------------------------------------ RMSNorm
// forward:  y = w ⊙ x·rstd,  rstd = (mean(x²) + eps)^-½
// backward: dx = rstd·(w⊙dy) − x·rstd³/n·Σ(w⊙dy⊙x)
function rmsNormBack(x: Float64Array, T: number, n: number, w: Float64Array, eps: number, dy: Float64Array): Float64Array {
  const dx = new Float64Array(T * n);
  for (let t = 0; t < T; t++) {
    let ss = 0, dot = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[t * n + i]!;
      ss += xi * xi;
      dot += w[i]! * dy[t * n + i]! * xi;
    }
    const r = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) dx[t * n + i] = r * w[i]! * dy[t * n + i]! - (x[t * n + i]! * r * r * r * dot) / n;
  }
  return dx;
}

// ------------------------------------------------------------------ RoPE at explicit positions
// forward rotates pairs (i, i+d/2) by +pos·f_i; backward rotates the gradient by −pos·f_i.
function rope(x: Float64Array, T: number, nHeads: number, D: number, inv: Float64Array, pos: number[], sign: 1 | -1): void {
  const half = D / 2;
  for (let t = 0; t < T; t++) for (let h = 0; h < nHeads; h++) {
    const b = (t * nHeads + h) * D;
    for (let i = 0; i < half; i++) {
      const a = pos[t]! * inv[i]!;
      const c = Math.cos(a), s = sign * Math.sin(a);
      const x1 = x[b + i]!, x2 = x[b + i + half]!;
      x[b + i] = x1 * c - x2 * s;
      x[b + i + half] = x2 * c + x1 * s;
    }
  }
}

/** positions (restart per document) and, per position, its document's first index. */
export function docLayout(row: RefRow): { pos: number[]; start: number[] } {
  const T = row.tokens.length;
  const starts = row.docStarts ?? [0];
  const pos: number[] = new Array(T);
  const start: number[] = new Array(T);
  let d = 0;
  for (let t = 0; t < T; t++) {
    while (d + 1 < starts.length && starts[d + 1]! <= t) d++;
    start[t] = starts[d]!;
    pos[t] = t - starts[d]!;
  }
  return { pos, start };
}

// ------------------------------------------------------------------ model forward with tape
interface LayerTape {
  x: Float64Array; h: Float64Array; q: Float64Array; k: Float64Array; v: Float64Array; P: Float64Array[]; att: Float64Array;
  x1: Float64Array; h2: Float64Array; g: Float64Array; u: Float64Array; a: Float64Array;
  lin: Map<Module, LinTape>;
}
export interface RefTape {
  T: number;
  layers: LayerTape[];
  xL: Float64Array;
  hf: Float64Array;
  logits: Float64Array; // [T, V]
  pos: number[];
  start: number[];
}

/** Forward of one row with the adapter (or none: lora null / disabled), keeping what backward needs. */
export function loraForward(weights: RefWeights, c: ModelConfig, lora: RefLoraParams | null, row: RefRow, dropout?: RefDropout): RefTape {
  const { hiddenSize: Hd, intermediateSize: I, numHeads: H, numKvHeads: KVH, headDim: D, vocabSize: V } = c;
  const T = row.tokens.length;
  const { pos, start } = docLayout(row);
  const inv = ropeInvFreq(c);
  const group = H / KVH;
  const scale = 1 / Math.sqrt(D);
  const window = c.slidingWindow ?? Infinity;
  const r = lora?.r ?? 0, s = lora?.scaling ?? 0;
  const pairOf = (l: number, m: Module) => lora?.pairs.get(`${l}.${m}`);
  const emb = get(weights, 'model.embed_tokens.weight');
  let x = new Float64Array(T * Hd);
  row.tokens.forEach((tok, t) => x.set(emb.subarray(tok * Hd, (tok + 1) * Hd), t * Hd));
  const layers: LayerTape[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const lin = new Map<Module, LinTape>();
    const proj = (m: Module, xin: Float64Array) => {
      const { inDim, outDim } = moduleDims(c, m);
      const bias = c.qkvBias && (m === 'q_proj' || m === 'k_proj' || m === 'v_proj') ? get(weights, p + `self_attn.${m}.bias`) : undefined;
      const drop = dropout && dropout.p > 0 ? { p: dropout.p, keep: dropout.keep(`${l}.${m}`, T * inDim, (row.tokenOffset ?? 0) * inDim) } : undefined;
      const { y, tape } = loraLinear(xin, T, get(weights, weightName(l, m)), inDim, outDim, pairOf(l, m), r, s, bias, drop);
      lin.set(m, tape);
      return y;
    };
    // h = input_layernorm(x); q, k, v = proj(h); rope(q, k)
    const h = rmsNorm(x, T, Hd, get(weights, p + 'input_layernorm.weight'), c.rmsNormEps);
    const q = proj('q_proj', h), k = proj('k_proj', h), v = proj('v_proj', h);
    rope(q, T, H, D, inv, pos, 1);
    rope(k, T, KVH, D, inv, pos, 1);
    // att = softmax(q·kᵀ·scale, causal within the document) · v
    const att = new Float64Array(T * H * D);
    const P: Float64Array[] = [];
    for (let hh = 0; hh < H; hh++) {
      const kvh = Math.floor(hh / group);
      const Ph = new Float64Array(T * T);
      for (let t = 0; t < T; t++) {
        const j0 = Math.max(start[t]!, t - window + 1);
        let max = -Infinity;
        for (let j = j0; j <= t; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[(t * H + hh) * D + d]! * k[(j * KVH + kvh) * D + d]!;
          Ph[t * T + j] = dot * scale;
          if (dot * scale > max) max = dot * scale;
        }
        let sum = 0;
        for (let j = j0; j <= t; j++) sum += (Ph[t * T + j] = Math.exp(Ph[t * T + j]! - max));
        for (let j = j0; j <= t; j++) {
          const pj = (Ph[t * T + j]! /= sum);
          for (let d = 0; d < D; d++) att[(t * H + hh) * D + d] += pj * v[(j * KVH + kvh) * D + d]!;
        }
      }
      P.push(Ph);
    }
    // x1 = x + o_proj(att)
    const o = proj('o_proj', att);
    const x1 = Float64Array.from(x, (xv, i) => xv + o[i]!);
    // h2 = post_attention_layernorm(x1); a = silu(gate(h2)) * up(h2); x2 = x1 + down(a)
    const h2 = rmsNorm(x1, T, Hd, get(weights, p + 'post_attention_layernorm.weight'), c.rmsNormEps);
    const g = proj('gate_proj', h2), u = proj('up_proj', h2);
    const a = new Float64Array(T * I);
    for (let i = 0; i < a.length; i++) a[i] = silu(g[i]!) * u[i]!;
    const dn = proj('down_proj', a);
    layers.push({ x, h, q, k, v, P, att, x1, h2, g, u, a, lin });
    x = Float64Array.from(x1, (xv, i) => xv + dn[i]!);
  }
  const hf = rmsNorm(x, T, Hd, get(weights, 'model.norm.weight'), c.rmsNormEps);
  const head = c.tieWordEmbeddings ? emb : get(weights, 'lm_head.weight');
  return { T, layers, xL: x, hf, logits: linear(hf, T, Hd, head, V), pos, start };
}

/** Zero gradients shaped like `lora`. */
export function zeroGrads(lora: RefLoraParams): Map<string, RefLoraPair> {
  const g = new Map<string, RefLoraPair>();
  for (const [k, p] of lora.pairs) g.set(k, { A: new Float64Array(p.A.length), B: new Float64Array(p.B.length) });
  return g;
}

/** Backward of dLogits [T, V] through the tape; accumulates into grads (every lora pair). */
export function loraBackward(weights: RefWeights, c: ModelConfig, lora: RefLoraParams, tape: RefTape, dLogits: Float64Array, grads: Map<string, RefLoraPair>): void {
  const { hiddenSize: Hd, intermediateSize: I, numHeads: H, numKvHeads: KVH, headDim: D, vocabSize: V } = c;
  const { T, pos } = tape;
  const inv = ropeInvFreq(c);
  const group = H / KVH;
  const scale = 1 / Math.sqrt(D);
  const { r, scaling: s } = lora;
  const emb = get(weights, 'model.embed_tokens.weight');
  const head = c.tieWordEmbeddings ? emb : get(weights, 'lm_head.weight');
  // logits = hf·headᵀ  →  dhf = dLogits·head
  const dhf = new Float64Array(T * Hd);
  for (let t = 0; t < T; t++) for (let vv = 0; vv < V; vv++) {
    const g = dLogits[t * V + vv]!;
    if (g === 0) continue;
    for (let i = 0; i < Hd; i++) dhf[t * Hd + i] += g * head[vv * Hd + i]!;
  }
  // hf = norm(xL)
  let dx = rmsNormBack(tape.xL, T, Hd, get(weights, 'model.norm.weight'), c.rmsNormEps, dhf);
  for (let l = c.numLayers - 1; l >= 0; l--) {
    const L = tape.layers[l]!;
    const p = `model.layers.${l}.`;
    const back = (m: Module, dY: Float64Array) => {
      const { inDim, outDim } = moduleDims(c, m);
      const key = `${l}.${m}`;
      return loraLinearBack(dY, T, get(weights, weightName(l, m)), inDim, outDim, lora.pairs.get(key), r, s, L.lin.get(m)!, grads.get(key));
    };
    // x2 = x1 + down(a)
    const da = back('down_proj', dx);
    // a = silu(g)·u  →  dg = da·u·silu'(g), du = da·silu(g)
    const dg = new Float64Array(T * I), du = new Float64Array(T * I);
    for (let i = 0; i < T * I; i++) {
      const gv = L.g[i]!, sg = 1 / (1 + Math.exp(-gv));
      du[i] = da[i]! * gv * sg;
      dg[i] = da[i]! * L.u[i]! * sg * (1 + gv * (1 - sg));
    }
    const dh2 = back('gate_proj', dg);
    const dh2u = back('up_proj', du);
    for (let i = 0; i < dh2.length; i++) dh2[i] += dh2u[i]!;
    // h2 = norm(x1)
    const dx1 = rmsNormBack(L.x1, T, Hd, get(weights, p + 'post_attention_layernorm.weight'), c.rmsNormEps, dh2);
    for (let i = 0; i < dx1.length; i++) dx1[i] += dx[i]!;
    // x1 = x + o(att)
    const datt = back('o_proj', dx1);
    // att = P·v, P = softmax(S), S = q·kᵀ·scale
    const dq = new Float64Array(T * H * D), dk = new Float64Array(T * KVH * D), dv = new Float64Array(T * KVH * D);
    for (let hh = 0; hh < H; hh++) {
      const kvh = Math.floor(hh / group);
      const Ph = L.P[hh]!;
      for (let t = 0; t < T; t++) {
        const dP = new Float64Array(T);
        let sum = 0;
        for (let j = 0; j <= t; j++) {
          const pj = Ph[t * T + j]!;
          if (pj === 0) continue;
          let dot = 0;
          for (let d = 0; d < D; d++) {
            dot += datt[(t * H + hh) * D + d]! * L.v[(j * KVH + kvh) * D + d]!;
            dv[(j * KVH + kvh) * D + d] += pj * datt[(t * H + hh) * D + d]!;
          }
          dP[j] = dot;
          sum += pj * dot;
        }
        for (let j = 0; j <= t; j++) {
          const pj = Ph[t * T + j]!;
          if (pj === 0) continue;
          const dS = pj * (dP[j]! - sum) * scale;
          for (let d = 0; d < D; d++) {
            dq[(t * H + hh) * D + d] += dS * L.k[(j * KVH + kvh) * D + d]!;
            dk[(j * KVH + kvh) * D + d] += dS * L.q[(t * H + hh) * D + d]!;
          }
        }
      }
    }
    rope(dq, T, H, D, inv, pos, -1);
    rope(dk, T, KVH, D, inv, pos, -1);
    const dh = back('q_proj', dq);
    const dhk = back('k_proj', dk), dhv = back('v_proj', dv);
    for (let i = 0; i < dh.length; i++) dh[i] += dhk[i]! + dhv[i]!;
    const dxn = rmsNormBack(L.x, T, Hd, get(weights, p + 'input_layernorm.weight'), c.rmsNormEps, dh);
    for (let i = 0; i < dxn.length; i++) dxn[i] += dx1[i]!;
    dx = dxn;
  }
}

// ------------------------------------------------------------------ label log-probs and losses
/**
 * Per position t (0..T-2): log p(labels[t+1] | tokens ≤ t), or NaN where labels[t+1] is -100.
 * Index t of the result belongs to logits row t.
 */
export function labelLogps(logits: Float64Array, T: number, V: number, labels: number[]): Float64Array {
  const out = new Float64Array(T).fill(NaN);
  for (let t = 0; t + 1 < T; t++) {
    const y = labels[t + 1]!;
    if (y === IGNORE) continue;
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[t * V + v]!);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[t * V + v]! - max);
    out[t] = logits[t * V + y]! - max - Math.log(sum);
  }
  return out;
}

/** dLogits of Σ_t w[t]·logp[t]: w[t]·(onehot(label) − softmax). */
export function dLogitsOf(logits: Float64Array, T: number, V: number, labels: number[], w: Float64Array): Float64Array {
  const d = new Float64Array(T * V);
  for (let t = 0; t + 1 < T; t++) {
    const y = labels[t + 1]!;
    if (y === IGNORE || w[t] === 0) continue;
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[t * V + v]!);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[t * V + v]! - max);
    for (let v = 0; v < V; v++) d[t * V + v] = -w[t]! * (Math.exp(logits[t * V + v]! - max) / sum);
    d[t * V + y] += w[t]!;
  }
  return d;
}

const logsigmoid = (x: number) => (x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x)));
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export interface PrefPair { chosen: RefRow; rejected: RefRow }
export type RefBatch =
  | { kind: 'lm'; rows: RefRow[] }
  /** refLora: the reference model is base + this frozen adapter (Axolotl rl_adapter_ref_model); absent = the base */
  | { kind: 'dpo'; pairs: PrefPair[]; beta: number; refLora?: RefLoraParams; rpoAlpha?: number }
  | { kind: 'orpo'; pairs: PrefPair[]; alpha: number };

export interface RefLossResult {
  loss: number;
  metrics: Record<string, number>;
  /** per row (lm: rows; pref: chosen then rejected per pair): dloss/dlogp[t] */
  weights: Float64Array[];
  logps: Float64Array[];
}

const sumValid = (a: Float64Array) => { let s = 0, n = 0; for (const v of a) if (!Number.isNaN(v)) { s += v; n++; } return { s, n }; };

/** The objective from per-row label log-probs (ref: reference-model log-probs for DPO). */
export function objective(batch: RefBatch, logps: Float64Array[], ref?: Float64Array[]): RefLossResult {
  const mask = (a: Float64Array, g: number) => Float64Array.from(a, (v) => (Number.isNaN(v) ? 0 : g));
  if (batch.kind === 'lm') {
    // CrossEntropyLoss(ignore_index=-100), mean over the micro-batch's non-ignored tokens
    let s = 0, n = 0;
    for (const lp of logps) { const r = sumValid(lp); s += r.s; n += r.n; }
    if (n === 0) return { loss: 0, metrics: { tokens: 0 }, weights: logps.map((lp) => new Float64Array(lp.length)), logps };
    return { loss: -s / n, metrics: { tokens: n }, weights: logps.map((lp) => mask(lp, -1 / n)), logps };
  }
  const P = batch.pairs.length;
  const weights: Float64Array[] = [];
  if (batch.kind === 'dpo') {
    // TRL sigmoid: logits = (πc − πr) − (refc − refr); loss = −logσ(β·logits); rewards β(π − ref)
    if (!ref) throw new Error('dpo needs reference log-probs');
    let loss = 0, rc = 0, rr = 0, acc = 0;
    // TRL rpo_alpha: + α · nll, nll = CrossEntropy over the chosen completions' tokens (mean over all of them)
    const a = batch.rpoAlpha ?? 0;
    let cs = 0, cn = 0;
    for (let i = 0; i < P; i++) { const r = sumValid(logps[2 * i]!); cs += r.s; cn += r.n; }
    for (let i = 0; i < P; i++) {
      const pc = sumValid(logps[2 * i]!).s, pr = sumValid(logps[2 * i + 1]!).s;
      const qc = sumValid(ref[2 * i]!).s, qr = sumValid(ref[2 * i + 1]!).s;
      const z = batch.beta * (pc - pr - (qc - qr));
      loss += -logsigmoid(z) / P;
      const g = (-(1 - sigmoid(z)) * batch.beta) / P; // dloss/dpc; dloss/dpr = −g
      weights.push(mask(logps[2 * i]!, g - (a && cn ? a / cn : 0)), mask(logps[2 * i + 1]!, -g));
      const cr = batch.beta * (pc - qc), rj = batch.beta * (pr - qr);
      rc += cr / P; rr += rj / P; acc += (cr > rj ? 1 : 0) / P;
    }
    if (a && cn) loss += a * (-cs / cn);
    return { loss, metrics: { 'rewards/chosen': rc, 'rewards/rejected': rr, 'rewards/margins': rc - rr, 'rewards/accuracies': acc }, weights, logps };
  }
  // ORPO (TRL): nll = CE over all chosen completion tokens (mean); log_odds from mean log-probs;
  //   loss = nll − α·mean(logσ(log_odds))
  let cs = 0, cn = 0;
  for (let i = 0; i < P; i++) { const r = sumValid(logps[2 * i]!); cs += r.s; cn += r.n; }
  const nll = -cs / cn;
  let ratio = 0, rc = 0, rr = 0, acc = 0;
  const a = batch.alpha;
  for (let i = 0; i < P; i++) {
    const c = sumValid(logps[2 * i]!), rj = sumValid(logps[2 * i + 1]!);
    const lc = c.s / c.n, lr = rj.s / rj.n;
    // log_odds = (lc − lr) − (log1p(−e^lc) − log1p(−e^lr))
    const lo = lc - lr - (Math.log1p(-Math.exp(lc)) - Math.log1p(-Math.exp(lr)));
    ratio += logsigmoid(lo) / P;
    const dlo = (-a * (1 - sigmoid(lo))) / P; // d(−α·mean logσ)/d lo
    // d lo/d lc = 1 + e^lc/(1 − e^lc) = 1/(1 − e^lc)
    const gc = dlo / (1 - Math.exp(lc)), gr = -dlo / (1 - Math.exp(lr));
    weights.push(mask(logps[2 * i]!, gc / c.n - 1 / cn), mask(logps[2 * i + 1]!, gr / rj.n));
    rc += (a * lc) / P; rr += (a * lr) / P; acc += (lc > lr ? 1 : 0) / P;
  }
  return { loss: nll - a * ratio, metrics: { nll, log_odds_ratio: ratio, 'rewards/chosen': rc, 'rewards/rejected': rr, 'rewards/margins': rc - rr, 'rewards/accuracies': acc }, weights, logps };
}

export interface RefLossAndGrad extends RefLossResult {
  grads: Map<string, RefLoraPair>;
}

const rowsOf = (b: RefBatch): RefRow[] => (b.kind === 'lm' ? b.rows : b.pairs.flatMap((p) => [p.chosen, p.rejected]));

/** Loss of one micro-batch and its gradient wrt every lora pair. */
export function lossAndGrad(weights: RefWeights, c: ModelConfig, lora: RefLoraParams, batch: RefBatch, dropout?: RefDropout): RefLossAndGrad {
  const rows = rowsOf(batch);
  const V = c.vocabSize;
  const tapes = rows.map((r) => loraForward(weights, c, lora, r, dropout));
  const logps = rows.map((r, i) => labelLogps(tapes[i]!.logits, r.tokens.length, V, r.labels));
  const ref = batch.kind === 'dpo' ? rows.map((r) => labelLogps(loraForward(weights, c, batch.refLora ?? null, r).logits, r.tokens.length, V, r.labels)) : undefined;
  const res = objective(batch, logps, ref);
  const grads = zeroGrads(lora);
  rows.forEach((r, i) => {
    const d = dLogitsOf(tapes[i]!.logits, r.tokens.length, V, r.labels, res.weights[i]!);
    loraBackward(weights, c, lora, tapes[i]!, d, grads);
  });
  return { ...res, grads };
}

/** Loss only (for finite differences). */
export function lossOf(weights: RefWeights, c: ModelConfig, lora: RefLoraParams, batch: RefBatch): number {
  const rows = rowsOf(batch);
  const V = c.vocabSize;
  const logps = rows.map((r) => labelLogps(loraForward(weights, c, lora, r).logits, r.tokens.length, V, r.labels));
  const ref = batch.kind === 'dpo' ? rows.map((r) => labelLogps(loraForward(weights, c, batch.refLora ?? null, r).logits, r.tokens.length, V, r.labels)) : undefined;
  return objective(batch, logps, ref).loss;
}

// ------------------------------------------------------------------ optimizer, clipping, schedules
export interface RefAdamW { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }
export interface RefAdamState { step: number; m: Map<string, RefLoraPair>; v: Map<string, RefLoraPair> }

/** torch.nn.utils.clip_grad_norm_: returns the total norm before clipping; scales by min(1, max/(norm+1e-6)). */
export function clipGradNorm(grads: Map<string, RefLoraPair>, maxNorm: number): number {
  let ss = 0;
  for (const g of grads.values()) { for (const x of g.A) ss += x * x; for (const x of g.B) ss += x * x; }
  const norm = Math.sqrt(ss);
  if (maxNorm > 0) {
    const coef = Math.min(1, maxNorm / (norm + 1e-6));
    for (const g of grads.values()) { for (let i = 0; i < g.A.length; i++) g.A[i] *= coef; for (let i = 0; i < g.B.length; i++) g.B[i] *= coef; }
  }
  return norm;
}

/** torch.optim.AdamW (amsgrad=False, maximize=False), one step in place. */
export function adamwStep(lora: RefLoraParams, grads: Map<string, RefLoraPair>, st: RefAdamState, o: RefAdamW, lr: number): void {
  st.step++;
  const bc1 = 1 - o.beta1 ** st.step, bc2 = 1 - o.beta2 ** st.step;
  const upd = (p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array) => {
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - lr * o.weightDecay;
      m[i] = o.beta1 * m[i]! + (1 - o.beta1) * g[i]!;
      v[i] = o.beta2 * v[i]! + (1 - o.beta2) * g[i]! * g[i]!;
      const denom = Math.sqrt(v[i]!) / Math.sqrt(bc2) + o.eps;
      p[i] -= (lr / bc1) * (m[i]! / denom);
    }
  };
  for (const [k, p] of lora.pairs) {
    if (!st.m.has(k)) { st.m.set(k, { A: new Float64Array(p.A.length), B: new Float64Array(p.B.length) }); st.v.set(k, { A: new Float64Array(p.A.length), B: new Float64Array(p.B.length) }); }
    const g = grads.get(k)!, m = st.m.get(k)!, v = st.v.get(k)!;
    upd(p.A, g.A, m.A, v.A);
    upd(p.B, g.B, m.B, v.B);
  }
}

/** HF get_{constant,linear,cosine}_schedule_with_warmup: multiplier at (0-based) optimizer step. */
export function lrLambda(kind: 'constant' | 'linear' | 'cosine', step: number, warmup: number, total: number): number {
  if (step < warmup) return step / Math.max(1, warmup);
  if (kind === 'constant') return 1;
  if (kind === 'linear') return Math.max(0, (total - step) / Math.max(1, total - warmup));
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * 0.5 * progress)));
}

export interface RefRunOptions extends RefAdamW {
  maxGradNorm: number;
  scheduler: 'constant' | 'linear' | 'cosine';
  warmupSteps: number;
}
export interface RefStepLog { step: number; loss: number; gradNorm: number; lr: number; metrics: Record<string, number> }

/**
 * Optimizer steps; each step is a list of micro-batches (gradient accumulation: the step's loss is
 * the mean of micro-batch losses and so is the gradient). Mutates `lora`.
 */
export function trainRun(weights: RefWeights, c: ModelConfig, lora: RefLoraParams, steps: RefBatch[][], o: RefRunOptions): RefStepLog[] {
  const st: RefAdamState = { step: 0, m: new Map(), v: new Map() };
  const logs: RefStepLog[] = [];
  steps.forEach((micro, k) => {
    const total = zeroGrads(lora);
    let loss = 0;
    const metrics: Record<string, number> = {};
    for (const b of micro) {
      const r = lossAndGrad(weights, c, lora, b);
      loss += r.loss / micro.length;
      for (const [n, v] of Object.entries(r.metrics)) metrics[n] = (metrics[n] ?? 0) + v / micro.length;
      for (const [key, g] of r.grads) {
        const t = total.get(key)!;
        for (let i = 0; i < g.A.length; i++) t.A[i] += g.A[i]! / micro.length;
        for (let i = 0; i < g.B.length; i++) t.B[i] += g.B[i]! / micro.length;
      }
    }
    const gradNorm = clipGradNorm(total, o.maxGradNorm);
    const lr = o.lr * lrLambda(o.scheduler, k, o.warmupSteps, steps.length);
    adamwStep(lora, total, st, o, lr);
    logs.push({ step: k + 1, loss, gradNorm, lr, metrics });
  });
  return logs;
}

export function cloneLora(l: RefLoraParams): RefLoraParams {
  return { r: l.r, scaling: l.scaling, pairs: new Map([...l.pairs].map(([k, p]) => [k, { A: Float64Array.from(p.A), B: Float64Array.from(p.B) }])) };
}
