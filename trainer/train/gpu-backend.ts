// The WebGPU training backend: the frozen base weights of a GpuModel (f32), LoRA A/B on the GPU,
// a training forward that keeps what the backward needs (or, with recompute, only each layer's
// input), the backward through every layer with the kernels in shaders/<op>/<op>.backward.*, and
// AdamW + global-norm clipping on the GPU. llm.c-style: each forward line and the backward line
// that inverts it share a comment; shapes use T tokens of the micro-batch (all rows packed into
// one block: no attention across rows or documents), Hd hidden, Q = H·D, KV = KVH·D, I, V, r.
//
//   forward (layer l, x [T, Hd] in)              backward (dx [T, Hd] = ∂L/∂x_{l+1} in)
//   h   = rmsnorm(x; attnNorm)                   dx   += rmsnormBackward(x; dh)
//   qkv = h·Wqkvᵀ + s·(h·Aᵀ)·Bᵀ per q/k/v        dh    = dqkv·Wqkv + LoRA (dA, dB, dh += dH·A)
//   q,k = rope(q, k)                             dq,dk = ropeBackward(dq, dk)
//   att = attention(q, k, v) (+ lse saved)       dq,dk,dv = attentionBackward(datt)
//   x1  = x + att·Woᵀ + LoRA                     datt  = dx1·Wo + LoRA
//   h2  = rmsnorm(x1; mlpNorm)                   dx1   = dx + rmsnormBackward(x1; dh2)
//   gu  = h2·Wguᵀ + LoRA (gate | up)             dh2   = dgu·Wgu + LoRA
//   a   = silu(g)·u                              dgu   = siluMulBackward(da)
//   x'  = x1 + a·Wdᵀ + LoRA                      da    = dx·Wd + LoRA
// head: hf = rmsnorm(xL; norm); logp = log_softmax(hf·Wheadᵀ)[label] in vocabulary row chunks
// (lmHeadCrossEntropy: never all logits at once); backward: the objective's w = ∂L/∂logp becomes
// coef = −w, dhf = ∂(−Σ coef·logp)/∂hf (logits recomputed per chunk), dxL = rmsnormBackward(xL; dhf).
//
// Two LoRA paths (same math, GpuBackendOptions.merged):
//   merged (small models without lora_dropout, the default there): the forward and dX use
//     W_eff = W + s·B·A (one loraMerge dispatch per optimizer step), each fused projection's
//     backward is dX = dY·W_eff plus dW (+)= dYᵀ·X, and one loraGradsFromDw dispatch per step turns
//     the accumulated dW into dA = s·Bᵀ·dW, dB = s·dW·Aᵀ (shaders/lora_train). 4 + 8 GEMMs a layer
//     instead of 18 + 34 tiny ones; dW costs N·K·T against the factored 2r·(N+K)·T, so it is
//     for small hidden sizes.
//   factored: H = X·Aᵀ saved, Y += s·H·Bᵀ; backward dB = s·dYᵀ·H, dH = s·dY·B, dA = dHᵀ·X,
//     dX += dH·A (lora_dropout: X replaced by dropout(X) in H and dA, dX through the mask).
// All LoRA tensors live in four flat buffers (params, grads, AdamW m and v; per module A [r, in]
// then B [out, r]), so clipping and AdamW are one dispatch each.
import type { Runtime } from '../../shaders/gpu/runtime.ts';
import type { GpuModel } from '../../engine/forward/gpu-model.ts';
import type { ModelConfig } from '../../engine/model/config.ts';
import type { LoraModule } from '../../engine/lora/hook.ts';
import { moduleDims, type LoraPair } from '../../engine/lora/peft.ts';
import type { GpuWeight } from '../../shaders/matmul/weights.ts';
import { matmul } from '../../shaders/matmul/matmul.ts';
import { gemm, linearBackwardInput, type Operand } from '../../shaders/matmul/matmul.backward.ts';
import { rmsnorm } from '../../shaders/rmsnorm/rmsnorm.ts';
import { rmsnormBackward } from '../../shaders/rmsnorm/rmsnorm.backward.ts';
import { rope } from '../../shaders/rope/rope.ts';
import { ropeBackward } from '../../shaders/rope/rope.backward.ts';
import { siluMul } from '../../shaders/silu_mul/silu_mul.ts';
import { siluMulBackward } from '../../shaders/silu_mul/silu_mul.backward.ts';
import { embedding } from '../../shaders/embedding/embedding.ts';
import { attentionTrainForward, attentionBackward } from '../../shaders/attention/attention.backward.ts';
import { lmHeadCrossEntropy } from '../../shaders/cross_entropy/cross_entropy.ts';
import { dropout } from '../../shaders/dropout/dropout.ts';
import { adamwStep, gradNorm } from '../../shaders/adamw/adamw.ts';
import { loraTable, loraMerge, loraGradsFromDw, type LoraTable } from '../../shaders/lora_train/lora_train.ts';
import type { AdamHyper, LoraSetup, OptimizerState, TrainBackend } from './backend.ts';
import { targetPositions } from './backend.ts';
import type { Sequence } from './data.ts';

interface LoraParam {
  key: string;
  layer: number;
  module: LoraModule;
  inDim: number;
  outDim: number;
  /** float offsets of A [r, in] and B [out, r] in the flat LoRA buffers (params, grads, m, v) */
  aOff: number;
  bOff: number;
}

/** The four fused projections of a layer, as GpuModel uploads them (rows of W [N, K]). */
type Fused = 'qkv' | 'o' | 'gateUp' | 'down';
const FUSED: Fused[] = ['qkv', 'o', 'gateUp', 'down'];

/** Merged-path weights: W (frozen copy), W_eff = W + s·B·A and dW, each one flat buffer of every
 *  layer's fused projections; per (layer, fused) its float offset and the rows dW is needed for. */
