// Multi-LoRA shrink fused into the base matmul (host side): the base projection out = x·Wᵀ and the
// LoRA shrink t = x·Aᵀ read the same x, so the shrink runs as extra invocations ("tail") of the base
// matmul's dispatch, after its output tiles; the expand stays one SGMV / BGMV dispatch (lora.ts). A
// LoRA module group costs one dispatch on top of the base instead of two (per layer 4 instead of 8),
// and the shrink's workgroups run beside the matmul's instead of after them. The tail does what
// lora.shrink.wgsl's sgmv entry does: tiles of ≤ 4 rows sharing an adapter (a prefill chunk, or decode
// rows gathered by adapter), 4 rank lanes per invocation, one bank module per invocation.
//   t[row, m, k] = x[row] · A[page(a, k), m]      (k < rank_a; t is the expand's scratch, [rows, 3, rMax])
// WGSL below is generated with the host matmul's binding numbers (matmul.ts, opts.loraShrink);
// reference: lora.fused.ref.ts · checks: lora.fused.check.ts.
//
// (Measured and dropped, 2026-12-02, commit 75fbb1f: fusing the expand too — into the matmul epilogue,
// o_proj's into the post-attention rmsnorm — and the q|k|v / gate|up / down shrinks into rmsnorm and
// silu·mul tails that recompute their input: 49 dispatches per step like the base, but per-row BGMV
// work in a single-workgroup epilogue and recomputation in the tails cost more than the 40 dispatches
// saved on SwiftShader: base ÷ hetero 0.50 by GPU time vs 0.81 for separate dispatches.)
//
// Per-step meta (u32, one upload per step):
//   [nTiles × 8]  shrink tiles: adapter entry offset, nRows, row0..row3 (unused rows repeat row0), k0, 0
//                 for k0 = 0, 4, .. < the adapter's own rank (rank-aware: nothing padded to the largest rank)
//   then per adapter of the step: rank, f32 bits of scale, per-layer module mask [layers], pages [rank]
import type { Runtime } from '../gpu/runtime.ts';
import { bankLayout, MAX_BANK_MODULES, SGMV_TILE, type LoraBank } from './lora.ts';

/** Uniform fields of the shrink tail (appended to the host kernel's params). */
export const LORA_FUSED_FIELDS = {
  /** Offset of pages inside an adapter entry (2 + layers). */
  lPg: 'u32',
  lLayer: 'u32',
  lRMax: 'u32',
  /** t row stride and the t column of bank module 0. */
  lTStride: 'u32',
  sTOff: 'u32',
  /** Tiles (shrink entries), mask bit of bank module 0, A module row (vec4), A page (vec4). */
  sN: 'u32',
  sMod0: 'u32',
  sInP4: 'u32',
  sAPage4: 'u32',
} as const;
export type LoraFusedField = keyof typeof LORA_FUSED_FIELDS;

/** What one step uploads for the shrink tails. */
export interface LoraFusedStep {
  meta: GPUBuffer;
  /** [rows, tStride] f32: the expand's scratch (LoraStepBuffers.t), written by the tails. */
  t: GPUBuffer;
  rows: number;
  layers: number;
  rMax: number;
  tStride: number;
  /** Shrink tiles. */
  nTiles: number;
}

/** A shrink to run as the tail of the base matmul over the same x: t[row, tOff + m·rMax + k] = x[row] · A_m[k]. */
export interface LoraShrinkArgs {
  step: LoraFusedStep;
  bank: LoraBank;
  layer: number;
  /** t column of bank module 0. */
  tOff: number;
}

export interface FusedAdapter {
  rank: number;
  scale: number;
  /** masks[l]: bit (LORA_MODULES index) set when the adapter targets (l, module). */
  masks: ArrayLike<number>;
  /** Page of rank row k (k < rank). */
  pages: ArrayLike<number>;
}

