// Fused multi-LoRA (Punica's approach; host side): the LoRA work of a step runs inside kernels the
// step runs anyway, so a heterogeneous batch dispatches what a base-model batch dispatches.
//   expand  out[row, n] += scale_a · Σ_k t[row, m, k] · Bt[page(a, k), col_m(n)]   in the epilogue of the
//           base matmul writing that output (qkv, gate|up, down: matmul.ts) or in the prologue of the
//           kernel that reads it next (o_proj's delta: the post-attention rmsnorm adds it to x first)
//   shrink  t[row, m, k] = in(row) · A[page(a, k), m]     as extra invocations ("tail") of the kernel that
//           produces — or, for o_proj, consumes — the input row: the rmsnorm making h (q|k|v, gate|up; the
//           tail recomputes the row's norm factor), silu·mul making the down input (recomputed from gate|up),
//           the o_proj matmul reading the attention output.
// Every kernel stays barrier-free: a tail invocation reads only inputs complete before the dispatch.
// Per layer:  rmsnorm(+qkv shrink) · qkv matmul(+expand) · rope · attention · o matmul(+o shrink) ·
//             rmsnorm(+o expand → x', +gate|up shrink) · gate|up matmul(+expand) · silu·mul(+down shrink) ·
//             down matmul(+expand)  — the base's 9 dispatches, no LoRA dispatch.
// WGSL pieces below are generated with the binding numbers of the host kernel; reference:
// lora.fused.ref.ts · checks: lora.fused.check.ts (and the matmul / rmsnorm / silu_mul checks of the fused variants).
//
// Per-step data (one upload per step, shared by every layer and group):
//   meta u32: [rows]  offset of the row's adapter entry in meta, or LORA_NONE (base row)
//             [nEnt]  shrink entries (row << 8 | k0 / 4) for k0 = 0, 4, .. < the row's own rank (rank-aware:
//                     a rank-1 row is one entry, a rank-64 row sixteen; nothing padded to the largest rank)
//             then per adapter of the step: rank, f32 bits of scale, per-layer module mask [layers], pages [rank]
//   t    f32 [rows, 7 · rMax]: the shrink result of every group side by side (qkv 3 · rMax, o rMax,
//             gate|up 2 · rMax, down rMax), module m of a group at tOff + m · rMax.
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import { defineParams } from '../gpu/params.ts';
import { bankLayout, type LoraBank } from './lora.ts';

export const LORA_NONE = 0xffffffff;
/** Largest rank the shrink entry encoding allows (k0 / 4 in 8 bits). */
export const FUSED_MAX_RANK = 1024;

/** Uniform fields every fused kernel carries (appended to its own params). */
export const LORA_FUSED_FIELDS = {
  /** Rows of the step = first shrink entry in meta. */
  lRows: 'u32',
  /** Offset of pages inside an adapter entry (2 + layers). */
  lPg: 'u32',
  lLayer: 'u32',
  lRMax: 'u32',
  lTStride: 'u32',
  /** Shrink tail: entries, mask bit of bank module 0, t column of module 0, A row (vec4) and A page (vec4). */
  sN: 'u32',
  sMod0: 'u32',
  sTOff: 'u32',
  sInP4: 'u32',
  sAPage4: 'u32',
  /** Expand: mask bit of bank module 0, t column of module 0, Bt page (floats), output columns where
   *  modules 0 / 1 / 2 start and where the last ends (0x7fffffff: no such module), Bt columns of modules 1 / 2. */
  eMod0: 'u32',
  eTOff: 'u32',
  eBtPage: 'u32',
  eOc0: 'u32',
  eE1: 'u32',
  eE2: 'u32',
  eOcEnd: 'u32',
  eBc1: 'u32',
  eBc2: 'u32',
} as const;
export type LoraFusedField = keyof typeof LORA_FUSED_FIELDS;