interface Merged {
  base: GPUBuffer;
  eff: GPUBuffer;
  dw: GPUBuffer;
  floats: number;
  off: Array<Record<Fused, number>>;
  /** rows [lo, hi) of the fused W that hold LoRA modules (null: none) */
  rows: Array<Record<Fused, [number, number] | null>>;
  table: LoraTable;
  /** W_eff is behind the LoRA params (after a step or a write) */
  stale: boolean;
  /** dW holds gradient not yet turned into dA/dB */
  pending: boolean;
}

/** What one layer's forward keeps for its backward. */
interface LayerSaved {
  x: GPUBuffer; // [T, Hd] layer input
  h?: GPUBuffer; // [T, Hd]
  qkv?: GPUBuffer; // [T, Q+2KV] after rope
  att?: GPUBuffer; // [T, Q]
  lse?: GPUBuffer; // [T, H]
  x1?: GPUBuffer; // [T, Hd]
  h2?: GPUBuffer; // [T, Hd]
  gu?: GPUBuffer; // [T, 2I]
  act?: GPUBuffer; // [T, I]
  /** H = X·Aᵀ [T, r] per module */
  hA: Map<LoraModule, GPUBuffer>;
  /** lora_dropout(X) [T, in] per module (train with dropout > 0) */
  xd: Map<LoraModule, GPUBuffer>;
}

interface Pass {
  T: number;
  rows: Sequence[];
  /** token ids [T] u32 */
  ids: GPUBuffer;
  /** positions [T] u32 (restart per document) */
  pos: GPUBuffer;
  /** first token of each token's document [T] u32 */
  seg: GPUBuffer;
  layers: LayerSaved[];
  xL: GPUBuffer;
  hf: GPUBuffer;
  /** shifted labels i32 [T] (row t's target, −100 ignored) */
  labels: GPUBuffer;
  /** per row: global token index of each target position, and its label */
  targets: Array<{ t: number[]; y: number[] }>;
  adapter: boolean;
  /** lora_dropout seed of this pass (null: no dropout) */
  dropSeed: number | null;
  /** through W_eff (merged path, adapter on) */
  merged: boolean;
  /** [T] ones (bias terms on the merged path) */
  ones?: GPUBuffer;
  owned: GPUBuffer[];
}

/** The dropout seed of one module in one pass (each PEFT LoRA module has its own nn.Dropout). */
export const dropoutSeedFor = (seed: number, layer: number, module: LoraModule): number =>
  (Math.imul((seed ^ 0x5bd1e995) >>> 0, 0x9e3779b1) + Math.imul(layer * 7 + LORA_MODULES_ORDER.indexOf(module) + 1, 0x85ebca6b)) >>> 0;