/** meta for a step: rowAdapter[r] = index into `adapters`, or -1 (base row). Rows are tiled per adapter in row order. */
export function packFusedMeta(rowAdapter: ArrayLike<number>, adapters: readonly FusedAdapter[], layers: number): { meta: Uint32Array; nTiles: number } {
  const rowsOf: number[][] = adapters.map(() => []);
  for (let r = 0; r < rowAdapter.length; r++) {
    const a = rowAdapter[r]!;
    if (a < 0) continue;
    const list = rowsOf[a];
    if (!list) throw new Error(`lora fused: row ${r} uses adapter ${a}, have ${adapters.length}`);
    list.push(r);
  }
  let nTiles = 0;
  adapters.forEach((ad, a) => {
    if (!(Number.isInteger(ad.rank) && ad.rank >= 1)) throw new Error(`lora fused: rank ${ad.rank}`);
    if (ad.pages.length < ad.rank || ad.masks.length < layers) throw new Error('lora fused: an adapter entry needs rank pages and a mask per layer');
    nTiles += Math.ceil(rowsOf[a]!.length / SGMV_TILE) * Math.ceil(ad.rank / 4);
  });
  const entOf: number[] = [];
  let size = 8 * nTiles;
  for (const ad of adapters) {
    entOf.push(size);
    size += 2 + layers + ad.rank;
  }
  const meta = new Uint32Array(size);
  const f = new Float32Array(meta.buffer);
  let q = 0;
  adapters.forEach((ad, a) => {
    const rows = rowsOf[a]!;
    for (let i = 0; i < rows.length; i += SGMV_TILE) {
      const n = Math.min(SGMV_TILE, rows.length - i);
      for (let k0 = 0; k0 < ad.rank; k0 += 4) {
        meta.set([entOf[a]!, n, rows[i]!, rows[i + (n > 1 ? 1 : 0)]!, rows[i + (n > 2 ? 2 : 0)]!, rows[i + (n > 3 ? 3 : 0)]!, k0, 0], q);
        q += 8;
      }
    }
    const e = entOf[a]!;
    meta[e] = ad.rank;
    f[e + 1] = ad.scale;
    for (let l = 0; l < layers; l++) meta[e + 2 + l] = ad.masks[l]!;
    for (let k = 0; k < ad.rank; k++) meta[e + 2 + layers + k] = ad.pages[k]!;
  });
  return { meta, nTiles };
}

/** Uploads meta; `t` is the expand's scratch ([rows, MAX_BANK_MODULES · rMax] unless tStride says otherwise). */
export function uploadFusedStep(rt: Runtime, meta: Uint32Array, nTiles: number, t: GPUBuffer, rows: number, layers: number, rMax: number, tStride = MAX_BANK_MODULES * rMax): LoraFusedStep {
  if (t.size < rows * tStride * 4) throw new Error(`lora fused: t (${t.size} B) smaller than ${rows} × ${tStride} f32`);
  const m = rt.acquire(Math.max(4, meta.byteLength), undefined, 'lora-fused-meta');
  rt.write(m, meta);
  return { meta: m, t, rows, layers, rMax, tStride, nTiles };
}

export function releaseFusedStep(rt: Runtime, s: LoraFusedStep): void {
  rt.release(s.meta);
}

/** Uniform values of the tail (zeros when a dispatch has none: sN = 0). */
export function fusedParams(a: LoraShrinkArgs | undefined): Record<LoraFusedField, number> {
  if (!a) return { lPg: 0, lLayer: 0, lRMax: 0, lTStride: 0, sTOff: 0, sN: 0, sMod0: 0, sInP4: 0, sAPage4: 0 };
  const L = bankLayout(a.bank.inDim, a.bank.outDims);
  return {
    lPg: 2 + a.step.layers, lLayer: a.layer, lRMax: a.step.rMax, lTStride: a.step.tStride, sTOff: a.tOff,
    sN: a.step.nTiles, sMod0: a.bank.mod0, sInP4: L.inP / 4, sAPage4: L.aPage / 4,
  };
}