/** What one step uploads for the fused kernels. */
export interface LoraFusedStep {
  meta: GPUBuffer;
  t: GPUBuffer;
  rows: number;
  layers: number;
  rMax: number;
  tStride: number;
  /** Shrink entries. */
  nEnt: number;
}

/** A shrink to run as the tail of a producer kernel: t[row, tOff + m·rMax + k] = in(row) · A_m[k]. */
export interface LoraShrinkArgs {
  step: LoraFusedStep;
  bank: LoraBank;
  layer: number;
  /** t column of bank module 0. */
  tOff: number;
}

/** An expand to fuse into the kernel that writes (or next reads) the output row. */
export interface LoraExpandArgs {
  step: LoraFusedStep;
  bank: LoraBank;
  layer: number;
  tOff: number;
  /** Output column of bank module 0's column 0 (the modules follow in order). */
  outOff: number;
}

export interface FusedAdapter {
  rank: number;
  scale: number;
  /** masks[l]: bit (LORA_MODULES index) set when the adapter targets (l, module). */
  masks: ArrayLike<number>;
  /** Page of rank row k (k < rank). */
  pages: ArrayLike<number>;
}

/** meta for a step: rowAdapter[r] = index into `adapters`, or -1 (base row). */
export function packFusedMeta(rowAdapter: ArrayLike<number>, adapters: readonly FusedAdapter[], layers: number): { meta: Uint32Array; nEnt: number } {
  const rows = rowAdapter.length;
  let nEnt = 0;
  for (let r = 0; r < rows; r++) {
    const a = rowAdapter[r]!;
    if (a < 0) continue;
    const ad = adapters[a];
    if (!ad) throw new Error(`lora fused: row ${r} uses adapter ${a}, have ${adapters.length}`);
    nEnt += Math.ceil(ad.rank / 4);
  }
  const entOf: number[] = [];
  let size = rows + nEnt;
  for (const ad of adapters) {
    if (!(Number.isInteger(ad.rank) && ad.rank >= 1 && ad.rank <= FUSED_MAX_RANK)) throw new Error(`lora fused: rank ${ad.rank} outside 1..${FUSED_MAX_RANK}`);
    if (ad.pages.length < ad.rank || ad.masks.length < layers) throw new Error('lora fused: adapter entry needs rank pages and a mask per layer');
    entOf.push(size);
    size += 2 + layers + ad.rank;
  }
  const meta = new Uint32Array(size);
  const f = new Float32Array(meta.buffer);
  let q = rows;
  for (let r = 0; r < rows; r++) {
    const a = rowAdapter[r]!;
    if (a < 0) {
      meta[r] = LORA_NONE;
      continue;
    }
    meta[r] = entOf[a]!;
    for (let k0 = 0; k0 < adapters[a]!.rank; k0 += 4) meta[q++] = (r << 8) | (k0 >> 2);
  }
  adapters.forEach((ad, i) => {
    const e = entOf[i]!;
    meta[e] = ad.rank;
    f[e + 1] = ad.scale;
    for (let l = 0; l < layers; l++) meta[e + 2 + l] = ad.masks[l]!;
    for (let k = 0; k < ad.rank; k++) meta[e + 2 + layers + k] = ad.pages[k]!;
  });
  return { meta, nEnt };
}

/** t columns of each group in a t row (qkv, o_proj, gate_up, down_proj) and the t row stride, for rMax. */
export function fusedTLayout(rMax: number): { tOff: { qkv: number; o_proj: number; gate_up: number; down_proj: number }; tStride: number } {
  return { tOff: { qkv: 0, o_proj: 3 * rMax, gate_up: 4 * rMax, down_proj: 6 * rMax }, tStride: 7 * rMax };
}

export function uploadFusedStep(rt: Runtime, meta: Uint32Array, nEnt: number, rows: number, layers: number, rMax: number, tStride = fusedTLayout(rMax).tStride): LoraFusedStep {
  if (rows >= 1 << 24) throw new Error(`lora fused: ${rows} rows exceed the entry encoding (2^24)`);
  const m = rt.acquire(meta.byteLength, undefined, 'lora-fused-meta');
  rt.write(m, meta);
  const t = rt.acquire(Math.max(1, rows * tStride) * 4, undefined, 'lora-fused-t');
  return { meta: m, t, rows, layers, rMax, tStride, nEnt };
}

