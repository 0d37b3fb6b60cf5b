// The model on the GPU: weight upload (streamed tensor by tensor) and one forward step over a
// batch of segments (prefill chunks and decode tokens of different sequences mixed), written
// llama2.c-style next to HF transformers' modeling_llama.py. Shapes in comments use
//   T = tokens in this step (all segments), S = rows that need logits, Hd = hidden,
//   Q = numHeads·headDim, KV = numKvHeads·headDim, I = intermediate, V = vocab.
//
// Weights on the GPU (HF Linear layout W[out, in], see shaders/weights.ts):
//   embed     [V, Hd]            model.embed_tokens.weight (also the lm_head when tied)
//   per layer:
//     attnNorm  [Hd] f32         input_layernorm.weight
//     qkv       [Q+2KV, Hd]      q_proj | k_proj | v_proj fused by rows (+ fused bias)
//     o         [Hd, Q]          o_proj
//     mlpNorm   [Hd] f32         post_attention_layernorm.weight
//     gateUp    [2I, Hd]         gate_proj | up_proj fused by rows
//     down      [Hd, I]          down_proj
//   norm      [Hd] f32           model.norm.weight
//   lmHead    [V, Hd]            lm_head.weight (or embed when tie_word_embeddings)
import type { Runtime } from '../../shaders/gpu/runtime.ts';
import type { ModelConfig } from '../model/config.ts';
import { loadModelConfig, loadModelWeights, type LoadedTensor } from '../model/weights.ts';
import type { ModelSource } from '../model/source.ts';
import type { LoraRuntime, LoraStepPlan, LoraGroup } from '../lora/hook.ts';
import type { PagedKvCache, BatchMeta } from '../kv/paged-cache.ts';
import { uploadWeight, destroyWeight, type GpuWeight, type WeightFormat } from '../../shaders/matmul/weights.ts';
import { matmul } from '../../shaders/matmul/matmul.ts';
import { rmsnorm } from '../../shaders/rmsnorm/rmsnorm.ts';
import { ropeInvFreq } from '../../shaders/rope/rope.ts';
import { siluMul } from '../../shaders/silu_mul/silu_mul.ts';
import { argmax } from '../../shaders/argmax/argmax.ts';
import { embedding } from '../../shaders/embedding/embedding.ts';
import { sample, packSampleParams, SAMPLE_ROW_BYTES, type SampleParams } from '../../shaders/sample/sample.ts';
import { ropeKvWrite } from '../../shaders/rope_kv_write/rope_kv_write.ts';
import { pagedAttention } from '../../shaders/attention/attention.ts';
import { packTokenMasks, type TokenMaskBuffers } from '../../shaders/lib/token-mask.ts';

export type { WeightFormat };

export interface GpuLayer {
  attnNorm: GPUBuffer;
  qkv: GpuWeight;
  o: GpuWeight;
  mlpNorm: GPUBuffer;
  gateUp: GpuWeight;
  down: GpuWeight;
}

export interface UploadProgress {
  /** Tensors uploaded so far / total. */
  tensors: number;
  totalTensors: number;
  bytes: number;
  totalBytes: number;
  name: string;
}

export interface LoadGpuModelOptions {
  /** Storage format of the matrices (default 'f32'). Norms and biases stay f32. */
  weightFormat?: WeightFormat;
  onProgress?: (p: UploadProgress) => void;
  /** Split weight matrices into parts of at most this many bytes (tests of the multi-part path). */
  maxPartBytes?: number;
}

/** One segment of a forward step: consecutive tokens of one sequence. */
export interface ForwardSegment {
  tokens: ReadonlyArray<number>;
  startPos: number;
  /** Adapter name (LoRA) or null for the base model. */
  adapter: string | null;
  /** Sample the token after this segment with these params (null: no sampling). */
  sample: SampleParams | null;
  /** Sequence so far (prompt + generated), for the repetition penalty. */
  history?: ReadonlyArray<number>;
  /** Return the logits of the last position. */
  wantLogits?: boolean;
  /**
   * Grammar mask of the sampled token (u32 [ceil(V/32)], bit t set = token t allowed; XGrammar's
   * layout), or null/undefined: unconstrained. Applied on the GPU by the sampling kernels.
   */
  mask?: Uint32Array | null;
}

