// Backward of a linear layer (host side): a general f32 GEMM with transposes, and the LoRA
// linear backward built from it. WGSL: shaders/matmul/matmul.backward.wgsl (+ generated body) ·
// reference: shaders/matmul/matmul.backward.ref.ts · checks: matmul.backward.check.ts ·
// finite differences: matmul.backward.test.ts.
//
// Buffers are row-major f32 (llm.c style); shapes in comments are [rows, cols].
//   gemm:  C[M, N] (+)= alpha · op(A)[M, K] · op(B)[K, N]
//   loraLinearBackward, for Y[T, N] = X[T, K]·Wᵀ + s·(X·Aᵀ)·Bᵀ, H[T, r] = X·Aᵀ:
//     dB[N, r] (+)= s · dYᵀ·H      dH[T, r] = s · dY·B      dA[r, K] (+)= dHᵀ·X
//     dX[T, K] (+)= dY·W + dH·A    (W frozen: a GpuWeight, f32 parts, as GpuModel uploads it)
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import type { GpuWeight } from './weights.ts';
import { matmul } from './matmul.ts';
import { dropout } from '../dropout/dropout.ts';
import { LorafleetError, type ErrorCode } from '../lib/errors.ts';

/** Bad arguments from the calling code ('internal': a bug) or from user settings ('invalid_request'). */
const err = (m: string, code: ErrorCode = 'internal') => new LorafleetError(m, code);

/** PEFT lora_dropout on the LoRA branch's input: xd = dropout(X) with a hashed mask (shaders/dropout). */
export interface LoraDropout {
  p: number;
  /** Same seed in forward and backward (e.g. from (step, layer, module) through shaders/lib/random.ts). */
  seed: number;
}

export const GemmParams = defineParams('GemmParams', {
  M: 'u32', N: 'u32', K: 'u32',
  lda: 'u32', ldb: 'u32', ldc: 'u32',
  aOff: 'u32', bOff: 'u32', cOff: 'u32',
  alpha: 'f32',
  /** bit 0: accumulate into C. */
  flags: 'u32',
  /** ceil(N / TN). */
  tilesN: 'u32',
});
type F = (typeof GemmParams.fields)[number][0];

/**
 * Register tiles, chosen by pickGemm(): t* = TM x TN outputs per invocation; s* = TM x TN per
 * invocation too, but a subgroup of 4 lanes computes a TM x 4·TN block (lane l owns columns
 * n0 + 4j + l) and loads its TM A values cooperatively: each lane loads TM/4 of them, the rest
 * come from subgroupBroadcast — 4x fewer A loads. For SwiftShader (subgroups of 4, where every
 * storage load is a per-lane gather); other adapters use t*.
 */
export const GEMM_TILES = { t4: [4, 4], t8: [8, 8], t16: [16, 12], s16: [16, 8], s32: [32, 6] } as const;
export type GemmTile = keyof typeof GEMM_TILES;
const isSg = (t: GemmTile) => t[0] === 's';
/** Columns of C one tile covers (4 lanes x TN for the subgroup tiles). */
const tileCols = (t: GemmTile) => GEMM_TILES[t][1] * (isSg(t) ? 4 : 1);
/** Invocations per tile. */
const tileInv = (t: GemmTile) => (isSg(t) ? 4 : 1);
/** Invocations per workgroup: small outputs take small workgroups so that both cores get work. */
export const GEMM_WGS = [64, 32, 16, 8, 4] as const;
export type GemmWg = (typeof GEMM_WGS)[number];

/**
 * The kernel body for one (tile, transposes, workgroup size): per invocation a TM x TN block of C,
 * operand addresses hoisted out of the K loop (a row/column base per tile row/column, one running
 * k offset per operand), K unrolled by U (small tiles) with a remainder loop. Loads are clamped to
 * the last row/column (no bounds branch in the loop), stores guarded by gstore().
 */