export function releaseFusedStep(rt: Runtime, s: LoraFusedStep): void {
  rt.release(s.meta);
  rt.release(s.t);
}

const BIG = 0x7fffffff;

/** Uniform values of the fused fields (zeros for the part a kernel does not run). */
export function fusedParams(step: LoraFusedStep | undefined, layer: number, shrink?: LoraShrinkArgs, expand?: LoraExpandArgs): Record<LoraFusedField, number> {
  const v: Record<LoraFusedField, number> = {
    lRows: 0, lPg: 0, lLayer: layer, lRMax: 0, lTStride: 0, sN: 0, sMod0: 0, sTOff: 0, sInP4: 0, sAPage4: 0,
    eMod0: 0, eTOff: 0, eBtPage: 0, eOc0: 0, eE1: BIG, eE2: BIG, eOcEnd: 0, eBc1: 0, eBc2: 0,
  };
  if (!step) return v;
  v.lRows = step.rows;
  v.lPg = 2 + step.layers;
  v.lRMax = step.rMax;
  v.lTStride = step.tStride;
  if (shrink) {
    const L = bankLayout(shrink.bank.inDim, shrink.bank.outDims);
    v.sN = step.nEnt;
    v.sMod0 = shrink.bank.mod0;
    v.sTOff = shrink.tOff;
    v.sInP4 = L.inP / 4;
    v.sAPage4 = L.aPage / 4;
  }
  if (expand) {
    const b = expand.bank;
    const L = bankLayout(b.inDim, b.outDims);
    v.eMod0 = b.mod0;
    v.eTOff = expand.tOff;
    v.eBtPage = L.btPage;
    v.eOc0 = expand.outOff;
    let c = expand.outOff;
    const starts: number[] = [];
    for (const d of b.outDims) {
      starts.push(c);
      c += d;
    }
    v.eE1 = starts[1] ?? BIG;
    v.eE2 = starts[2] ?? BIG;
    v.eOcEnd = c;
    v.eBc1 = L.btCol[1] ?? 0;
    v.eBc2 = L.btCol[2] ?? 0;
  }
  return v;
}

/** Checks that shrink / expand args belong to one step and fit the kernel's input / output. */
export function checkFused(what: string, rows: number, shrink?: LoraShrinkArgs, expand?: LoraExpandArgs, dims?: { inDim?: number; outWidth?: number }): void {
  for (const a of [shrink, expand]) {
    if (!a) continue;
    if (a.step.rows !== rows) throw new Error(`${what}: LoRA step has ${a.step.rows} rows, the kernel ${rows}`);
    if (!(a.layer >= 0 && a.layer < a.step.layers)) throw new Error(`${what}: LoRA layer ${a.layer} outside ${a.step.layers}`);
    if (a.tOff + a.bank.outDims.length * a.step.rMax > a.step.tStride) throw new Error(`${what}: LoRA t columns ${a.tOff}+ exceed the t row (${a.step.tStride})`);
  }
  if (shrink && dims?.inDim !== undefined && shrink.bank.inDim !== dims.inDim) throw new Error(`${what}: LoRA shrink bank reads ${shrink.bank.inDim} features, the kernel's rows have ${dims.inDim}`);
  if (expand && dims?.outWidth !== undefined) {
    const end = expand.outOff + expand.bank.outDims.reduce((a, b) => a + b, 0);
    if (end > dims.outWidth) throw new Error(`${what}: LoRA expand writes columns up to ${end}, the output row has ${dims.outWidth}`);
  }
}

// ---------------------------------------------------------------- WGSL pieces