export interface ForwardStep {
  segments: ReadonlyArray<ForwardSegment>;
  /** Paged KV cache and the step's batch metadata (token records in segment order). */
  cache: PagedKvCache;
  meta: BatchMeta;
  /** Return logits for every position of every segment (tests): logits[s] is [len, V]. */
  allLogits?: boolean;
}

export interface ForwardResult {
  /** Per segment: the sampled token, or null when the segment had no sample params. */
  tokens: Array<number | null>;
  /** Per segment: logits ([V], or [len, V] with allLogits) when asked. */
  logits: Array<Float32Array | undefined>;
}

/** What packStep put on the GPU for one step (see GpuModel.packStep). */
interface PackedStep {
  /** token ids [T] u32, positions [T] u32 after them */
  ids: GPUBuffer;
  /** per segment: its first logits row and row count (first -1: none) */
  rowsOf: Array<{ first: number; count: number }>;
  /** logits rows */
  R: number;
  sampleSegs: Array<{ s: ForwardSegment; i: number }>;
  nS: number;
  /** null: every sampled row is greedy without penalty → argmax */
  sampleIn: { params: GPUBuffer; history?: GPUBuffer } | null;
  /** grammar masks of the constrained rows (one upload per step), null when no row has one */
  mask: TokenMaskBuffers | null;
}

const LAYER_RE = /^model\.layers\.(\d+)\.(.+)$/;

export class GpuModel {
  readonly rt: Runtime;
  readonly config: ModelConfig;
  readonly format: WeightFormat;
  readonly embed: GpuWeight;
  readonly layers: GpuLayer[];
  readonly norm: GPUBuffer;
  readonly lmHead: GpuWeight;
  /** RoPE inverse frequencies [headDim/2] f32 (rope scaling applied). */
  readonly invFreq: GPUBuffer;
  /** Bytes of weights on the GPU. */
  readonly weightBytes: number;
  private lora: LoraRuntime | null = null;
  private idsScratch = new Uint32Array(256);

  private constructor(rt: Runtime, config: ModelConfig, format: WeightFormat, p: {
    embed: GpuWeight; layers: GpuLayer[]; norm: GPUBuffer; lmHead: GpuWeight; invFreq: GPUBuffer; bytes: number;
  }) {
    this.rt = rt;
    this.config = config;
    this.format = format;
    this.embed = p.embed;
    this.layers = p.layers;
    this.norm = p.norm;
    this.lmHead = p.lmHead;
    this.invFreq = p.invFreq;
    this.weightBytes = p.bytes;
  }

  /** Q + 2·KV: the fused qkv row length. */
  get qkvDim(): number {
    const c = this.config;
    return (c.numHeads + 2 * c.numKvHeads) * c.headDim;
  }

  /** Bytes of weights a decode step streams (every matrix once; the embedding row is negligible). */
  get decodeWeightBytes(): number {
    let b = this.lmHead.bytes;
    for (const l of this.layers) b += l.qkv.bytes + l.o.bytes + l.gateUp.bytes + l.down.bytes;
    return b;
  }

  attachLora(lora: LoraRuntime | null): void {
    this.lora = lora;
  }

  /**
   * Loads config + safetensors from `source` and uploads tensor by tensor: each tensor is
   * read, converted and uploaded, then dropped; only q/k/v (and gate/up) of the current layer
   * are held together until their fused weight is uploaded.
   */
  static async load(rt: Runtime, source: ModelSource, opts: LoadGpuModelOptions = {}): Promise<GpuModel> {
    const config = await loadModelConfig(source);
    const weights = await loadModelWeights(source, config);
    const format = opts.weightFormat ?? 'f32';
    const { hiddenSize: Hd, intermediateSize: I, numHeads, numKvHeads, headDim, numLayers } = config;
    const Q = numHeads * headDim;
    const KV = numKvHeads * headDim;
    const up = (name: string, w: Float32Array, N: number, K: number, bias?: Float32Array) =>
      uploadWeight(rt, name, w, N, K, format, { bias, maxPartBytes: opts.maxPartBytes });

    let embed: GpuWeight | null = null;
    let lmHead: GpuWeight | null = null;
    let norm: GPUBuffer | null = null;
    const layers: Array<Partial<GpuLayer>> = Array.from({ length: numLayers }, () => ({}));
    // Per-layer pending pieces of fused weights (freed as soon as the fused weight is uploaded).
    const pending: Array<Map<string, Float32Array>> = Array.from({ length: numLayers }, () => new Map());
    let bytes = 0;
    let done = 0;
    const totalTensors = weights.tensors.size;

    const concatRows = (parts: Float32Array[]): Float32Array => {
      const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) {
        out.set(p, o);
        o += p.length;
      }
      return out;
    };