function genGemm(TM: number, TN: number, transA: boolean, transB: boolean, wg: number, U = TM * TN > 64 ? 1 : 2): string {
  const I = [...Array(TM).keys()], J = [...Array(TN).keys()];
  let s = `@compute @workgroup_size(${wg})\nfn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {\n`;
  s += `  let t = gid.x + gid.y * nwg.x * ${wg}u;\n  let tilesM = (p.M + ${TM - 1}u) / ${TM}u;\n  if (t >= tilesM * p.tilesN) { return; }\n`;
  s += `  let m0 = (t / p.tilesN) * ${TM}u;\n  let n0 = (t % p.tilesN) * ${TN}u;\n`;
  // A(m, k) = a[ar_m + k*sa], B(k, n) = b[br_n + k*sb]
  for (const i of I) s += `  let ar${i} = p.aOff + ${transA ? '' : 'p.lda * '}min(m0 + ${i}u, p.M - 1u);\n`;
  for (const j of J) s += `  let br${j} = p.bOff + ${transB ? 'p.ldb * ' : ''}min(n0 + ${j}u, p.N - 1u);\n`;
  s += `  let sa = ${transA ? 'p.lda' : '1u'};\n  let sb = ${transB ? '1u' : 'p.ldb'};\n`;
  for (const i of I) for (const j of J) s += `  var c${i}_${j} = 0.0;\n`;
  const step = (ind: string) => {
    let b = `${ind}{\n`;
    for (const j of J) b += `${ind}  let b${j} = b[br${j} + kb];\n`;
    for (const i of I) {
      b += `${ind}  let a${i} = a[ar${i} + ka];\n`;
      for (const j of J) b += `${ind}  c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});\n`;
    }
    return b + `${ind}  ka += sa; kb += sb;\n${ind}}\n`;
  };
  s += `  var ka = 0u;\n  var kb = 0u;\n  var k = 0u;\n`;
  if (U > 1) {
    s += `  for (; k + ${U - 1}u < p.K; k += ${U}u) {\n`;
    for (let u = 0; u < U; u++) s += step('    ');
    s += `  }\n`;
  }
  s += `  for (; k < p.K; k++) {\n` + step('    ') + `  }\n`;
  for (const i of I) for (const j of J) s += `  gstore(m0 + ${i}u, n0 + ${j}u, c${i}_${j});\n`;
  return s + `}\n`;
}

/** The subgroup tile body (see GEMM_TILES): needs subgroups of exactly 4 (else it writes NaN, loudly). */
function genGemmSg(TM: number, TN: number, transA: boolean, transB: boolean, wg: number): string {
  const U = [...Array(TM / 4).keys()], I = [...Array(TM).keys()], J = [...Array(TN).keys()];
  let s = `@compute @workgroup_size(${wg})\nfn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,\n`;
  s += `        @builtin(subgroup_size) S: u32, @builtin(subgroup_invocation_id) lane: u32) {\n`;
  // 4 consecutive invocations (one subgroup: workgroups are multiples of 4) share a tile, so the
  // early return is uniform in the subgroup and every lane of a live tile takes part in the broadcasts
  s += `  let tile = (gid.x + gid.y * nwg.x * ${wg}u) / 4u;\n  let tilesM = (p.M + ${TM - 1}u) / ${TM}u;\n  if (tile >= tilesM * p.tilesN) { return; }\n`;
  s += `  let m0 = (tile / p.tilesN) * ${TM}u;\n  let n0 = (tile % p.tilesN) * ${4 * TN}u;\n`;
  for (const u of U) s += `  let ar${u} = p.aOff + ${transA ? '' : 'p.lda * '}min(m0 + ${4 * u}u + lane, p.M - 1u);\n`;
  for (const j of J) s += `  let br${j} = p.bOff + ${transB ? 'p.ldb * ' : ''}min(n0 + ${4 * j}u + lane, p.N - 1u);\n`;
  s += `  let sa = ${transA ? 'p.lda' : '1u'};\n  let sb = ${transB ? '1u' : 'p.ldb'};\n`;
  for (const i of I) for (const j of J) s += `  var c${i}_${j} = 0.0;\n`;
  s += `  var ka = 0u;\n  var kb = 0u;\n  for (var k = 0u; k < p.K; k++) {\n`;
  for (const j of J) s += `    let b${j} = b[br${j} + kb];\n`;
  for (const u of U) s += `    let av${u} = a[ar${u} + ka];\n`;
  for (const i of I) {
    s += `    let a${i} = subgroupBroadcast(av${i >> 2}, ${i & 3}u);\n`;
    for (const j of J) s += `    c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});\n`;
  }
  s += `    ka += sa; kb += sb;\n  }\n`;
  s += `  let bad = select(0.0, bitcast<f32>(p.flags | 0x7fc00000u), S != 4u); // NaN (a runtime value: WGSL refuses a NaN constant)\n`;
  for (const i of I) for (const j of J) s += `  gstore(m0 + ${i}u, n0 + ${4 * j}u + lane, c${i}_${j} + bad);\n`;
  return s + `}\n`;
}