const LORA_MODULES_ORDER: LoraModule[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

export interface GpuBackendOptions {
  /** Recompute each layer's activations in backward from its saved input (bounded memory). */
  recompute?: boolean;
  /** Train through merged weights (see the header). Default: when lora_dropout is 0 and the
   *  hidden size is at most MERGED_MAX_HIDDEN. Needs lora_dropout 0. */
  merged?: boolean;
}

/** Largest hidden size the merged path is the default for (stories260K: 64; SmolLM2-135M, 576, stays factored). */
export const MERGED_MAX_HIDDEN = 256;

/** Where each LoRA module sits in its layer's fused projection: the fused weight and its first row. */
function fusedRows(c: ModelConfig, m: LoraModule): { f: Fused; row: number } {
  const Q = c.numHeads * c.headDim, KV = c.numKvHeads * c.headDim;
  switch (m) {
    case 'q_proj': return { f: 'qkv', row: 0 };
    case 'k_proj': return { f: 'qkv', row: Q };
    case 'v_proj': return { f: 'qkv', row: Q + KV };
    case 'o_proj': return { f: 'o', row: 0 };
    case 'gate_proj': return { f: 'gateUp', row: 0 };
    case 'up_proj': return { f: 'gateUp', row: c.intermediateSize };
    case 'down_proj': return { f: 'down', row: 0 };
  }
}

export class GpuTrainBackend implements TrainBackend {
  readonly config: ModelConfig;
  readonly lora: LoraSetup;
  private params: LoraParam[] = [];
  private byKey = new Map<string, LoraParam>();
  private step = 0;
  private pass: Pass | null = null;
  private normOut: GPUBuffer;
  private zeros = new Map<number, Float32Array>();
  private peak = 0;
  private live = 0;
  /** floats of one flat LoRA buffer */
  private nLora = 0;
  /** flat LoRA buffers: params (A, B of every module), their gradients, AdamW first / second moments */
  private P: GPUBuffer;
  private G: GPUBuffer;
  private M1: GPUBuffer;
  private M2: GPUBuffer;
  private merged: Merged | null = null;

  constructor(readonly rt: Runtime, readonly model: GpuModel, lora: LoraSetup, init: Map<string, LoraPair>, private readonly opts: GpuBackendOptions = {}) {
    const c = model.config;
    this.config = c;
    this.lora = lora;
    if (c.slidingWindow) throw new Error(`sliding-window attention (${c.slidingWindow}) is not supported by the training attention kernel`);
    if (model.format !== 'f32') throw new Error(`training needs the base uploaded as f32 (got ${model.format})`);
    if (opts.merged && lora.dropout > 0) throw new Error('the merged-weight path needs lora_dropout 0');
    const r = lora.r;
    for (let l = 0; l < c.numLayers; l++) {
      for (const m of lora.modules) {
        const key = `${l}.${m}`;
        const p = init.get(key);
        if (!p) throw new Error(`initial adapter has no ${key}`);
        const { inDim, outDim } = moduleDims(c, m);
        if (p.A.length !== r * inDim || p.B.length !== outDim * r) throw new Error(`initial adapter ${key}: A/B sizes ${p.A.length}/${p.B.length}, expected ${r * inDim}/${outDim * r}`);
        const lp: LoraParam = { key, layer: l, module: m, inDim, outDim, aOff: this.nLora, bOff: this.nLora + r * inDim };
        this.nLora += r * (inDim + outDim);
        this.params.push(lp);
        this.byKey.set(key, lp);
      }
    }
    const flat = (label: string) => rt.createBuffer(Math.max(1, this.nLora) * 4, label);
    this.P = flat('lora-params');
    this.G = flat('lora-grads');
    this.M1 = flat('lora-adam-m');
    this.M2 = flat('lora-adam-v');
    this.writeFlat(this.P, init);
    this.zero(this.G, this.nLora);
    this.zero(this.M1, this.nLora);
    this.zero(this.M2, this.nLora);
    this.normOut = rt.createBuffer(16, 'grad-norm-out');
    const merged = opts.merged ?? (lora.dropout === 0 && c.hiddenSize <= MERGED_MAX_HIDDEN);
    if (merged && this.params.length) this.merged = this.buildMerged();
  }

  /** Flat copies of every layer's fused projections (W and W_eff), dW, and the module table. */
  private buildMerged(): Merged {
    const rt = this.rt, c = this.config;
    const off: Merged['off'] = [], rows: Merged['rows'] = [];
    let floats = 0;
    for (let l = 0; l < c.numLayers; l++) {
      const L = this.model.layers[l]!;
      const o = {} as Record<Fused, number>, rr = {} as Record<Fused, [number, number] | null>;
      for (const f of FUSED) {
        o[f] = floats;
        floats += L[f].N * L[f].K;
        rr[f] = null;
      }
      off.push(o);
      rows.push(rr);
    }
    const base = rt.createBuffer(floats * 4, 'train-w'), eff = rt.createBuffer(floats * 4, 'train-w-eff'), dw = rt.createBuffer(floats * 4, 'train-dw');
    for (let l = 0; l < c.numLayers; l++) {
      const L = this.model.layers[l]!;
      for (const f of FUSED) for (const part of L[f].parts) rt.copy(part.data, 0, base, (off[l]![f] + part.rowStart * L[f].K) * 4, part.rows * L[f].K * 4);
    }
    rt.copy(base, 0, eff, 0, floats * 4);
    const entries = this.params.map((p) => {
      const { f, row } = fusedRows(c, p.module);
      const rr = rows[p.layer]!;
      const cur = rr[f];
      rr[f] = cur ? [Math.min(cur[0], row), Math.max(cur[1], row + p.outDim)] : [row, row + p.outDim];
      return { wOff: off[p.layer]![f] + row * p.inDim, N: p.outDim, K: p.inDim, aOff: p.aOff, bOff: p.bOff };
    });
    const m: Merged = { base, eff, dw, floats, off, rows, table: loraTable(rt, entries, this.lora.r), stale: true, pending: false };
    this.zero(dw, floats);
    return m;
  }

  /** A map of LoRA pairs → one flat buffer (params or moments). */
  private writeFlat(b: GPUBuffer, w: Map<string, LoraPair>, what = 'adapter'): void {
    const flat = new Float32Array(Math.max(1, this.nLora));
    for (const p of this.params) {
      const v = w.get(p.key);
      if (!v) throw new Error(`${what} has no ${p.key}`);
      flat.set(v.A, p.aOff);
      flat.set(v.B, p.bOff);
    }
    this.rt.write(b, flat);
  }

  peakBytes(): number {
    return this.peak;
  }

  // ------------------------------------------------------------------ buffers
  private acq(p: Pass | null, floats: number, label: string): GPUBuffer {
    const b = this.rt.acquire(Math.max(1, floats) * 4, undefined, label);
    if (p) p.owned.push(b);
    this.live += b.size;
    this.peak = Math.max(this.peak, this.live);
    return b;
  }
  private rel(b: GPUBuffer): void {
    this.live -= b.size;
    this.rt.release(b);
  }
  private endPass(): void {
    if (!this.pass) return;
    for (const b of this.pass.owned) this.rel(b);
    this.pass = null;
  }
  private zero(b: GPUBuffer, floats: number): void {
    let z = this.zeros.get(floats);
    if (!z) this.zeros.set(floats, (z = new Float32Array(floats)));
    this.rt.write(b, z);
  }

  // ------------------------------------------------------------------ LoRA linear pieces (factored path)
  private opA = (p: LoraParam): Operand => ({ buffer: this.P, ld: p.inDim, offset: p.aOff });
  private opB = (p: LoraParam): Operand => ({ buffer: this.P, ld: this.lora.r, offset: p.bOff });

  /** Y[:, col:col+N] += s·(dropout(X)·Aᵀ)·Bᵀ, H = dropout(X)·Aᵀ kept in h (xd: dropout(X), when dropping). */
  private loraFwd(p: LoraParam, x: GPUBuffer, T: number, y: Operand, h: GPUBuffer, drop?: { xd: GPUBuffer; seed: number }): void {
    const r = this.lora.r;
    if (drop) {
      dropout(this.rt, x, drop.xd, T * p.inDim, this.lora.dropout, drop.seed);
      x = drop.xd;
    }
    gemm(this.rt, { buffer: x, ld: p.inDim }, { ...this.opA(p), trans: true }, { buffer: h, ld: r }, T, r, p.inDim);
    gemm(this.rt, { buffer: h, ld: r }, { ...this.opB(p), trans: true }, y, T, p.outDim, r, { alpha: this.lora.scaling, accumulate: true });
  }

  /** dB += s·dYᵀ·H; dH = s·dY·B; dA += dHᵀ·X; dX += dH·A (through the dropout mask when dropping: x is then dropout(X)). */
  private loraBwd(p: LoraParam, x: GPUBuffer, h: GPUBuffer, dy: Operand, dx: GPUBuffer, T: number, pass: Pass, dropSeed?: number): void {
    const r = this.lora.r, s = this.lora.scaling, rt = this.rt;
    const dA: Operand = { buffer: this.G, ld: p.inDim, offset: p.aOff }, dB: Operand = { buffer: this.G, ld: r, offset: p.bOff };
    gemm(rt, { ...dy, trans: true }, { buffer: h, ld: r }, dB, p.outDim, r, T, { alpha: s, accumulate: true });
    const dH = this.acq(pass, T * r, 'lora-dH');
    gemm(rt, dy, this.opB(p), { buffer: dH, ld: r }, T, r, p.outDim, { alpha: s });
    gemm(rt, { buffer: dH, ld: r, trans: true }, { buffer: x, ld: p.inDim }, dA, r, p.inDim, T, { accumulate: true });
    if (dropSeed === undefined) {
      gemm(rt, { buffer: dH, ld: r }, this.opA(p), { buffer: dx, ld: p.inDim }, T, p.inDim, r, { accumulate: true });
      return;
    }
    const tmp = this.acq(pass, T * p.inDim, 'lora-dX');
    gemm(rt, { buffer: dH, ld: r }, this.opA(p), { buffer: tmp, ld: p.inDim }, T, p.inDim, r);
    dropout(rt, tmp, dx, T * p.inDim, this.lora.dropout, dropSeed, { accumulate: true });
  }

  // ------------------------------------------------------------------ merged path pieces
  /** y[T, N] (+)= x[T, K]·W_eff[f]ᵀ (+ the frozen bias), W_eff of layer l's fused projection f. */
  private effFwd(pass: Pass, l: number, f: Fused, x: GPUBuffer, y: GPUBuffer, accumulate: boolean): void {
    const m = this.merged!, w = this.model.layers[l]![f], T = pass.T;
    gemm(this.rt, { buffer: x, ld: w.K }, { buffer: m.eff, ld: w.K, offset: m.off[l]![f], trans: true }, { buffer: y, ld: w.N }, T, w.N, w.K, { accumulate });
    if (w.bias) gemm(this.rt, { buffer: this.ones(pass), ld: 1 }, { buffer: w.bias, ld: w.N }, { buffer: y, ld: w.N }, T, w.N, 1, { accumulate: true });
  }

  /** Backward of y = x·W_effᵀ: dx[T, K] = dy·W_eff (unless dx is null), dW[rows] += dy[:, rows]ᵀ·x. */
  private effBwd(pass: Pass, l: number, f: Fused, x: GPUBuffer, dy: GPUBuffer, dx: GPUBuffer | null): void {
    const m = this.merged!, w = this.model.layers[l]![f], T = pass.T, rt = this.rt;
    if (dx) gemm(rt, { buffer: dy, ld: w.N }, { buffer: m.eff, ld: w.K, offset: m.off[l]![f] }, { buffer: dx, ld: w.K }, T, w.K, w.N);
    const rows = m.rows[l]![f];
    if (!rows) return;
    const [lo, hi] = rows;
    gemm(rt, { buffer: dy, ld: w.N, offset: lo, trans: true }, { buffer: x, ld: w.K }, { buffer: m.dw, ld: w.K, offset: m.off[l]![f] + lo * w.K }, hi - lo, w.K, T, { accumulate: true });
    m.pending = true;
  }

  /** A [T] column of ones (bias as a K = 1 product). */
  private ones(pass: Pass): GPUBuffer {
    if (!pass.ones) {
      pass.ones = this.acq(pass, pass.T, 'ones');
      this.rt.write(pass.ones, new Float32Array(pass.T).fill(1));
    }
    return pass.ones;
  }

  /** W_eff = W + s·B·A when the LoRA params moved since the last merge. */
  private syncMerged(): void {
    const m = this.merged;
    if (!m || !m.stale) return;
    loraMerge(this.rt, m.table, m.base, this.P, m.eff, this.lora.scaling);
    m.stale = false;
  }

  /** dA, dB (the grads buffer) from the accumulated dW. */
  private finishGrads(): void {
    const m = this.merged;
    if (!m || !m.pending) return;
    loraGradsFromDw(this.rt, m.table, m.dw, this.P, this.G, this.lora.scaling);
    m.pending = false;
  }

  /** dX (+)= dY[:, rows] · W[rowStart : rowStart+n, :] for a row range of a fused frozen weight. */
  private weightRowsBwd(w: GpuWeight, rowStart: number, n: number, dy: Operand, dx: GPUBuffer, T: number, accumulate: boolean): void {
    let acc = accumulate;
    for (const part of w.parts) {
      const lo = Math.max(rowStart, part.rowStart), hi = Math.min(rowStart + n, part.rowStart + part.rows);
      if (hi <= lo) continue;
      gemm(this.rt, { buffer: dy.buffer, ld: dy.ld, offset: (dy.offset ?? 0) + (lo - rowStart) }, { buffer: part.data, ld: w.K, offset: (lo - part.rowStart) * w.K },
        { buffer: dx, ld: w.K }, T, w.K, hi - lo, { accumulate: acc });
      acc = true;
    }
  }

  // ------------------------------------------------------------------ forward
  /** Layer l forward from s.x; fills s (activations) and writes the layer output into out. */
  private layerForward(pass: Pass, l: number, s: LayerSaved, out: GPUBuffer): void {
    const rt = this.rt, c = this.config, L = this.model.layers[l]!;
    const { hiddenSize: Hd, intermediateSize: I, numHeads: H, numKvHeads: KVH, headDim: D } = c;
    const T = pass.T, Q = H * D, KV = KVH * D, QKV = Q + 2 * KV, r = this.lora.r;
    const lp = (m: LoraModule) => (pass.adapter ? this.byKey.get(`${l}.${m}`) : undefined);
    const hA = (m: LoraModule) => {
      let b = s.hA.get(m);
      if (!b) s.hA.set(m, (b = this.acq(pass, T * r, `hA-${m}`)));
      return b;
    };
    const drop = (m: LoraModule) => {
      if (pass.dropSeed === null) return undefined;
      let b = s.xd.get(m);
      if (!b) s.xd.set(m, (b = this.acq(pass, T * moduleDims(c, m).inDim, `xd-${m}`)));
      return { xd: b, seed: dropoutSeedFor(pass.dropSeed, l, m) };
    };
    const mg = pass.merged;
    // h = input_layernorm(x)
    s.h ??= this.acq(pass, T * Hd, 'h');
    rmsnorm(rt, s.x, L.attnNorm, s.h, T, Hd, c.rmsNormEps);
    // q, k, v = q_proj(h), k_proj(h), v_proj(h)   (merged: h·W_effᵀ; factored: + LoRA on each column slice)
    s.qkv ??= this.acq(pass, T * QKV, 'qkv');
    if (mg) this.effFwd(pass, l, 'qkv', s.h, s.qkv, false);
    else {
      matmul(rt, s.h, L.qkv, s.qkv, T);
      const cols: Array<[LoraModule, number]> = [['q_proj', 0], ['k_proj', Q], ['v_proj', Q + KV]];
      for (const [m, col] of cols) {
        const p = lp(m);
        if (p) this.loraFwd(p, s.h, T, { buffer: s.qkv, ld: QKV, offset: col }, hA(m), drop(m));
      }
    }
    // q, k = apply_rotary_pos_emb(q, k)   (positions restart per document)
    rope(rt, s.qkv, pass.pos, this.model.invFreq, T, H, D, { rowStride: QKV, colOffset: 0 });
    rope(rt, s.qkv, pass.pos, this.model.invFreq, T, KVH, D, { rowStride: QKV, colOffset: Q });
    // att = softmax(q·kᵀ/√D, causal within the document)·v   (lse saved)
    s.att ??= this.acq(pass, T * Q, 'att');
    s.lse ??= this.acq(pass, T * H, 'lse');
    attentionTrainForward(rt, { T, numHeads: H, numKvHeads: KVH, headDim: D },
      { buffer: s.qkv, stride: QKV, col: 0 }, { buffer: s.qkv, stride: QKV, col: Q }, { buffer: s.qkv, stride: QKV, col: Q + KV }, pass.seg, s.att, s.lse);
    // x1 = x + o_proj(att)
    s.x1 ??= this.acq(pass, T * Hd, 'x1');
    rt.copy(s.x, 0, s.x1, 0, T * Hd * 4);
    if (mg) this.effFwd(pass, l, 'o', s.att, s.x1, true);
    else {
      matmul(rt, s.att, L.o, s.x1, T, { accumulate: true });
      const po = lp('o_proj');
      if (po) this.loraFwd(po, s.att, T, { buffer: s.x1, ld: Hd }, hA('o_proj'), drop('o_proj'));
    }
    // h2 = post_attention_layernorm(x1)
    s.h2 ??= this.acq(pass, T * Hd, 'h2');
    rmsnorm(rt, s.x1, L.mlpNorm, s.h2, T, Hd, c.rmsNormEps);
    // g, u = gate_proj(h2), up_proj(h2)
    s.gu ??= this.acq(pass, T * 2 * I, 'gu');
    if (mg) this.effFwd(pass, l, 'gateUp', s.h2, s.gu, false);
    else {
      matmul(rt, s.h2, L.gateUp, s.gu, T);
      for (const [m, col] of [['gate_proj', 0], ['up_proj', I]] as Array<[LoraModule, number]>) {
        const p = lp(m);
        if (p) this.loraFwd(p, s.h2, T, { buffer: s.gu, ld: 2 * I, offset: col }, hA(m), drop(m));
      }
    }
    // a = silu(g)·u
    s.act ??= this.acq(pass, T * I, 'act');
    siluMul(rt, s.gu, s.gu, s.act, T * I, { rows: T, inter: I });
    // x' = x1 + down_proj(a)
    rt.copy(s.x1, 0, out, 0, T * Hd * 4);
    if (mg) this.effFwd(pass, l, 'down', s.act, out, true);
    else {
      matmul(rt, s.act, L.down, out, T, { accumulate: true });
      const pd = lp('down_proj');
      if (pd) this.loraFwd(pd, s.act, T, { buffer: out, ld: Hd }, hA('down_proj'), drop('down_proj'));
    }
  }

  /** Frees a layer's activations (recompute mode) but keeps its input. */
  private dropActivations(pass: Pass, s: LayerSaved): void {
    const keep = new Set([s.x]);
    const drop: GPUBuffer[] = [];
    for (const b of [s.h, s.qkv, s.att, s.lse, s.x1, s.h2, s.gu, s.act, ...s.hA.values(), ...s.xd.values()]) if (b && !keep.has(b)) drop.push(b);
    for (const b of drop) {
      const i = pass.owned.indexOf(b);
      if (i >= 0) pass.owned.splice(i, 1);
      this.rel(b);
    }
    s.h = s.qkv = s.att = s.lse = s.x1 = s.h2 = s.gu = s.act = undefined;
    s.hA.clear();
    s.xd.clear();
  }

  async logps(rows: Sequence[], o: { adapter: boolean; train: boolean; dropoutSeed?: number }): Promise<Float64Array[]> {
    this.endPass();
    const rt = this.rt, c = this.config;
    const { hiddenSize: Hd, vocabSize: V } = c;
    const T = rows.reduce((n, r) => n + r.tokens.length, 0);
    const ids = new Uint32Array(T), pos = new Uint32Array(T), seg = new Uint32Array(T), lab = new Int32Array(T).fill(-100);
    const targets: Pass['targets'] = [];
    let off = 0;
    for (const row of rows) {
      const n = row.tokens.length;
      const starts = row.docStarts.length ? row.docStarts : [0];
      let d = 0;
      for (let t = 0; t < n; t++) {
        const id = row.tokens[t]!;
        if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`token id ${id} outside vocab ${V}`);
        while (d + 1 < starts.length && starts[d + 1]! <= t) d++;
        ids[off + t] = id;
        seg[off + t] = off + starts[d]!;
        pos[off + t] = t - starts[d]!;
      }
      const tp = targetPositions(row);
      for (const t of tp) lab[off + t] = row.labels[t + 1]!;
      targets.push({ t: tp.map((t) => off + t), y: tp.map((t) => row.labels[t + 1]!) });
      off += n;
    }
    const pass: Pass = { T, rows, ids: null!, pos: null!, seg: null!, labels: null!, layers: [], xL: null!, hf: null!, targets, adapter: o.adapter, dropSeed: o.train && o.adapter && this.lora.dropout > 0 && o.dropoutSeed !== undefined ? o.dropoutSeed >>> 0 : null, merged: o.adapter && !!this.merged, owned: [] };
    if (pass.merged) this.syncMerged();
    pass.ids = this.acq(pass, T, 'ids');
    pass.pos = this.acq(pass, T, 'pos');
    pass.seg = this.acq(pass, T, 'seg');
    rt.write(pass.ids, ids);
    rt.write(pass.pos, pos);
    rt.write(pass.seg, seg);
    pass.labels = this.acq(pass, T, 'labels');
    rt.write(pass.labels, lab);
    // x = embed_tokens(input_ids)
    let x = this.acq(pass, T * Hd, 'x0');
    embedding(rt, pass.ids, this.model.embed, x, T);
    for (let l = 0; l < c.numLayers; l++) {
      const s: LayerSaved = { x, hA: new Map(), xd: new Map() };
      const next = this.acq(pass, T * Hd, `x${l + 1}`);
      this.layerForward(pass, l, s, next);
      if (!o.train || this.opts.recompute) this.dropActivations(pass, s);
      if (!o.train && l > 0) {
        // inference only: the previous input is no longer needed
        const i = pass.owned.indexOf(x);
        if (i >= 0) pass.owned.splice(i, 1);
        this.rel(x);
      }
      pass.layers.push(s);
      x = next;
    }
    // hf = norm(xL); logits = lm_head(hf)
    pass.xL = x;
    pass.hf = this.acq(pass, T * Hd, 'hf');
    rmsnorm(rt, x, this.model.norm, pass.hf, T, Hd, c.rmsNormEps);
    // logp[t] = log_softmax(lm_head(hf[t]))[label_t]   (vocabulary in row chunks)
    const lse = this.acq(pass, T, 'lse-head'), logp = this.acq(pass, T, 'logp');
    lmHeadCrossEntropy(rt, { h: pass.hf, w: this.model.lmHead, labels: pass.labels, T, lse, logp });
    const lp = await rt.readF32(logp, T);
    const out = targets.map(({ t }) => Float64Array.from(t, (tt) => lp[tt]!));
    if (o.train) this.pass = pass;
    else {
      this.pass = pass;
      this.endPass();
    }
    return out;
  }

  /** Logits [T, V] of one row with the adapter (tests, evaluation): the trainer's own forward + lm_head. */
  async logits(tokens: number[]): Promise<Float32Array> {
    const c = this.config;
    const row = { tokens, labels: tokens.map(() => -100), docStarts: [0] };
    await this.logps([row], { adapter: true, train: true });
    const pass = this.pass!;
    const T = tokens.length;
    const out = this.acq(pass, T * c.vocabSize, 'logits');
    matmul(this.rt, pass.hf, this.model.lmHead, out, T);
    const lg = await this.rt.readF32(out, T * c.vocabSize);
    this.endPass();
    return lg;
  }

  // ------------------------------------------------------------------ backward
  async backward(weights: Float64Array[]): Promise<void> {
    const pass = this.pass;
    if (!pass || !pass.adapter) throw new Error('backward: no training forward to differentiate');
    const rt = this.rt, c = this.config;
    const { hiddenSize: Hd } = c;
    const T = pass.T;
    // coef[t] = −w[t]:  dhf = ∂(−Σ coef·logp)/∂hf = ∂(Σ w·logp)/∂hf
    const coef = new Float32Array(T);
    pass.targets.forEach(({ t }, ri) => t.forEach((tt, i) => (coef[tt] = -weights[ri]![i]!)));
    const coefB = this.acq(pass, T, 'coef');
    rt.write(coefB, coef);
    const dhf = this.acq(pass, T * Hd, 'dhf');
    lmHeadCrossEntropy(rt, { h: pass.hf, w: this.model.lmHead, labels: pass.labels, T, lse: this.acq(pass, T, 'lse-b'), logp: this.acq(pass, T, 'logp-b'), coef: coefB, dh: dhf });
    const g = this.gradScratch(pass);
    rmsnormBackward(rt, { x: pass.xL, w: this.model.norm, dy: dhf, dx: g.dx, rows: T, dim: Hd, eps: c.rmsNormEps });
    for (let l = c.numLayers - 1; l >= 0; l--) {
      const s = pass.layers[l]!;
      if (!s.qkv) this.layerForward(pass, l, s, this.acq(pass, T * Hd, 'x-recompute'));
      if (pass.merged) this.layerBackwardMerged(pass, l, s, g);
      else this.layerBackwardFactored(pass, l, s, g);
      [g.dx, g.dxo] = [g.dxo, g.dx];
      if (this.opts.recompute) this.dropActivations(pass, s);
    }
    await rt.sync();
    this.endPass();
  }

  /** Gradient scratch of one backward pass; dx [T, Hd] in = ∂L/∂(layer output), dxo out = ∂L/∂(layer input). */
  private gradScratch(pass: Pass) {
    const c = this.config, T = pass.T;
    const { hiddenSize: Hd, intermediateSize: I, numHeads: H, numKvHeads: KVH, headDim: D } = c;
    const Q = H * D, KV = KVH * D, QKV = Q + 2 * KV;
    return {
      dx: this.acq(pass, T * Hd, 'dx'), dxo: this.acq(pass, T * Hd, 'dx-out'), dxr: this.acq(pass, T * Hd, 'dx-resid'),
      dact: this.acq(pass, T * I, 'dact'), dgu: this.acq(pass, T * 2 * I, 'dgu'), dh: this.acq(pass, T * Hd, 'dh'),
      datt: this.acq(pass, T * Q, 'datt'), dqkv: this.acq(pass, T * QKV, 'dqkv'),
      dk: this.merged ? null : this.acq(pass, T * KV, 'dk'), dv: this.merged ? null : this.acq(pass, T * KV, 'dv'),
    };
  }

  /** Layer l backward through W_eff: dX = dY·W_eff per fused projection, dW += dYᵀ·X. */
  private layerBackwardMerged(pass: Pass, l: number, s: LayerSaved, g: ReturnType<GpuTrainBackend['gradScratch']>): void {
    const rt = this.rt, c = this.config, L = this.model.layers[l]!;
    const { hiddenSize: Hd, intermediateSize: I, numHeads: H, numKvHeads: KVH, headDim: D } = c;
    const T = pass.T, Q = H * D, KV = KVH * D, QKV = Q + 2 * KV;
    // x' = x1 + down(a):  da = dx·Wd,  dWd += dxᵀ·a
    this.effBwd(pass, l, 'down', s.act!, g.dx, g.dact);
    // a = silu(g)·u
    siluMulBackward(rt, { gu: s.gu!, dout: g.dact, dgu: g.dgu, rows: T, inter: I, fused: true });
    // gu = h2·Wguᵀ:  dh2 = dgu·Wgu,  dWgu += dguᵀ·h2
    this.effBwd(pass, l, 'gateUp', s.h2!, g.dgu, g.dh);
    // h2 = norm(x1):  dx1 = dx + rmsnormBackward(x1; dh2)
    rt.copy(g.dx, 0, g.dxr, 0, T * Hd * 4);
    rmsnormBackward(rt, { x: s.x1!, w: L.mlpNorm, dy: g.dh, dx: g.dxr, rows: T, dim: Hd, eps: c.rmsNormEps, accumulate: true });
    // x1 = x + o(att):  datt = dx1·Wo,  dWo += dx1ᵀ·att
    this.effBwd(pass, l, 'o', s.att!, g.dxr, g.datt);
    // attention: dq, dk, dv into the column slices of dqkv
    const view = (col: number) => ({ buffer: g.dqkv, stride: QKV, col });
    attentionBackward(rt, { T, numHeads: H, numKvHeads: KVH, headDim: D }, {
      q: { buffer: s.qkv!, stride: QKV, col: 0 }, k: { buffer: s.qkv!, stride: QKV, col: Q }, v: { buffer: s.qkv!, stride: QKV, col: Q + KV },
      segStart: pass.seg, o: s.att!, lse: s.lse!, dout: g.datt, dq: view(0), dk: view(Q), dv: view(Q + KV),
    });
    // rope⁻¹ on dq, dk
    ropeBackward(rt, g.dqkv, pass.pos, this.model.invFreq, T, H, D, { rowStride: QKV, colOffset: 0 });
    ropeBackward(rt, g.dqkv, pass.pos, this.model.invFreq, T, KVH, D, { rowStride: QKV, colOffset: Q });
    // qkv = h·Wqkvᵀ:  dh = dqkv·Wqkv,  dWqkv += dqkvᵀ·h   (layer 0: no input gradient needed)
    this.effBwd(pass, l, 'qkv', s.h!, g.dqkv, l > 0 ? g.dh : null);
    if (l === 0) return;
    // h = norm(x):  dx = dx1 + rmsnormBackward(x; dh)
    rt.copy(g.dxr, 0, g.dxo, 0, T * Hd * 4);
    rmsnormBackward(rt, { x: s.x, w: L.attnNorm, dy: g.dh, dx: g.dxo, rows: T, dim: Hd, eps: c.rmsNormEps, accumulate: true });
  }

  /** Layer l backward with the factored LoRA (and lora_dropout). */
  private layerBackwardFactored(pass: Pass, l: number, s: LayerSaved, g: ReturnType<GpuTrainBackend['gradScratch']>): void {
    const rt = this.rt, c = this.config, L = this.model.layers[l]!;
    const { hiddenSize: Hd, intermediateSize: I, numHeads: H, numKvHeads: KVH, headDim: D } = c;
    const T = pass.T, Q = H * D, KV = KVH * D, QKV = Q + 2 * KV;
    const { dx, dxr, dxo, dact, dgu, dh, datt, dqkv } = g;
    const dk = g.dk!, dv = g.dv!;
    const lp = (m: LoraModule) => this.byKey.get(`${l}.${m}`);
    // LoRA input: dropout(X) when dropping (then dX goes back through the same mask)
    const lx = (m: LoraModule, x: GPUBuffer) => s.xd.get(m) ?? x;
    const ds = (m: LoraModule) => (pass.dropSeed === null ? undefined : dropoutSeedFor(pass.dropSeed, l, m));
    // x' = x1 + down(a):  da = dx·Wd (+ LoRA)
    linearBackwardInput(rt, dx, L.down, dact, T);
    const pd = lp('down_proj');
    if (pd) this.loraBwd(pd, lx('down_proj', s.act!), s.hA.get('down_proj')!, { buffer: dx, ld: Hd }, dact, T, pass, ds('down_proj'));
    // a = silu(g)·u
    siluMulBackward(rt, { gu: s.gu!, dout: dact, dgu, rows: T, inter: I, fused: true });
    // gu = h2·Wguᵀ (+ LoRA):  dh2 = dgu·Wgu
    linearBackwardInput(rt, dgu, L.gateUp, dh, T);
    for (const [m, col] of [['gate_proj', 0], ['up_proj', I]] as Array<[LoraModule, number]>) {
      const p = lp(m);
      if (p) this.loraBwd(p, lx(m, s.h2!), s.hA.get(m)!, { buffer: dgu, ld: 2 * I, offset: col }, dh, T, pass, ds(m));
    }
    // h2 = norm(x1):  dx1 = dx + rmsnormBackward(x1; dh2)
    rt.copy(dx, 0, dxr, 0, T * Hd * 4);
    rmsnormBackward(rt, { x: s.x1!, w: L.mlpNorm, dy: dh, dx: dxr, rows: T, dim: Hd, eps: c.rmsNormEps, accumulate: true });
    // x1 = x + o(att):  datt = dx1·Wo (+ LoRA)
    linearBackwardInput(rt, dxr, L.o, datt, T);
    const po = lp('o_proj');
    if (po) this.loraBwd(po, lx('o_proj', s.att!), s.hA.get('o_proj')!, { buffer: dxr, ld: Hd }, datt, T, pass, ds('o_proj'));
    // attention: dq (into dqkv cols [0, Q)), dk, dv
    attentionBackward(rt, { T, numHeads: H, numKvHeads: KVH, headDim: D }, {
      q: { buffer: s.qkv!, stride: QKV, col: 0 }, k: { buffer: s.qkv!, stride: QKV, col: Q }, v: { buffer: s.qkv!, stride: QKV, col: Q + KV },
      segStart: pass.seg, o: s.att!, lse: s.lse!, dout: datt, dq: { buffer: dqkv, stride: QKV, col: 0 }, dk, dv,
    });
    // rope⁻¹ on dq, dk
    ropeBackward(rt, dqkv, pass.pos, this.model.invFreq, T, H, D, { rowStride: QKV, colOffset: 0 });
    ropeBackward(rt, dk, pass.pos, this.model.invFreq, T, KVH, D);
    // qkv = h·Wqkvᵀ (+ LoRA):  dh = dq·Wq + dk·Wk + dv·Wv
    this.weightRowsBwd(L.qkv, 0, Q, { buffer: dqkv, ld: QKV }, dh, T, false);
    this.weightRowsBwd(L.qkv, Q, KV, { buffer: dk, ld: KV }, dh, T, true);
    this.weightRowsBwd(L.qkv, Q + KV, KV, { buffer: dv, ld: KV }, dh, T, true);
    const dys: Array<[LoraModule, Operand]> = [['q_proj', { buffer: dqkv, ld: QKV }], ['k_proj', { buffer: dk, ld: KV }], ['v_proj', { buffer: dv, ld: KV }]];
    for (const [m, dy] of dys) {
      const p = lp(m);
      if (p) this.loraBwd(p, lx(m, s.h!), s.hA.get(m)!, dy, dh, T, pass, ds(m));
    }
    // h = norm(x):  dx = dx1 + rmsnormBackward(x; dh)
    rt.copy(dxr, 0, dxo, 0, T * Hd * 4);
    rmsnormBackward(rt, { x: s.x, w: L.attnNorm, dy: dh, dx: dxo, rows: T, dim: Hd, eps: c.rmsNormEps, accumulate: true });
  }

  // ------------------------------------------------------------------ optimizer
  async clipGradients(maxNorm: number): Promise<number> {
    this.finishGrads();
    gradNorm(this.rt, [{ buffer: this.G, n: this.nLora }], maxNorm, this.normOut);
    const [norm] = await this.rt.readF32(this.normOut, 2);
    return norm!;
  }

  async optimizerStep(lr: number, h: AdamHyper): Promise<void> {
    this.finishGrads();
    this.step++;
    adamwStep(this.rt, [{ param: this.P, grad: this.G, m: this.M1, v: this.M2, n: this.nLora }], { lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay }, this.step, this.normOut);
    this.zero(this.G, this.nLora);
    if (this.merged) {
      this.zero(this.merged.dw, this.merged.floats);
      this.merged.stale = true;
    }
    await this.rt.sync();
  }

  // ------------------------------------------------------------------ state in / out
  private async readFlat(b: GPUBuffer): Promise<Map<string, LoraPair>> {
    const flat = await this.rt.readF32(b, Math.max(1, this.nLora));
    const out = new Map<string, LoraPair>();
    const r = this.lora.r;
    for (const p of this.params) out.set(p.key, { A: flat.slice(p.aOff, p.aOff + r * p.inDim), B: flat.slice(p.bOff, p.bOff + p.outDim * r) });
    return out;
  }
  readAdapter(): Promise<Map<string, LoraPair>> {
    return this.readFlat(this.P);
  }
  /** Accumulated gradients (tests). */
  readGrads(): Promise<Map<string, LoraPair>> {
    this.finishGrads();
    return this.readFlat(this.G);
  }
  async writeAdapter(w: Map<string, LoraPair>): Promise<void> {
    this.writeFlat(this.P, w);
    if (this.merged) this.merged.stale = true;
  }
  async readOptimizer(): Promise<OptimizerState> {
    return { step: this.step, m: await this.readFlat(this.M1), v: await this.readFlat(this.M2) };
  }
  async writeOptimizer(s: OptimizerState): Promise<void> {
    this.step = s.step;
    this.writeFlat(this.M1, s.m, 'optimizer state (m)');
    this.writeFlat(this.M2, s.v, 'optimizer state (v)');
  }

  destroy(): void {
    this.endPass();
    for (const b of [this.P, this.G, this.M1, this.M2, this.normOut]) this.rt.destroy(b);
    if (this.merged) for (const b of [this.merged.base, this.merged.eff, this.merged.dw, this.merged.table.buffer]) this.rt.destroy(b);
    this.merged = null;
    this.params = [];
  }
}