    const tryFuse = (l: number) => {
      const pend = pending[l]!;
      const L = layers[l]!;
      const p = `model.layers.${l}.`;
      const qkvNames = ['self_attn.q_proj.weight', 'self_attn.k_proj.weight', 'self_attn.v_proj.weight'];
      const biasNames = config.qkvBias ? ['self_attn.q_proj.bias', 'self_attn.k_proj.bias', 'self_attn.v_proj.bias'] : [];
      if (!L.qkv && [...qkvNames, ...biasNames].every((n) => pend.has(n))) {
        const w = concatRows(qkvNames.map((n) => pend.get(n)!));
        const b = config.qkvBias ? concatRows(biasNames.map((n) => pend.get(n)!)) : undefined;
        L.qkv = up(p + 'self_attn.qkv', w, Q + 2 * KV, Hd, b);
        bytes += L.qkv.bytes;
        for (const n of [...qkvNames, ...biasNames]) pend.delete(n);
      }
      if (!L.gateUp && pend.has('mlp.gate_proj.weight') && pend.has('mlp.up_proj.weight')) {
        const w = concatRows([pend.get('mlp.gate_proj.weight')!, pend.get('mlp.up_proj.weight')!]);
        L.gateUp = up(p + 'mlp.gate_up', w, 2 * I, Hd);
        bytes += L.gateUp.bytes;
        pend.delete('mlp.gate_proj.weight');
        pend.delete('mlp.up_proj.weight');
      }
    };

    const onTensor = (t: LoadedTensor) => {
      const data = t.f32!;
      const m = LAYER_RE.exec(t.name);
      if (m) {
        const l = Number(m[1]);
        const rest = m[2]!;
        const L = layers[l]!;
        switch (rest) {
          case 'input_layernorm.weight':
            L.attnNorm = rt.upload(data, t.name);
            bytes += data.byteLength;
            break;
          case 'post_attention_layernorm.weight':
            L.mlpNorm = rt.upload(data, t.name);
            bytes += data.byteLength;
            break;
          case 'self_attn.o_proj.weight':
            L.o = up(t.name, data, Hd, Q);
            bytes += L.o.bytes;
            break;
          case 'mlp.down_proj.weight':
            L.down = up(t.name, data, Hd, I);
            bytes += L.down.bytes;
            break;
          default:
            pending[l]!.set(rest, data);
            tryFuse(l);
        }
      } else if (t.name === 'model.embed_tokens.weight') {
        embed = up(t.name, data, config.vocabSize, Hd);
        bytes += embed.bytes;
      } else if (t.name === 'model.norm.weight') {
        norm = rt.upload(data, t.name);
        bytes += data.byteLength;
      } else if (t.name === 'lm_head.weight') {
        lmHead = up(t.name, data, config.vocabSize, Hd);
        bytes += lmHead.bytes;
      } else {
        throw new Error(`GpuModel.load: unexpected tensor ${t.name}`);
      }
      done++;
      opts.onProgress?.({ tensors: done, totalTensors, bytes, totalBytes: weights.totalBytes, name: t.name });
    };

    for await (const t of weights.iterate({ as: 'f32' })) onTensor(t);