const kernels = new Map<string, Kernel<F>>();
function gemmKernel(tile: GemmTile, transA: boolean, transB: boolean, wg: GemmWg): Kernel<F> {
  const key = `${tile}|${+transA}${+transB}|${wg}`;
  let k = kernels.get(key);
  if (!k) {
    const [TM, TN] = GEMM_TILES[tile];
    k = {
      name: `gemm_${tile}_${transA ? 't' : 'n'}${transB ? 't' : 'n'}${wg === 64 ? '' : `_w${wg}`}`,
      code: isSg(tile)
        ? 'enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n' + GemmParams.wgsl + WGSL['matmul.backward'] + genGemmSg(TM, TN, transA, transB, wg)
        : GemmParams.wgsl + WGSL['matmul.backward'] + genGemm(TM, TN, transA, transB, wg),
      params: GemmParams,
    };
    kernels.set(key, k);
  }
  return k;
}

/** A dense f32 operand: element (r, c) of the stored [rows, ld] matrix at buffer[offset + r*ld + c]. */
export interface Operand {
  buffer: GPUBuffer;
  /** Row stride in floats of the stored matrix. */
  ld: number;
  /** Element offset (default 0). */
  offset?: number;
  /** Use the transpose of the stored matrix. */
  trans?: boolean;
}

export interface GemmOptions {
  alpha?: number;
  /** C += alpha·A·B instead of C = alpha·A·B. */
  accumulate?: boolean;
  tile?: GemmTile;
  /** Invocations per workgroup (default: gemmWg for the tile). */
  wg?: GemmWg;
}

/** Workgroups a dispatch should have at least, so that SwiftShader's worker threads (one per core) all get work. */
const MIN_WORKGROUPS = 8;

/**
 * The tile and workgroup size the product path uses: the largest tile whose invocations still fill
 * MIN_WORKGROUPS workgroups of at least 4 (one SwiftShader SIMD group), then the largest workgroup
 * that keeps MIN_WORKGROUPS. SwiftShader runs a workgroup's invocations on one thread: a 16x12 tile
 * at 512x64 is 192 invocations = 3 workgroups of 64, one core idle; the dW products ([64..344] x
 * [64..172], K = T) run ~1.3x faster as s16 in workgroups of 4-8 than as 8x8 / 4x4 tiles in
 * workgroups of 16-32 (bench/train-kernels/gemm.ts, load ~9).
 */
export function pickGemm(M: number, N: number, subgroups4 = false): { tile: GemmTile; wg: GemmWg } {
  const order: GemmTile[] = subgroups4 ? ['s16', 't16', 't8', 't4'] : ['t16', 't8', 't4'];
  const tile = order.find((t) => gemmInvocations(M, N, t) >= MIN_WORKGROUPS * 4) ?? 't4';
  return { tile, wg: gemmWg(M, N, tile) };
}

const gemmInvocations = (M: number, N: number, t: GemmTile) => Math.ceil(M / GEMM_TILES[t][0]) * Math.ceil(N / tileCols(t)) * tileInv(t);

/** The largest workgroup size that still gives MIN_WORKGROUPS workgroups for this tile. */
export function gemmWg(M: number, N: number, tile: GemmTile): GemmWg {
  const n = gemmInvocations(M, N, tile);
  return GEMM_WGS.find((w) => Math.ceil(n / w) >= MIN_WORKGROUPS) ?? 4;
}

