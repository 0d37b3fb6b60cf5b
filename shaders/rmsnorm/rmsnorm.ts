// RMSNorm (host side). WGSL: shaders/rmsnorm.wgsl · reference: shaders/rmsnorm.ref.ts · check: shaders/rmsnorm.check.ts
// Fused multi-LoRA variant (opts.lora, generated below with shaders/lora/lora.fused.ts): a LoRA
// delta added to x first (o_proj's expand, written to a second buffer x'), and the shrink of the
// normed rows (q|k|v or gate|up) as tail invocations — checks: shaders/lora/lora.fused.check.ts.
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import { reductionKernels, resolveVariant, type ReductionVariant } from '../lib/reduce.ts';
import { LORA_FUSED_FIELDS, checkFused, fusedParams, loraExpandWgsl, loraShrinkWgsl, loraStepWgsl, type LoraExpandArgs, type LoraShrinkArgs, type LoraFusedField } from '../lora/lora.fused.ts';

export const RmsNormParams = defineParams('RmsNormParams', { rows: 'u32', dim: 'u32', eps: 'f32' });
const WG = 64;
const kernels = reductionKernels('rmsnorm', RmsNormParams, WGSL.rmsnorm, WG);

/** Rows at or below this dim use one invocation per row (no barriers) unless `mode` says otherwise. */
export const RMSNORM_ROWS_MAX_DIM = 256;

/**
 * Default mode. Measured on SwiftShader (2 cores): a workgroup per row costs ~0.25 ms of barrier
 * scheduling per row (128 rows × 576: 27-37 ms vs 9 ms one-invocation-per-row), so CPU adapters
 * use 'row' except for a few long rows (1 row × 576: 0.8 vs 1.6 ms). GPUs: 'row' up to dim 256.
 */
export function rmsnormMode(isCpu: boolean, rows: number, dim: number): 'row' | 'workgroup' {
  if (dim <= RMSNORM_ROWS_MAX_DIM) return 'row';
  return isCpu && rows >= 4 ? 'row' : 'workgroup';
}

export interface RmsNormOptions {
  /** 'row' = one invocation per row; 'workgroup' = one workgroup per row. Default: rmsnormMode(). */
  mode?: 'row' | 'workgroup';
  /** Reduction variant for 'workgroup' mode (default: subgroups when the device has them). */
  variant?: ReductionVariant;
  /** Fused multi-LoRA work (one invocation per row, whatever `mode` says). */
  lora?: RmsNormLora;
}

export interface RmsNormLora {
  /** t = out · Aᵀ for the rows' adapters (the shrink of the group that reads the normed rows). */
  shrink?: LoraShrinkArgs;
  /** x' = x + the delta of a single-module bank (o_proj) before the norm; x' is written to `xOut`. */
  add?: LoraExpandArgs;
  xOut?: GPUBuffer;
}

// ---------------------------------------------------------------- fused multi-LoRA variant

export const RmsNormLoraParams = defineParams('RmsNormLoraParams', { rows: 'u32', dim: 'u32', eps: 'f32', ...LORA_FUSED_FIELDS });
type LF = 'rows' | 'dim' | 'eps' | LoraFusedField;
const loraKernels = new Map<string, Kernel<LF>>();

/** Bindings: 0 params, 1 x, 2 w, 3 out, 4 meta, 5 t, then A (shrink), then Bt, x' (add). */
function loraKernel(nMod: number, add: boolean): Kernel<LF> {
  const key = `${nMod}|${add}`;
  let k = loraKernels.get(key);
  if (k) return k;
  let b = 6;
  const shrinkSrc = nMod ? loraShrinkWgsl(nMod, b++) : '';
  let addSrc = '';
  if (add) {
    addSrc = loraExpandWgsl(b++) + `@group(0) @binding(${b++}) var<storage, read_write> xo: array<f32>;\n`;
  }
  const code = `${RmsNormLoraParams.wgsl}
@group(0) @binding(0) var<uniform> p: RmsNormLoraParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
${loraStepWgsl(4, 5, true)}${shrinkSrc}${addSrc}
// x (+ the row's o_proj delta) [row, 4c .. 4c + 3], 0 past dim.
fn lIn4(row: u32, c: u32) -> vec4<f32> {
  let j = 4u * c;
  let b = row * p.dim + j;
  var v = vec4<f32>(x[b], select(0.0, x[b + 1u], j + 1u < p.dim), select(0.0, x[b + 2u], j + 2u < p.dim), select(0.0, x[b + 3u], j + 3u < p.dim));
${add ? `  let e = lEntry(row);
  if (e != LNONE && lTargets(e, p.eMod0)) { v += lExpand4(e, row, p.eOc0 + j); }
` : ''}  return v;
}
fn lMul4(c: u32) -> vec4<f32> {
  let j = 4u * c;
  return vec4<f32>(w[j], select(0.0, w[j + 1u], j + 1u < p.dim), select(0.0, w[j + 2u], j + 2u < p.dim), select(0.0, w[j + 3u], j + 3u < p.dim));
}
fn lFinish(ss: f32) -> f32 { return 1.0 / sqrt(ss / f32(p.dim) + p.eps); }

// Invocations [0, rows): one row each (as main_rows); [rows, rows + sN): shrink entries.
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let u = gid.x + gid.y * nwg.x * 64u;
  if (u >= p.rows) {
${nMod ? '    lShrink(u - p.rows);\n' : ''}    return;
  }
  let base = u * p.dim;
  var s = vec4<f32>(0.0);
  let n4 = (p.dim + 3u) / 4u;
  for (var c = 0u; c < n4; c++) {
    let v = lIn4(u, c);
    s += v * v;
${add ? `    let j = 4u * c;
    xo[base + j] = v.x;
    if (j + 1u < p.dim) { xo[base + j + 1u] = v.y; }
    if (j + 2u < p.dim) { xo[base + j + 2u] = v.z; }
    if (j + 3u < p.dim) { xo[base + j + 3u] = v.w; }
` : ''}  }
  let r = lFinish((s.x + s.y) + (s.z + s.w));
  for (var j = 0u; j < p.dim; j++) {
    o[base + j] = ${add ? 'xo' : 'x'}[base + j] * r * w[j];
  }
}
`;
  k = { name: `rmsnorm_lora${nMod ? `_shrink${nMod}` : ''}${add ? '_add' : ''}`, code, params: RmsNormLoraParams };
  loraKernels.set(key, k);
  return k;
}