    for (let l = 0; l < numLayers; l++) {
      const L = layers[l]!;
      for (const k of ['attnNorm', 'qkv', 'o', 'mlpNorm', 'gateUp', 'down'] as const) {
        if (!L[k]) throw new Error(`GpuModel.load: layer ${l} is missing ${k} after upload (${[...pending[l]!.keys()].join(', ')} pending)`);
      }
    }
    if (!embed || !norm) throw new Error('GpuModel.load: embed_tokens or norm missing');
    if (config.tieWordEmbeddings) lmHead = embed;
    if (!lmHead) throw new Error('GpuModel.load: lm_head missing');
    const invFreq = rt.upload(Float32Array.from(ropeInvFreq(config)), 'rope-inv-freq');
    await rt.sync();
    return new GpuModel(rt, config, format, { embed, layers: layers as GpuLayer[], norm, lmHead, invFreq, bytes });
  }

  /**
   * One forward step over `step.segments` (their tokens' K/V slots already reserved in the
   * cache, metadata in `step.meta`), then lm_head on the rows that need logits, then GPU
   * sampling. One readback: the sampled ids (and the logits when asked).
   *
   * The step is: packStep (token ids, positions, logits rows, sampling params → GPU), the layer
   * loop below (one line per HF modeling_llama line), then head (final norm, lm_head, sampling)
   * and its single readback.
   */
  async forward(step: ForwardStep): Promise<ForwardResult> {
    const rt = this.rt;
    const c = this.config;
    const { hiddenSize: Hd, intermediateSize: I, numHeads: H, numKvHeads: KVH, headDim: D } = c;
    const Q = H * D;
    const KV = KVH * D;
    const QKV = this.qkvDim;
    const segs = step.segments;
    const T = segs.reduce((n, s) => n + s.tokens.length, 0);
    if (T === 0) return { tokens: segs.map(() => null), logits: segs.map(() => undefined) };
    if (step.meta.numTokens !== T) throw new Error(`forward: batch meta has ${step.meta.numTokens} tokens, segments have ${T}`);
    const acquired: GPUBuffer[] = [];
    const acq = (floats: number, label: string) => {
      const b = rt.acquire(floats * 4, undefined, label);
      acquired.push(b);
      return b;
    };
    const packed = this.packStep(step, T, acq);
    const idsB = packed.ids;

    // ---- activations (pool), sized to this step
    const x = acq(T * Hd, 'fwd-x'); //      residual stream [T, Hd]
    const h = acq(T * Hd, 'fwd-h'); //      normed          [T, Hd]
    const qkv = acq(T * QKV, 'fwd-qkv'); // q|k|v           [T, Q+2KV]
    const att = acq(T * Q, 'fwd-att'); //   attention out   [T, Q]
    const gu = acq(T * 2 * I, 'fwd-gu'); // gate|up          [T, 2I]
    const act = acq(T * I, 'fwd-act'); //   silu(g)*u       [T, I]

    // ---- LoRA plan: adapter of every token row
    const lora = this.lora;
    let plan: LoraStepPlan | null = null;
    if (lora && segs.some((s) => s.adapter !== null)) {
      const rowAdapters: Array<string | null> = [];
      for (const s of segs) for (let i = 0; i < s.tokens.length; i++) rowAdapters.push(s.adapter);
      plan = await lora.planStep(rowAdapters);
      if (plan.empty) plan = null;
    }
    // LoRA per module group (q|k|v, o, gate|up, down): the shrink t = x·Aᵀ runs as the tail of the
    // base matmul over the same x (F.shrink → loraShrink), then one expand dispatch adds s·t·Bᵀ into
    // the projection's output (F.expand). Runtimes without the fused path: one shrink + one expand
    // dispatch after the projection (applyGroup).
    const F = plan && lora!.fused ? lora!.fused(plan) : null;
    const loraApply = (layer: number, group: LoraGroup, xin: GPUBuffer, out: GPUBuffer, inDim: number, outDim: number) => {
      if (F) F.expand(layer, group, out, { rows: T, inDim, outDim });
      else if (plan) lora!.applyGroup(plan, layer, group, xin, out, { rows: T, inDim, outDim });
    };
    const tail = (layer: number, group: LoraGroup) => F?.shrink(layer, group);

    try {
      // x = self.embed_tokens(input_ids)                                 x [T, Hd]
      embedding(rt, idsB, this.embed, x, T);

      for (let l = 0; l < c.numLayers; l++) {
        const L = this.layers[l]!;
        // h = self.input_layernorm(x)                                    h [T, Hd]
        rmsnorm(rt, x, L.attnNorm, h, T, Hd, c.rmsNormEps);
        // q, k, v = self.q_proj(h), self.k_proj(h), self.v_proj(h)       qkv [T, Q | KV | KV]  (+ bias)
        matmul(rt, h, L.qkv, qkv, T, { loraShrink: tail(l, 'qkv') });
        //   (+ LoRA: q += s·(h·Aᵀ)·Bᵀ per row's adapter, same for k, v: one expand into the qkv row)
        loraApply(l, 'qkv', h, qkv, Hd, QKV);
        // q, k = apply_rotary_pos_emb(q, k, cos, sin)  (rotate-half, in place, at positions)
        //   q and k heads are adjacent in a qkv row (columns [0, Q+KV)): one dispatch over H+KVH heads
        // past_key_value.update(k, v, layer_idx): K/V rows → their paged slots
        //   one dispatch rotates q, k and writes k, v (positions and slots from step.meta)
        ropeKvWrite(rt, step.cache, l, qkv, step.meta, this.invFreq, T, H, { rowStride: QKV, qCol: 0, kCol: Q, vCol: Q + KV });
        // att = softmax(q·Kᵀ·scaling + causal_mask)·V  (GQA: head h reads kv head h / (H/KVH))   att [T, Q]
        pagedAttention(rt, step.cache, l, qkv, att, step.meta, {
          numHeads: H, qStride: QKV, qCol: 0, outStride: Q, outCol: 0,
          scale: 1 / Math.sqrt(D), window: c.slidingWindow ?? 0,
        });
        // x = x + self.o_proj(att)                                       x [T, Hd]  (matmul accumulates)
        matmul(rt, att, L.o, x, T, { accumulate: true, loraShrink: tail(l, 'o_proj') });
        loraApply(l, 'o_proj', att, x, Q, Hd);
        // h = self.post_attention_layernorm(x)                           h [T, Hd]
        rmsnorm(rt, x, L.mlpNorm, h, T, Hd, c.rmsNormEps);
        // g, u = self.gate_proj(h), self.up_proj(h)                      gu [T, I | I]
        matmul(rt, h, L.gateUp, gu, T, { loraShrink: tail(l, 'gate_up') });
        loraApply(l, 'gate_up', h, gu, Hd, 2 * I);
        // a = act_fn(g) * u                                              act [T, I]
        siluMul(rt, gu, gu, act, T * I, { rows: T, inter: I });
        // x = x + self.down_proj(a)                                      x [T, Hd]
        matmul(rt, act, L.down, x, T, { accumulate: true, loraShrink: tail(l, 'down_proj') });
        loraApply(l, 'down_proj', act, x, I, Hd);
      }

      return await this.head(step, x, h, T, packed, acq);
    } finally {
      if (plan) lora!.endStep(plan);
      for (const b of acquired) rt.release(b);
    }
  }


  /**
   * Step inputs, written before any dispatch is recorded (rt.write flushes recorded work):
   * token ids [T] u32 (positions follow at [T, 2T) for the record; the fused RoPE reads them from
   * the batch metadata), which rows need logits, and per logits row the sampling params (rows that
   * are not sampled get greedy dummies) plus the histories of rows with a repetition penalty.
   */
  private packStep(step: ForwardStep, T: number, acq: (floats: number, label: string) => GPUBuffer): PackedStep {
    const rt = this.rt;
    const V = this.config.vocabSize;
    const segs = step.segments;
    if (this.idsScratch.length < 2 * T) this.idsScratch = new Uint32Array(2 * T * 2);
    const hostIn = this.idsScratch.subarray(0, 2 * T);
    {
      let t = 0;
      for (const s of segs) {
        for (let i = 0; i < s.tokens.length; i++, t++) {
          const id = s.tokens[i]!;
          if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`forward: token id ${id} outside vocab ${V}`);
          hostIn[t] = id;
          hostIn[T + t] = s.startPos + i;
        }
      }
    }
    const inBuf = acq(2 * T, 'fwd-ids-pos');
    rt.write(inBuf, hostIn);

    // ---- rows that need logits: the last position of each segment (or all positions)
    const rowsOf: Array<{ first: number; count: number }> = [];
    let R = 0;
    {
      for (const s of segs) {
        const n = s.tokens.length;
        if (step.allLogits) {
          rowsOf.push({ first: R, count: n });
          R += n;
        } else if (s.sample || s.wantLogits) {
          rowsOf.push({ first: R, count: 1 });
          R += 1;
        } else rowsOf.push({ first: -1, count: 0 });
      }
    }
    // ---- sampling inputs, written before any dispatch is recorded (rt.write flushes recorded work):
    //   per logits row r: SampleParams (rows that are not sampled get greedy dummies), and the
    //   histories (u32 ids) of the rows with a repetition penalty.
    const sampleSegs = segs.map((s, i) => ({ s, i })).filter(({ s }) => s.sample);
    const nS = sampleSegs.length;
    let sampleIn: { params: GPUBuffer; history?: GPUBuffer } | null = null; // null: all greedy → argmax
    if (nS && sampleSegs.some(({ s }) => s.sample!.temperature > 0 || (s.sample!.repetitionPenalty ?? 1) !== 1)) {
      const rowParams: SampleParams[] = Array.from({ length: R }, () => ({ temperature: 0 }));
      const hist: number[] = [];
      for (const { s, i } of sampleSegs) {
        const r = rowsOf[i]!;
        const sp: SampleParams = { ...s.sample! };
        if ((sp.repetitionPenalty ?? 1) !== 1 && s.history?.length) {
          sp.historyOffset = hist.length;
          sp.historyLength = s.history.length;
          for (const id of s.history) hist.push(id);
        } else {
          sp.historyOffset = 0;
          sp.historyLength = 0;
        }
        rowParams[r.first + r.count - 1] = sp;
      }
      const params = acq(R * (SAMPLE_ROW_BYTES / 4), 'fwd-sample-params');
      rt.write(params, new Uint8Array(packSampleParams(rowParams)));
      sampleIn = { params };
      if (hist.length) {
        const history = acq(hist.length, 'fwd-sample-history');
        rt.write(history, Uint32Array.from(hist));
        sampleIn.history = history;
      }
    }

    // ---- grammar masks: one bits buffer [constrained rows, ceil(V/32)] + a word offset per logits
    //   row (0xffffffff: unconstrained), so unconstrained rows (and steps without masks) pay nothing
    let mask: TokenMaskBuffers | null = null;
    if (sampleSegs.some(({ s }) => s.mask)) {
      const rowMasks: Array<Uint32Array | null> = new Array(R).fill(null);
      for (const { s, i } of sampleSegs) {
        const r = rowsOf[i]!;
        rowMasks[r.first + r.count - 1] = s.mask ?? null;
      }
      const packed = packTokenMasks(rowMasks, V)!;
      const bits = acq(packed.bits.length, 'fwd-mask-bits');
      rt.write(bits, packed.bits);
      const rowOffsets = acq(R, 'fwd-mask-rows');
      rt.write(rowOffsets, packed.rowOffsets);
      mask = { bits, rowOffsets };
    }

    return { ids: inBuf, rowsOf, R, sampleSegs, nS, sampleIn, mask };
  }

  /** hl = norm(x[last rows]); logits = lm_head(hl); ids = sample(logits); one readback. */
  private async head(step: ForwardStep, x: GPUBuffer, h: GPUBuffer, T: number, packed: PackedStep, acq: (floats: number, label: string) => GPUBuffer): Promise<ForwardResult> {
    const rt = this.rt;
    const c = this.config;
    const { hiddenSize: Hd, vocabSize: V } = c;
    const segs = step.segments;
    const { rowsOf, R, sampleSegs, nS, sampleIn, mask } = packed;
    const result: ForwardResult = { tokens: segs.map(() => null), logits: segs.map(() => undefined) };
    if (R === 0) {
      await rt.sync();
      return result;
    }
    // xl = x[last rows]                                                xl [R, Hd]
    let xl = x;
    // (a pure decode batch needs every row: no gather)
    const direct = step.allLogits || R === T;
    if (!direct) {
      xl = acq(R * Hd, 'fwd-xlast');
      let t = 0;
      segs.forEach((s, i) => {
        const r = rowsOf[i]!;
        if (r.count) rt.copy(x, (t + s.tokens.length - 1) * Hd * 4, xl, r.first * Hd * 4, Hd * 4);
        t += s.tokens.length;
      });
    }
    // hl = self.norm(xl)                                               h [R, Hd]
    rmsnorm(rt, xl, this.norm, h, R, Hd, c.rmsNormEps);
    // logits = self.lm_head(hl)            logits [R, V] then sampled ids [R] (u32) after them
    const out = acq(R * V + (nS ? R : 0), 'fwd-logits');
    matmul(rt, h, this.lmHead, out, R);

    let idsBuf: GPUBuffer | null = null;
    if (nS) {
      // next = sample(logits[row] (masked rows: disallowed tokens → -inf), temperature, top_k, top_p,
      //               repetition_penalty, seed)                                ids [R] u32 (one per logits row)
      const ids = acq(R, 'fwd-sampled');
      const m = mask ?? undefined;
      if (sampleIn) sample(rt, out, R, V, sampleIn.params, ids, { history: sampleIn.history, mask: m });
      else argmax(rt, out, R, V, ids, { mask: m }); // all greedy, no penalty: next = argmax(logits[r] over allowed tokens)
      idsBuf = ids;
    }
    // one readback: sampled ids, plus the logits when any segment wants them (ids copied behind
    // the logits so one read returns both; without logits the ids buffer is read directly)
    const wantAny = step.allLogits || segs.some((s) => s.wantLogits);
    const nIds = nS ? R : 0;
    // Only some rows want logits (per-request logprobs): gather just those rows, so the other
    // requests of the step do not pay for a [R, V] readback.     sel [W, V] then ids [R] u32
    let sel: GPUBuffer | null = null;
    const selRow = new Map<number, number>(); // segment index → first row in sel
    let W = 0;
    if (wantAny && !step.allLogits) {
      segs.forEach((s, i) => {
        const r = rowsOf[i]!;
        if (r.count && s.wantLogits) {
          selRow.set(i, W);
          W += r.count;
        }
      });
      sel = acq(W * V + nIds, 'fwd-logits-sel');
      for (const [i, w] of selRow) rt.copy(out, rowsOf[i]!.first * V * 4, sel, w * V * 4, rowsOf[i]!.count * V * 4);
      if (idsBuf) rt.copy(idsBuf, 0, sel, W * V * 4, R * 4);
    } else if (idsBuf && wantAny) rt.copy(idsBuf, 0, out, R * V * 4, R * 4);
    const lgFloats = sel ? W * V : R * V;
    const buf = sel
      ? await rt.read(sel, (lgFloats + nIds) * 4)
      : wantAny
        ? await rt.read(out, (R * V + nIds) * 4)
        : idsBuf
          ? await rt.read(idsBuf, nIds * 4)
          : await rt.read(out, nIds * 4, R * V * 4);
    const idsOut = new Uint32Array(buf, wantAny ? lgFloats * 4 : 0, nIds);
    for (const { i } of sampleSegs) {
      const r = rowsOf[i]!;
      result.tokens[i] = idsOut[r.first + r.count - 1]!;
    }
    if (wantAny) {
      const lg = new Float32Array(buf, 0, lgFloats);
      segs.forEach((s, i) => {
        const r = rowsOf[i]!;
        const first = sel ? selRow.get(i) : r.first;
        if (r.count && first !== undefined && (step.allLogits || s.wantLogits)) result.logits[i] = lg.slice(first * V, (first + r.count) * V);
      });
    }
    return result;
  }

  destroy(): void {
    const rt = this.rt;
    const seen = new Set<GpuWeight>();
    const dw = (w: GpuWeight) => {
      if (!seen.has(w)) destroyWeight(rt, w);
      seen.add(w);
    };
    dw(this.embed);
    dw(this.lmHead);
    rt.destroy(this.norm);
    rt.destroy(this.invFreq);
    for (const L of this.layers) {
      rt.destroy(L.attnNorm);
      rt.destroy(L.mlpNorm);
      dw(L.qkv);
      dw(L.o);
      dw(L.gateUp);
      dw(L.down);
    }
  }
}