/** Subgroup tiles on this runtime: SwiftShader (subgroups of 4 lanes) with the subgroups feature. */
const subgroups4 = (rt: Runtime) => rt.info.isCpu && !!rt.info.features.subgroups;

/**
 * C[M, N] (+)= alpha · op(A)[M, K] · op(B)[K, N]. A stored [M, lda] (trans: [K, lda]), B stored
 * [K, ldb] (trans: [N, ldb]), C stored [M, ldc]. C must not alias A or B. K = 0 writes
 * alpha·0 (or leaves C when accumulating).
 */
export function gemm(rt: Runtime, A: Operand, B: Operand, C: Operand, M: number, N: number, K: number, opts: GemmOptions = {}): void {
  for (const [n, v] of [['M', M], ['N', N], ['K', K]] as const) if (!Number.isInteger(v) || v < 0) throw err(`gemm: bad ${n}=${v}`);
  if (M === 0 || N === 0) return;
  if (C.trans) throw err('gemm: C cannot be transposed');
  if (C.buffer === A.buffer || C.buffer === B.buffer) throw err('gemm: C must not alias A or B');
  const need = (o: Operand, rows: number, cols: number, what: string) => {
    const off = o.offset ?? 0;
    if (!Number.isInteger(off) || off < 0 || !Number.isInteger(o.ld) || o.ld < cols) throw err(`gemm: ${what} bad offset ${off} / ld ${o.ld} (cols ${cols})`);
    if (rows > 0 && (off + (rows - 1) * o.ld + cols) * 4 > o.buffer.size)
      throw err(`gemm: ${what} needs ${off + (rows - 1) * o.ld + cols} floats, buffer holds ${o.buffer.size / 4}`);
  };
  need(A, A.trans ? K : M, A.trans ? M : K, 'A');
  need(B, B.trans ? N : K, B.trans ? K : N, 'B');
  need(C, M, N, 'C');
  const tile = opts.tile ?? pickGemm(M, N, subgroups4(rt)).tile, wg = opts.wg ?? gemmWg(M, N, tile);
  if (isSg(tile) && !subgroups4(rt)) throw err(`gemm: tile ${tile} needs SwiftShader's subgroups of 4`);
  const tilesN = Math.ceil(N / tileCols(tile));
  const threads = gemmInvocations(M, N, tile);
  rt.dispatch(gemmKernel(tile, !!A.trans, !!B.trans, wg), {
    params: {
      M, N, K, lda: A.ld, ldb: B.ld, ldc: C.ld,
      aOff: A.offset ?? 0, bOff: B.offset ?? 0, cOff: C.offset ?? 0,
      alpha: opts.alpha ?? 1, flags: opts.accumulate ? 1 : 0, tilesN,
    },
    buffers: [A.buffer, B.buffer, C.buffer],
    workgroups: rt.grid(Math.ceil(threads / wg)),
  });
}

function f32Weight(w: GpuWeight, what: string): void {
  if (w.format !== 'f32') throw err(`${what}: weight ${w.name} is ${w.format}; backward through a frozen weight needs f32 parts (upload with weightFormat 'f32')`, 'invalid_request');
}

/**
 * dX[T, K] (+)= dY[T, N] · W[N, K] for a frozen GpuWeight (f32 parts; each part's rows are a
 * column slice of dY). dY rows may be strided (dyLd ≥ N, dyOffset) — e.g. a slice of a fused
 * qkv gradient.
 */
export function linearBackwardInput(
  rt: Runtime, dY: GPUBuffer, w: GpuWeight, dX: GPUBuffer, T: number,
  opts: { accumulate?: boolean; dyLd?: number; dyOffset?: number; dxLd?: number; dxOffset?: number; alpha?: number } = {},
): void {
  f32Weight(w, 'linearBackwardInput');
  const dyLd = opts.dyLd ?? w.N, dyOff = opts.dyOffset ?? 0;
  w.parts.forEach((part, i) => {
    gemm(rt, { buffer: dY, ld: dyLd, offset: dyOff + part.rowStart }, { buffer: part.data, ld: w.K },
      { buffer: dX, ld: opts.dxLd ?? w.K, offset: opts.dxOffset ?? 0 }, T, w.K, part.rows,
      { accumulate: i > 0 || !!opts.accumulate, alpha: opts.alpha ?? 1 });
  });
}