/** meta + t bindings and the entry accessors (every fused kernel). */
export function loraStepWgsl(bMeta: number, bT: number, tWrite: boolean): string {
  return `
const LNONE: u32 = 0xffffffffu;
@group(0) @binding(${bMeta}) var<storage, read> lmeta: array<u32>;
@group(0) @binding(${bT}) var<storage, ${tWrite ? 'read_write' : 'read'}> lt: array<f32>;
fn lEntry(row: u32) -> u32 { return lmeta[row]; }
fn lRank(e: u32) -> u32 { return lmeta[e]; }
fn lScale(e: u32) -> f32 { return bitcast<f32>(lmeta[e + 1u]); }
fn lTargets(e: u32, bit: u32) -> bool { return (lmeta[e + 2u + p.lLayer] & (1u << bit)) != 0u; }
fn lPage(e: u32, k: u32) -> u32 { return lmeta[e + p.lPg + k]; }
`;
}

/**
 * Shrink tail for a bank of nMod modules: fn lShrink(u) for tail invocation u. The host kernel
 * defines lIn4(row, c) (input vec4 c of the row, 0 past the row), lMul4(c) (an elementwise factor:
 * the norm weight) and lFinish(ss) (a row factor from Σ lIn4²: the norm's 1/rms, or 1):
 *   t[row, m, k] = lFinish(Σ lIn4²) · Σ_c (lIn4(row, c) · lMul4(c)) · A_m[k, c]
 * 4 rank lanes per invocation; lanes past the rank re-read its last row and are not stored.
 */
export function loraShrinkWgsl(nMod: number, bA: number): string {
  const M = [...Array(nMod).keys()], Q = [0, 1, 2, 3];
  let s = `@group(0) @binding(${bA}) var<storage, read> lA: array<vec4<f32>>;\n`;
  s += `fn lShrink(u: u32) {\n  if (u >= p.sN) { return; }\n  let en = lmeta[p.lRows + u];\n  let row = en >> 8u;\n  let k0 = (en & 255u) * 4u;\n`;
  s += `  let e = lEntry(row);\n  let rank = lRank(e);\n`;
  for (const m of M) s += `  let on${m} = lTargets(e, p.sMod0 + ${m}u);\n`;
  s += `  if (!(${M.map((m) => `on${m}`).join(' || ')})) { return; }\n`;
  for (const q of Q) s += `  let pa${q} = lPage(e, min(k0 + ${q}u, rank - 1u)) * p.sAPage4;\n`;
  for (const m of M) for (const q of Q) s += `  var c${m}${q} = vec4<f32>(0.0);\n`;
  s += `  var ss = vec4<f32>(0.0);\n  for (var c = 0u; c < p.sInP4; c++) {\n    let v = lIn4(row, c);\n    ss += v * v;\n    let xv = v * lMul4(c);\n`;
  for (const m of M) for (const q of Q) s += `    c${m}${q} += lA[pa${q} + ${m ? `${m}u * p.sInP4 + ` : ''}c] * xv;\n`;
  s += `  }\n  let f = lFinish((ss.x + ss.y) + (ss.z + ss.w));\n`;
  for (const m of M) {
    s += `  if (on${m}) {\n    let tb = row * p.lTStride + p.sTOff + ${m ? `${m}u * p.lRMax + ` : ''}k0;\n`;
    for (const q of Q) {
      const st = `lt[tb${q ? ` + ${q}u` : ''}] = f * ((c${m}${q}.x + c${m}${q}.y) + (c${m}${q}.z + c${m}${q}.w));`;
      s += q ? `    if (k0 + ${q}u < rank) { ${st} }\n` : `    ${st}\n`;
    }
    s += `  }\n`;
  }
  return s + `}\n`;
}

/**
 * Expand: lExpand(row, n) = the LoRA delta of output column n of the row (0 outside the bank's columns,
 * for base rows and for modules the row's adapter does not target); lExpand4(e, row, n0) = columns
 * n0 .. n0 + 3 of a single-module bank (e = the row's entry, known to target it; columns past the
 * module read Bt's zero padding up to the next multiple of 4).
 */