function rmsnormLora(rt: Runtime, x: GPUBuffer, weight: GPUBuffer, out: GPUBuffer, rows: number, dim: number, eps: number, l: RmsNormLora): void {
  const { shrink, add } = l;
  const step = shrink?.step ?? add?.step;
  if (!step) return rmsnorm(rt, x, weight, out, rows, dim, eps);
  if (shrink && add && shrink.step !== add.step) throw new Error('rmsnorm: LoRA shrink and add from different steps');
  checkFused('rmsnorm', rows, shrink, add, { inDim: dim, outWidth: dim });
  if (add) {
    if (add.bank.outDims.length !== 1) throw new Error('rmsnorm: the LoRA add takes a single-module bank (o_proj)');
    if (add.outOff !== 0 || add.bank.outDims[0] !== dim) throw new Error(`rmsnorm: the LoRA add must cover the row (${dim} columns)`);
    if (!l.xOut || l.xOut === x || l.xOut === out || l.xOut.size < rows * dim * 4) throw new Error("rmsnorm: the LoRA add needs xOut, a buffer of rows × dim that is neither x nor out");
  }
  const nMod = shrink?.bank.outDims.length ?? 0;
  const params = { rows, dim, eps, ...fusedParams(step, (shrink ?? add)!.layer, shrink, add) };
  const buffers: GPUBuffer[] = [x, weight, out, step.meta, step.t];
  if (shrink) buffers.push(shrink.bank.A);
  if (add) buffers.push(add.bank.Bt, l.xOut!);
  rt.dispatch(loraKernel(nMod, !!add), { params, buffers, workgroups: rt.grid(Math.ceil((rows + (shrink ? step.nEnt : 0)) / 64)) });
}

/**
 * out[r, :] = x[r, :] * rsqrt(mean(x[r, :]²) + eps) * weight, for `rows` rows of `dim` f32.
 * `out` must be a different buffer from `x` (WebGPU forbids binding one buffer as both
 * read-only and writable storage in one dispatch).
 */
export function rmsnorm(
  rt: Runtime,
  x: GPUBuffer,
  weight: GPUBuffer,
  out: GPUBuffer,
  rows: number,
  dim: number,
  eps: number,
  opts: RmsNormOptions = {},
): void {
  if (!(rows >= 0 && dim > 0) || !Number.isInteger(rows) || !Number.isInteger(dim)) throw new Error(`rmsnorm: bad shape rows=${rows} dim=${dim}`);
  if (x === out) throw new Error('rmsnorm: out must not alias x');
  if (x.size < rows * dim * 4 || out.size < rows * dim * 4 || weight.size < dim * 4) throw new Error('rmsnorm: buffer too small');
  if (rows === 0) return;
  if (opts.lora) return rmsnormLora(rt, x, weight, out, rows, dim, eps, opts.lora);
  const mode = opts.mode ?? rmsnormMode(rt.info.isCpu, rows, dim);
  const variant = resolveVariant(rt, opts.variant);
  const params = { rows, dim, eps };
  if (mode === 'row') {
    rt.dispatch(kernels(variant, 'main_rows'), { params, buffers: [x, weight, out], workgroups: rt.grid(Math.ceil(rows / 64)) });
  } else {
    rt.dispatch(kernels(variant), { params, buffers: [x, weight, out], workgroups: rt.grid(rows) });
  }
}