export interface LoraLinearGrads {
  /** dA [r, K] */
  dA: GPUBuffer;
  /** dB [N, r] */
  dB: GPUBuffer;
  /** Add into dA, dB (gradient accumulation over micro-batches) instead of overwriting. */
  accumulate?: boolean;
}

export interface LoraLinearBackwardArgs {
  /** Input activations X [T, K] (saved from the forward). */
  x: GPUBuffer;
  /** Upstream gradient dY [T, N]. */
  dy: GPUBuffer;
  /** dY row stride and element offset (default N, 0): a column slice of a fused gradient, e.g.
   *  the k columns of dqkv [T, Q+2KV] (dyLd = Q+2KV, dyOffset = Q). */
  dyLd?: number;
  dyOffset?: number;
  /** Frozen base weight W [N, K] (f32 parts); omit to skip the dY·W term. */
  w?: GpuWeight;
  /** LoRA A [r, K] and B [N, r], f32 (PEFT lora_A.weight / lora_B.weight). */
  a: GPUBuffer;
  b: GPUBuffer;
  /** H = X·Aᵀ [T, r] saved from the forward (recomputed into scratch when omitted). */
  h?: GPUBuffer;
  T: number; N: number; K: number; r: number;
  /** LoRA scale s = alpha / r (or alpha / √r with rslora). */
  scale: number;
  grads: LoraLinearGrads;
  /** dX [T, K]; omitted: no input gradient (e.g. the first layer's input needs none). */
  dx?: GPUBuffer;
  /** dX += ... instead of dX = ... (e.g. q, k and v projections of one input). */
  accumulateDx?: boolean;
  /** The forward's lora_dropout (H = dropout(X)·Aᵀ): dA = dHᵀ·dropout(X), dX += dropout(dH·A). */
  dropout?: LoraDropout;
}

/**
 * Backward of Y = X·Wᵀ + s·(X·Aᵀ)·Bᵀ (W frozen):
 *   dB = s·dYᵀ·H,  dH = s·dY·B,  dA = dHᵀ·X,  dX = dY·W + dH·A.
 * Dispatches 4-6 GEMMs; scratch dH (and H when not given) comes from the runtime pool.
 */
export function loraLinearBackward(rt: Runtime, g: LoraLinearBackwardArgs): void {
  const { T, N, K, r, scale } = g;
  if (T === 0) return;
  const dyLd = g.dyLd ?? N, dyOff = g.dyOffset ?? 0;
  const drop = g.dropout && g.dropout.p > 0 ? g.dropout : null;
  // xd = dropout(X) (the LoRA branch's input; X itself without dropout), regenerated from the seed
  const xd = drop ? rt.acquire(T * K * 4) : g.x;
  if (drop) dropout(rt, g.x, xd, T * K, drop.p, drop.seed);
  let h = g.h;
  const hScratch = h ? null : rt.acquire(T * r * 4);
  if (!h) {
    h = hScratch!;
    // H[T, r] = Xd[T, K] · Aᵀ
    gemm(rt, { buffer: xd, ld: K }, { buffer: g.a, ld: K, trans: true }, { buffer: h, ld: r }, T, r, K);
  }
  // dB[N, r] (+)= s · dYᵀ[N, T] · H[T, r]
  gemm(rt, { buffer: g.dy, ld: dyLd, offset: dyOff, trans: true }, { buffer: h, ld: r }, { buffer: g.grads.dB, ld: r }, N, r, T, { alpha: scale, accumulate: g.grads.accumulate });
  // dH[T, r] = s · dY[T, N] · B[N, r]
  const dh = rt.acquire(T * r * 4);
  gemm(rt, { buffer: g.dy, ld: dyLd, offset: dyOff }, { buffer: g.b, ld: r }, { buffer: dh, ld: r }, T, r, N, { alpha: scale });
  // dA[r, K] (+)= dHᵀ[r, T] · X[T, K]
  gemm(rt, { buffer: dh, ld: r, trans: true }, { buffer: xd, ld: K }, { buffer: g.grads.dA, ld: K }, r, K, T, { accumulate: g.grads.accumulate });
  if (g.dx) {
    // dX[T, K] (+)= dY·W + dH·A
    let acc = !!g.accumulateDx;
    if (g.w) {
      if (g.w.N !== N || g.w.K !== K) throw err(`loraLinearBackward: weight ${g.w.name} is ${g.w.N}x${g.w.K}, expected ${N}x${K}`);
      linearBackwardInput(rt, g.dy, g.w, g.dx, T, { accumulate: acc, dyLd, dyOffset: dyOff });
      acc = true;
    }
    if (drop) {
      // dX (+)= dropout(dH·A): the dropout map is its own transpose (same mask and 1/(1−p))
      gemm(rt, { buffer: dh, ld: r }, { buffer: g.a, ld: K }, { buffer: xd, ld: K }, T, K, r);
      dropout(rt, xd, g.dx, T * K, drop.p, drop.seed, { accumulate: acc });
    } else gemm(rt, { buffer: dh, ld: r }, { buffer: g.a, ld: K }, { buffer: g.dx, ld: K }, T, K, r, { accumulate: acc });
  }
  rt.release(dh);
  if (hScratch) rt.release(hScratch);
  if (drop) rt.release(xd);
}