export function loraExpandWgsl(bBt: number): string {
  return `@group(0) @binding(${bBt}) var<storage, read> lBt: array<vec4<f32>>;
fn lBt1(i: u32) -> f32 { return lBt[i / 4u][i % 4u]; }
fn lExpand(row: u32, n: u32) -> f32 {
  if (n < p.eOc0 || n >= p.eOcEnd) { return 0.0; }
  let e = lEntry(row);
  if (e == LNONE) { return 0.0; }
  let mi = select(0u, 1u, n >= p.eE1) + select(0u, 1u, n >= p.eE2);
  if (!lTargets(e, p.eMod0 + mi)) { return 0.0; }
  let oc = select(select(p.eOc0, p.eE1, mi == 1u), p.eE2, mi == 2u);
  let bc = select(select(0u, p.eBc1, mi == 1u), p.eBc2, mi == 2u) + n - oc;
  let tb = row * p.lTStride + p.eTOff + mi * p.lRMax;
  let rank = lRank(e);
  var acc = 0.0;
  for (var k = 0u; k < rank; k++) { acc += lt[tb + k] * lBt1(lPage(e, k) * p.eBtPage + bc); }
  return lScale(e) * acc;
}
fn lExpand4(e: u32, row: u32, n0: u32) -> vec4<f32> {
  let tb = row * p.lTStride + p.eTOff;
  let bc4 = (n0 - p.eOc0) / 4u;
  let rank = lRank(e);
  let pg4 = p.eBtPage / 4u;
  var acc = vec4<f32>(0.0);
  for (var k = 0u; k < rank; k++) { acc += lt[tb + k] * lBt[lPage(e, k) * pg4 + bc4]; }
  return lScale(e) * acc;
}
// A block of 4 output columns n0 .. n0 + 3: ok when they lie in one module at a multiple of 4 from its
// start (one vec4 of Bt); mi = the module, bc4 = its Bt vec4 column, tc = its t column offset.
struct LBlk { ok: bool, mi: u32, bc4: u32, tc: u32 }
fn lBlock(n0: u32) -> LBlk {
  let mi = select(0u, 1u, n0 >= p.eE1) + select(0u, 1u, n0 >= p.eE2);
  let oc = select(select(p.eOc0, p.eE1, mi == 1u), p.eE2, mi == 2u);
  let end = select(select(min(p.eE1, p.eOcEnd), min(p.eE2, p.eOcEnd), mi == 1u), p.eOcEnd, mi == 2u);
  let j = n0 - oc;
  let ok = n0 >= p.eOc0 && n0 + 3u < end && j % 4u == 0u;
  let bc = select(select(0u, p.eBc1, mi == 1u), p.eBc2, mi == 2u) + j;
  return LBlk(ok, mi, bc / 4u, mi * p.lRMax);
}
`;
}

/**
 * Epilogue of the register-tiled matmul (genTiled, TM rows × TN columns per invocation), run after the
 * plain stores: lEpi(m, r0) adds row m's LoRA deltas to out[m, r0 .. r0 + TN). The accumulators are dead
 * by then (SwiftShader keeps values live across a data-dependent loop in memory: an epilogue on 48 live
 * vec4 accumulators measured 5× slower than the whole matmul). Per row: entry, rank, scale once; per rank
 * row k the page once, then one t value and one Bt vec4 per 4-column block inside one module; other
 * blocks (a module boundary, an unaligned weight part) take lExpand per element.
 */