/** Checks that the tail fits the kernel's rows and input. */
export function checkFused(what: string, rows: number, a: LoraShrinkArgs, inDim: number): void {
  if (a.step.rows !== rows) throw new Error(`${what}: LoRA step has ${a.step.rows} rows, the kernel ${rows}`);
  if (!(a.layer >= 0 && a.layer < a.step.layers)) throw new Error(`${what}: LoRA layer ${a.layer} outside ${a.step.layers}`);
  if (a.tOff + a.bank.outDims.length * a.step.rMax > a.step.tStride) throw new Error(`${what}: LoRA t columns ${a.tOff}+ exceed the t row (${a.step.tStride})`);
  if (a.bank.inDim !== inDim) throw new Error(`${what}: LoRA shrink bank reads ${a.bank.inDim} features, the kernel's rows have ${inDim}`);
}

/**
 * The tail for a bank of nMod modules: fn lShrink(u) for tail invocation u = tile · nMod + module, with
 * bindings meta, t (read_write) and A from bMeta on. The host kernel defines lIn4(row, c): input vec4 c
 * of the row (0 past the row). A 4-row × 4-lane register tile: each A vec4 serves 4 rows, each x vec4
 * 4 lanes; lanes past the rank re-read its last row and are not stored; a 1-row tile takes a 1-row loop.
 */
export function loraShrinkWgsl(nMod: number, bMeta: number): string {
  const R = [0, 1, 2, 3], Q = [0, 1, 2, 3];
  const sum = (v: string) => `((${v}.x + ${v}.y) + (${v}.z + ${v}.w))`;
  let s = `@group(0) @binding(${bMeta}) var<storage, read> lmeta: array<u32>;
@group(0) @binding(${bMeta + 1}) var<storage, read_write> lt: array<f32>;
@group(0) @binding(${bMeta + 2}) var<storage, read> lA: array<vec4<f32>>;
fn lRank(e: u32) -> u32 { return lmeta[e]; }
fn lTargets(e: u32, bit: u32) -> bool { return (lmeta[e + 2u + p.lLayer] & (1u << bit)) != 0u; }
fn lPage(e: u32, k: u32) -> u32 { return lmeta[e + p.lPg + k]; }
fn lShrink(u: u32) {
  let ti = u / ${nMod}u;
  let m = u % ${nMod}u;
  if (ti >= p.sN) { return; }
  let b = 8u * ti;
  let e = lmeta[b];
  let nRows = lmeta[b + 1u];
${R.map((r) => `  let r${r} = lmeta[b + ${2 + r}u];\n`).join('')}  let k0 = lmeta[b + 6u];
  if (!lTargets(e, p.sMod0 + m)) { return; }
  let rank = lRank(e);
${Q.map((q) => `  let a${q} = lPage(e, min(k0 + ${q}u, rank - 1u)) * p.sAPage4 + m * p.sInP4;\n`).join('')}  let tm = p.sTOff + m * p.lRMax + k0;
  if (nRows == 1u) {
${Q.map((q) => `    var s${q} = vec4<f32>(0.0);\n`).join('')}    for (var c = 0u; c < p.sInP4; c++) {
      let xv = lIn4(r0, c);
${Q.map((q) => `      s${q} += lA[a${q} + c] * xv;\n`).join('')}    }
    let tb = r0 * p.lTStride + tm;
${Q.map((q) => (q ? `    if (k0 + ${q}u < rank) { lt[tb + ${q}u] = ${sum(`s${q}`)}; }\n` : `    lt[tb] = ${sum('s0')};\n`)).join('')}    return;
  }
${R.flatMap((r) => Q.map((q) => `  var c${r}${q} = vec4<f32>(0.0);\n`)).join('')}  for (var c = 0u; c < p.sInP4; c++) {
${R.map((r) => `    let x${r} = lIn4(r${r}, c);\n`).join('')}${Q.map((q) => `    let av${q} = lA[a${q} + c];\n`).join('')}${R.flatMap((r) => Q.map((q) => `    c${r}${q} += av${q} * x${r};\n`)).join('')}  }
`;
  for (const r of R) {
    s += `  ${r ? `if (nRows > ${r}u) ` : ''}{\n    let tb = r${r} * p.lTStride + tm;\n`;
    for (const q of Q) s += q ? `    if (k0 + ${q}u < rank) { lt[tb + ${q}u] = ${sum(`c${r}${q}`)}; }\n` : `    lt[tb] = ${sum(`c${r}0`)};\n`;
    s += `  }\n`;
  }
  return s + `}\n`;
}