export interface LoraLinearForwardArgs {
  /** X [T, K] */
  x: GPUBuffer;
  /** Frozen W [N, K] (any GpuWeight format; the base matmul). Omit for the LoRA term only. */
  w?: GpuWeight;
  /** A [r, K], B [N, r] f32. */
  a: GPUBuffer;
  b: GPUBuffer;
  T: number; N: number; K: number; r: number;
  scale: number;
  /** Y [T, N] out. */
  y: GPUBuffer;
  /** Y row stride and element offset (default N, 0): the LoRA term of one module added into its
   *  columns of a fused output, e.g. qkv [T, Q+2KV] (yLd = Q+2KV, yOffset = Q for k_proj; give no
   *  `w` then, the fused base matmul is the caller's). */
  yLd?: number;
  yOffset?: number;
  /** H = X·Aᵀ [T, r] out (keep it for loraLinearBackward). */
  h: GPUBuffer;
  /** Y += ... instead of Y = ... */
  accumulate?: boolean;
  /** lora_dropout: H = dropout(X)·Aᵀ (pass the same to loraLinearBackward). */
  dropout?: LoraDropout;
}

/** Y[T, N] (+)= X·Wᵀ + s·H·Bᵀ with H[T, r] = dropout(X)·Aᵀ saved (the training forward of a LoRA linear). */
export function loraLinearForward(rt: Runtime, g: LoraLinearForwardArgs): void {
  const { T, N, K, r } = g;
  if (T === 0) return;
  const drop = g.dropout && g.dropout.p > 0 ? g.dropout : null;
  const xd = drop ? rt.acquire(T * K * 4) : g.x;
  if (drop) dropout(rt, g.x, xd, T * K, drop.p, drop.seed);
  gemm(rt, { buffer: xd, ld: K }, { buffer: g.a, ld: K, trans: true }, { buffer: g.h, ld: r }, T, r, K);
  if (drop) rt.release(xd);
  let acc = !!g.accumulate;
  const yLd = g.yLd ?? N, yOff = g.yOffset ?? 0;
  if (g.w) {
    if (yLd !== N || yOff !== 0) throw err('loraLinearForward: a strided y takes no base weight (run the fused base matmul first, then accumulate)');
    if (g.w.N !== N || g.w.K !== K) throw err(`loraLinearForward: weight ${g.w.name} is ${g.w.N}x${g.w.K}, expected ${N}x${K}`);
    matmul(rt, g.x, g.w, g.y, T, { accumulate: acc });
    acc = true;
  }
  gemm(rt, { buffer: g.h, ld: r }, { buffer: g.b, ld: r, trans: true }, { buffer: g.y, ld: yLd, offset: yOff }, T, N, r, { alpha: g.scale, accumulate: acc });
}