export function loraTiledEpilogue(TN: number): string {
  const B = [...Array(TN / 4).keys()];
  let s = `fn lAdd(m: u32, r: u32, v: f32) { let i = p.outOff + m * p.N + p.rowStart + r; out[i] = out[i] + v; }
fn lEpi(m: u32, r0: u32) {
  if (m >= p.M) { return; }
  let e = lEntry(m);
  if (e == LNONE) { return; }
`;
  for (const b of B) s += `  let q${b} = lBlock(p.rowStart + r0 + ${4 * b}u);
  let on${b} = q${b}.ok && lTargets(e, p.eMod0 + q${b}.mi);
`;
  s += `  let rank = lRank(e);
  let tb = m * p.lTStride + p.eTOff;
  let pg4 = p.eBtPage / 4u;
`;
  for (const b of B) s += `  var d${b} = vec4<f32>(0.0);
`;
  s += `  if (${B.map((b) => `on${b}`).join(' || ')}) {
    for (var k = 0u; k < rank; k++) {
      let pg = lPage(e, k) * pg4;
`;
  for (const b of B) s += `      if (on${b}) { d${b} += lt[tb + q${b}.tc + k] * lBt[pg + q${b}.bc4]; }
`;
  s += `    }
  }
  let sc = lScale(e);
`;
  for (const b of B) {
    s += `  for (var j = 0u; j < 4u; j++) {
    let r = r0 + ${4 * b}u + j;
    if (r < p.rows) {
`;
    s += `      if (on${b}) { lAdd(m, r, sc * d${b}[j]); } else if (!q${b}.ok) { let v = lExpand(m, p.rowStart + r); if (v != 0.0) { lAdd(m, r, v); } }
    }
  }
`;
  }
  return s + `}
`;
}

// ---------------------------------------------------------------- stand-alone add (o_proj)

const LoraAddParams = defineParams('LoraAddParams', { rows: 'u32', dim: 'u32', ...LORA_FUSED_FIELDS });
type AF = 'rows' | 'dim' | LoraFusedField;
let addKernel: Kernel<AF> | null = null;

/**
 * out[row, j] += the row's LoRA delta of a single-module bank covering the whole row (o_proj into the
 * residual x): one invocation per (row, 4 columns), one Bt vec4 per rank row. The one LoRA dispatch a
 * fused layer keeps: o_proj's shrink needs the attention output, and its delta must be in x before
 * the post-attention norm, whose tail (the gate|up shrink) would otherwise recompute it per entry.
 */
export function loraAdd(rt: Runtime, out: GPUBuffer, a: LoraExpandArgs, rows: number): void {
  const dim = a.bank.outDims[0]!;
  if (a.bank.outDims.length !== 1 || a.outOff !== 0) throw new Error('loraAdd: a single-module bank at column 0');
  checkFused('loraAdd', rows, undefined, a, { outWidth: dim });
  if (out.size < rows * dim * 4) throw new Error(`loraAdd: out (${out.size} B) smaller than ${rows} × ${dim} f32`);
  addKernel ??= {
    name: 'lora_fused_add',
    params: LoraAddParams,
    code: `${LoraAddParams.wgsl}
@group(0) @binding(0) var<uniform> p: LoraAddParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${loraStepWgsl(2, 3, false)}${loraExpandWgsl(4)}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let u = gid.x + gid.y * nwg.x * 64u;
  let n4 = (p.dim + 3u) / 4u;
  if (u >= p.rows * n4) { return; }
  let row = u / n4;
  let j = 4u * (u % n4);
  let e = lEntry(row);
  if (e == LNONE || !lTargets(e, p.eMod0)) { return; }
  let d = lExpand4(e, row, j);
  let b = row * p.dim + j;
  out[b] += d.x;
  if (j + 1u < p.dim) { out[b + 1u] += d.y; }
  if (j + 2u < p.dim) { out[b + 2u] += d.z; }
  if (j + 3u < p.dim) { out[b + 3u] += d.w; }
}
`,
  };
  rt.dispatch(addKernel, {
    params: { rows, dim, ...fusedParams(a.step, a.layer, undefined, a) },
    buffers: [out, a.step.meta, a.step.t, a.bank.Bt],
    workgroups: rt.grid(Math.ceil((rows * Math.ceil(dim / 4)) / 64)),
  });
}
