// Matmul / matvec (host side): out[M, N] = x[M, K] · Wᵀ (+ bias) (+= out), for every GpuWeight
// format and across weight parts.
// WGSL: shaders/matmul.*.wgsl, composed per (variant, weight format, activation mode):
//   MatmulParams + matmul.common + matmul.x_<f32|vec4> + matmul.w_<f32|f32v4|f16|q8> + matmul.<variant>
// Reference: shaders/matmul.ref.ts · checks: shaders/matmul.check.ts · speed: bench/kernels.
//
// Variants (numbered as in llm.c dev/cuda; all stay selectable through opts.variant):
//   v1  naive: one output per invocation, scalar K loop (the baseline)
//   v2  register-tiled 4x4 outputs per invocation, vec4 loads along K, barrier-free
//   v3  register-tiled 8x8, generated (unrolled over the tile), one guarded K loop
//   v4  register-tiled 16x12, same generator (best measured for prefill on SwiftShader)
//   mv1 matvec for decode: 1x4 outputs per invocation (generated, like v3)
//   mv2 subgroup matvec: the lanes of a subgroup split K and reduce with subgroupAdd
// The product path (`variant` omitted) picks by M: see pickVariant().
//
// Fused multi-LoRA shrink (shaders/lora/lora.fused.ts): opts.loraShrink runs the LoRA shrink of the
// same x (t = x·Aᵀ per row's adapter) as tail invocations after the output tiles: a variant of the
// same kernels (key `variant|wl|xl|tailN`); split-K (mv2) has no tail, so a tail turns it into mv1.
// Checks: shaders/lora/lora.fused.check.ts.
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime, Binding } from '../gpu/runtime.ts';
import type { GpuWeight, WeightFormat } from './weights.ts';
import { LORA_FUSED_FIELDS, checkFused, fusedParams, loraShrinkWgsl, type LoraFusedField, type LoraShrinkArgs } from '../lora/lora.fused.ts';

const MATMUL_FIELDS = {
  M: 'u32',
  /** Output row stride (all of W's rows, not just this part's). */
  N: 'u32',
  K: 'u32',
  /** First output column of this weight part. */
  rowStart: 'u32',
  /** Rows of this weight part. */
  rows: 'u32',
  xOff: 'u32',
  outOff: 'u32',
  /** bit 0: accumulate into out, bit 1: add bias. */
  flags: 'u32',
  /** Weight row stride in the loader's units (f32: K, f32v4: K/4, f16: Kp/2, q8: Kp/4). */
  wStride: 'u32',
  /** Column tiles per row of tiles: ceil(rows / tileN). */
  tilesN: 'u32',
} as const;
export const MatmulParams = defineParams('MatmulParams', MATMUL_FIELDS);
/** The same struct (WGSL name MatmulParams) with the fused multi-LoRA fields after it. */
const MatmulLoraParams = defineParams('MatmulParams', { ...MATMUL_FIELDS, ...LORA_FUSED_FIELDS });
type F = (typeof MatmulParams.fields)[number][0] | LoraFusedField;

type WLoader = 'f32' | 'f32v4' | 'f16' | 'q8';
type XLoader = 'f32' | 'vec4';

interface Variant {
  /** WGSL body: WGSL[`matmul.${body}`], or 'gen:tiled' / 'gen:splitk' for bodies generated
   *  (fully unrolled) by genTiled() / genSplitK() below for the variant's tile. */
  body: string;
  /** Split-K over the lanes of a subgroup (needs the subgroups feature). */
  subgroups?: boolean;
  /** gen:tiled only: vec4 steps along K per loop iteration (default 1). */
  unroll?: number;
  /** gen:tiled only: read x (and f32 W) through the array<vec4> loaders when K % 4 == 0 (and the
   *  x offset is a multiple of 4): one robustness clamp per vec4 instead of four. */
  vec4?: boolean;
  /** Outputs per invocation along m (x rows) and along r (weight rows). */
  tileM: number;
  tileN: number;
  /** Workgroup size (WGSL override WG). */
  wg: number;
  description: string;
}

export const MATMUL_VARIANTS: Record<string, Variant> = {
  v1: { body: 'v1', tileM: 1, tileN: 1, wg: 64, description: 'naive: 1 output / invocation, scalar K loop' },
  v2: { body: 'v2', tileM: 4, tileN: 4, wg: 64, description: 'register-tiled 4x4, vec4 loads, barrier-free' },
  v3: { body: 'gen:tiled', tileM: 8, tileN: 8, wg: 64, description: 'register-tiled 8x8, vec4 loads, one guarded K loop, barrier-free' },
  v4: { body: 'gen:tiled', tileM: 16, tileN: 12, wg: 64, description: 'register-tiled 16x12 (v3 generator): fewer loads per FMA' },
  mv1: { body: 'gen:tiled', tileM: 1, tileN: 4, wg: 64, description: 'matvec: 1x4 outputs per invocation, vec4 loads, barrier-free' },
  mv2: { body: 'gen:splitk', subgroups: true, tileM: 1, tileN: 4, wg: 64, description: 'subgroup matvec: lanes split K (consecutive chunks), 1x4 outputs per subgroup, subgroupAdd' },
};

/** Lanes per subgroup the host assumes when sizing the grid (SwiftShader: 4). Kernels loop over
 *  tiles, so a different real subgroup size stays correct (only the grid is off). */
const ASSUMED_SUBGROUP = 4;

/** Register-tiled body (TM x TN outputs per invocation, TN a multiple of 4, vec4 along K),
 *  unrolled over the tile. One K loop over ceil(K/4) steps: x loads are guarded (0 past K), so
 *  W loads past K (next row's values, the zero padding of f16/q8, or an index clamped by
 *  robust buffer access) are multiplied by 0. Accumulators are vec4s over 4 weight rows. */
function genTiled(TM: number, TN: number, U = 1, q8 = false, xVec4 = false): string {
  if (TN % 4) throw new Error('genTiled: TN must be a multiple of 4');
  const I = [...Array(TM).keys()], J = [...Array(TN).keys()], JB = [...Array(TN / 4).keys()];
  let s = `override WG: u32 = 64u;\n@compute @workgroup_size(WG)\n`;
  s += `fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {\n`;
  s += `  let t = gid.x + gid.y * nwg.x * WG;\n  let tilesM = (p.M + ${TM - 1}u) / ${TM}u;\n  if (t >= tilesM * p.tilesN) { return; }\n`;
  s += `  let m0 = (t / p.tilesN) * ${TM}u;\n  let r0 = (t % p.tilesN) * ${TN}u;\n`;
  for (const i of I) s += `  let mi${i} = min(m0 + ${i}u, p.M - 1u);\n`;
  for (const j of J) s += `  let rj${j} = min(r0 + ${j}u, p.rows - 1u);\n`;
  for (const i of I) for (const b of JB) s += `  var c${i}_${b} = vec4<f32>(0.0);\n`;
  const step = (k: string, u: number, guarded: boolean) => {
    let t = '';
    for (const j of J) t += `    let wv${j}_${u} = w4(rj${j}, ${k});\n`;
    for (const i of I) {
      // With the vec4 x loader K % 4 == 0, so k < K implies k + 3 < K: no guard needed.
      t += `    let xv${i}_${u} = ${guarded && !xVec4 ? 'x4g' : 'x4'}(mi${i}, ${k});\n`;
      for (const b of JB)
        t += `    c${i}_${b} += vec4<f32>(${[0, 1, 2, 3].map((q) => `dot(xv${i}_${u}, wv${4 * b + q}_${u})`).join(', ')});\n`;
    }
    return t;
  };
  if (q8) {
    // int8: the scale is per 32-element group, so each group is summed on the raw int8 values
    // and scaled once (saves a scale load and a multiply per weight load).
    s += `  for (var g = 0u; g < p.K; g += 32u) {\n`;
    for (const j of J) s += `    let sc${j} = q8scale(rj${j}, g);\n`;
    for (const i of I) for (const b of JB) s += `    var d${i}_${b} = vec4<f32>(0.0);\n`;
    s += `    let kEnd = min(g + 32u, p.K);\n    for (var k = g; k < kEnd; k += 4u) {\n`;
    s += step('k', 0, true).replace(/w4\(/g, 'w4raw(').replace(/ c(\d+_\d+) \+=/g, ' d$1 +=').replace(/^/gm, '  ');
    s += `    }\n`;
    for (const i of I) for (const b of JB) s += `    c${i}_${b} += d${i}_${b} * vec4<f32>(${[0, 1, 2, 3].map((q) => `sc${4 * b + q}`).join(', ')});\n`;
    s += `  }\n`;
    for (const i of I) for (const b of JB) s += `  store4(m0 + ${i}u, r0 + ${4 * b}u, c${i}_${b});\n`;
    return s + `}\n`;
  }
  if (U > 1) {
    s += `  let KU = p.K / ${4 * U}u * ${4 * U}u;\n  for (var k = 0u; k < KU; k += ${4 * U}u) {\n`;
    for (let u = 0; u < U; u++) s += step(u ? `k + ${4 * u}u` : 'k', u, false);
    s += `  }\n  for (var k = KU; k < p.K; k += 4u) {\n`;
  } else s += `  for (var k = 0u; k < p.K; k += 4u) {\n`;
  s += step('k', 0, true);
  s += `  }\n`;
  for (const i of I) for (const b of JB) s += `  store4(m0 + ${i}u, r0 + ${4 * b}u, c${i}_${b});\n`;
  return s + `}\n`;
}

/** Split-K body: one subgroup per TM x TN tile; lane l handles K chunks l, l+S, ... (consecutive
 *  addresses across lanes), then subgroupAdd. Tiles are walked in a subgroup-uniform loop, so any
 *  subgroup size is correct. Needs matmul.sk_<format> loaders (E elements per chunk). */
function genSplitK(TM: number, TN: number): string {
  const I = [...Array(TM).keys()], J = [...Array(TN).keys()];
  let s = `override WG: u32 = 64u;\n@compute @workgroup_size(WG)\n`;
  s += `fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,\n`;
  s += `        @builtin(subgroup_size) S: u32, @builtin(subgroup_invocation_id) lane: u32) {\n`;
  s += `  let sgPerWg = WG / S;\n  let totalSg = nwg.x * nwg.y * sgPerWg;\n`;
  s += `  let tilesM = (p.M + ${TM - 1}u) / ${TM}u;\n  let nTiles = tilesM * p.tilesN;\n`;
  s += `  let CF = p.K / E;\n  let CT = (p.K + E - 1u) / E;\n`;
  s += `  for (var tile = (wid.x + wid.y * nwg.x) * sgPerWg + li / S; tile < nTiles; tile += totalSg) {\n`;
  s += `    let m0 = (tile / p.tilesN) * ${TM}u;\n    let r0 = (tile % p.tilesN) * ${TN}u;\n`;
  for (const i of I) s += `    let mi${i} = min(m0 + ${i}u, p.M - 1u);\n`;
  for (const j of J) s += `    let rj${j} = min(r0 + ${j}u, p.rows - 1u);\n`;
  for (const i of I) for (const j of J) s += `    var c${i}_${j} = 0.0;\n`;
  s += `    var c = lane;\n    for (; c < CF; c += S) {\n`;
  for (const j of J) s += `      let wv${j} = wsk(rj${j}, c);\n`;
  for (const i of I) {
    s += `      let xv${i} = xsk(mi${i}, c);\n`;
    for (const j of J) s += `      c${i}_${j} += vdot(xv${i}, wv${j});\n`;
  }
  s += `    }\n    if (c < CT) {\n`;
  for (const j of J) s += `      let wv${j} = wsk(rj${j}, c);\n`;
  for (const i of I) {
    s += `      let xv${i} = xskt(mi${i}, c);\n`;
    for (const j of J) s += `      c${i}_${j} += vdot(xv${i}, wv${j});\n`;
  }
  s += `    }\n`;
  for (const i of I) for (const j of J) s += `    let s${i}_${j} = subgroupAdd(c${i}_${j});\n`;
  s += `    if (lane == 0u) {\n`;
  for (const i of I) for (const j of J) s += `      if (m0 + ${i}u < p.M && r0 + ${j}u < p.rows) { store(m0 + ${i}u, r0 + ${j}u, s${i}_${j}); }\n`;
  s += `    }\n  }\n}\n`;
  return s;
}
export type MatmulVariant = keyof typeof MATMUL_VARIANTS;

/**
 * A variant by name: a key of MATMUL_VARIANTS, or an ad-hoc register tile for exploration
 * (bench/kernels/explore.ts) written `tiled:<TM>x<TN>[:<WG>][:u<U>][:v]` (TN a multiple of 4; U =
 * vec4 steps per K-loop iteration; v = vec4 loaders when K % 4 == 0), built by the same generator
 * as v3/v4/mv1.
 */
export function resolveVariant(name: string): Variant | undefined {
  if (Object.prototype.hasOwnProperty.call(MATMUL_VARIANTS, name)) return MATMUL_VARIANTS[name];
  const m = /^tiled:(\d+)x(\d+)(?::(\d+))?(?::u(\d+))?(:v)?$/.exec(name);
  if (!m) return undefined;
  const [tileM, tileN, wg, unroll] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 64), Number(m[4] ?? 1)];
  if (tileM < 1 || tileN < 4 || tileN % 4 || tileM * tileN > 512 || wg < 1 || wg > 256 || unroll < 1 || unroll > 8) return undefined;
  const vec4 = !!m[5];
  return { body: 'gen:tiled', tileM, tileN, wg, unroll, vec4, description: `ad-hoc register tile ${tileM}x${tileN}, WG ${wg}, K unroll ${unroll}${vec4 ? ', vec4 loaders' : ''}` };
}

const kernels = new Map<string, Kernel<F>>();

const TAIL_ANCHORS: Array<[string, string]> = [
  ['if (t >= tilesM * p.tilesN) { return; }', 'if (t >= tilesM * p.tilesN) { lShrink(t - tilesM * p.tilesN); return; }'],
  ['if (t >= p.M * p.rows) { return; }', 'if (t >= p.M * p.rows) { lShrink(t - p.M * p.rows); return; }'],
];

/** tailMod: the kernel runs a LoRA shrink tail over a bank of that many modules (0: none). */
function kernelFor(variant: string, wl: WLoader, xl: XLoader, tailMod = 0): Kernel<F> {
  const key = `${variant}|${wl}|${xl}|${tailMod}`;
  let k = kernels.get(key);
  if (k) return k;
  const v = resolveVariant(variant)!;
  const src = WGSL as Record<string, string>;
  const parts = ['matmul.common', `matmul.x_${xl}`, `matmul.w_${wl}`];
  if (v.subgroups) parts.push(`matmul.sk_${wl}`);
  if (!v.body.startsWith('gen:')) parts.push(`matmul.${v.body}`);
  for (const p of parts) if (!(p in src)) throw new Error(`matmul: missing WGSL ${p} (run node scripts/gen-shaders.mjs)`);
  let body = '';
  if (v.body === 'gen:tiled') body = genTiled(v.tileM, v.tileN, v.unroll, wl === 'q8', xl === 'vec4');
  else if (v.body === 'gen:splitk') body = genSplitK(v.tileM, v.tileN);
  const header = v.subgroups ? 'enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n' : '';
  let code = parts.map((p) => src[p]).join('\n') + body;
  if (tailMod) {
    // bindings after the matmul's own (x, bias, out, w, [q8 scales]): meta, t, A
    const a = TAIL_ANCHORS.find(([from]) => code.includes(from));
    if (!a || v.subgroups) throw new Error(`matmul: variant ${variant} has no LoRA shrink tail`);
    code = code.replace(a[0], a[1]) + loraShrinkWgsl(tailMod, wl === 'q8' ? 6 : 5) + MATMUL_TAIL_INPUT;
  }
  const params = tailMod ? MatmulLoraParams : MatmulParams;
  k = {
    name: `matmul_${variant}_${wl}_x${xl}${tailMod ? '_lora_shrink' : ''}`,
    code: header + params.wgsl + code,
    params: params as typeof MatmulLoraParams,
    constants: { WG: v.wg },
  };
  kernels.set(key, k);
  return k;
}

/** The shrink tail reads x rows (K features) through the matmul's own x binding. */
const MATMUL_TAIL_INPUT = `
fn lIn4(row: u32, c: u32) -> vec4<f32> {
  let j = 4u * c;
  return vec4<f32>(x1(row, j), select(0.0, x1(row, j + 1u), j + 1u < p.K), select(0.0, x1(row, j + 2u), j + 2u < p.K), select(0.0, x1(row, j + 3u), j + 3u < p.K));
}
`;

/** Whether this runtime can run a variant (split-K variants need subgroups). */
export function variantSupported(rt: Runtime, variant: string): boolean {
  const v = resolveVariant(variant);
  return !!v && (!v.subgroups || rt.info.features.subgroups);
}

/**
 * The variant the product path uses for a given M (measured on SwiftShader, bench/kernels):
 * decode-sized M (< 4) → mv1 (1x4 matvec: W read once per x row, no wasted tile rows);
 * 4 <= M < 8 → v2 (4x4); 8 <= M < 16 → v3 (8x8); M >= 16 → v4 (16x12). On a real GPU with subgroups, M < 4 uses mv2
 * (lanes split K, so W reads are coalesced) — reasoned, not measured here (no GPU).
 */
export function pickVariant(M: number, _w: GpuWeight, rt?: Runtime): string {
  if (M < 4) return rt && !rt.info.isCpu && rt.info.features.subgroups ? 'mv2' : 'mv1';
  if (M < 8) return 'v2';
  if (M < 16) return 'v3';
  return 'v4';
}

const dummyBias = new WeakMap<Runtime, GPUBuffer>();
function noBias(rt: Runtime): GPUBuffer {
  let b = dummyBias.get(rt);
  if (!b) dummyBias.set(rt, (b = rt.createBuffer(16, 'matmul-no-bias')));
  return b;
}

export interface MatmulOptions {
  /** out += x·Wᵀ (+ bias) instead of out = ... */
  accumulate?: boolean;
  /** x row m starts at element xOffsetElems + m*K. */
  xOffsetElems?: number;
  /** out row m starts at element outOffsetElems + m*N. */
  outOffsetElems?: number;
  /** Force a variant (tests, bench): a key of MATMUL_VARIANTS. */
  variant?: string;
  /** Fused multi-LoRA shrink of x (K features) as tail invocations: t = x·Aᵀ per row's adapter. */
  loraShrink?: LoraShrinkArgs;
}

/**
 * out[M, N] = x[M, K] · Wᵀ (+ w.bias) (+= out when accumulate). x rows have stride K,
 * out rows stride N (N = w.N, K = w.K). `x` and `out` must be different buffers.
 */
export function matmul(rt: Runtime, x: GPUBuffer, w: GpuWeight, out: GPUBuffer, M: number, opts: MatmulOptions = {}): void {
  const { N, K } = w;
  const xOff = opts.xOffsetElems ?? 0;
  const outOff = opts.outOffsetElems ?? 0;
  if (!Number.isInteger(M) || M < 0) throw new Error(`matmul ${w.name}: bad M=${M}`);
  if (!Number.isInteger(xOff) || xOff < 0 || !Number.isInteger(outOff) || outOff < 0)
    throw new Error(`matmul ${w.name}: bad offsets x=${xOff} out=${outOff}`);
  if (M === 0) return;
  if (x === out) throw new Error(`matmul ${w.name}: x and out must be different buffers`);
  if ((xOff + M * K) * 4 > x.size) throw new Error(`matmul ${w.name}: x holds ${x.size / 4} floats, needs ${xOff + M * K} (M=${M}, K=${K}, offset ${xOff})`);
  if ((outOff + M * N) * 4 > out.size) throw new Error(`matmul ${w.name}: out holds ${out.size / 4} floats, needs ${outOff + M * N} (M=${M}, N=${N}, offset ${outOff})`);
  const tail = opts.loraShrink;
  if (tail) {
    checkFused(`matmul ${w.name}`, M, tail, K);
    if (xOff) throw new Error(`matmul ${w.name}: the LoRA shrink tail needs xOffsetElems 0`);
  }
  let variant = opts.variant ?? pickVariant(M, w, rt);
  if (tail && resolveVariant(variant)?.subgroups) variant = 'mv1';
  const v = resolveVariant(variant);
  if (!v) throw new Error(`matmul: unknown variant '${variant}' (have ${Object.keys(MATMUL_VARIANTS).join(', ')})`);

  if (v.subgroups && !rt.info.features.subgroups) throw new Error(`matmul: variant ${variant} needs the subgroups feature`);
  // Generated variants read x and f32 W with the scalar loaders (one pipeline per format; on
  // SwiftShader a vec4 load is four per-lane gathers either way) unless the spec asks for the
  // vec4 loaders (':v', exploration: measured within the noise of v4, bench/kernels README).
  const vec = !v.body.startsWith('gen:') || !!v.vec4;
  const wl: WLoader = w.format === 'f32' ? (K % 4 === 0 && vec ? 'f32v4' : 'f32') : w.format;
  const xl: XLoader = K % 4 === 0 && xOff % 4 === 0 && vec ? 'vec4' : 'f32';
  const nMod = tail?.bank.outDims.length ?? 0;
  const kernel = kernelFor(variant, wl, xl, nMod);
  const wStride = wl === 'f32' ? K : wl === 'f32v4' ? K / 4 : w.format === 'f16' ? w.Kp / 2 : w.Kp / 4;
  const flags = (opts.accumulate ? 1 : 0) | (w.bias ? 2 : 0);
  const bias: Binding = w.bias ?? noBias(rt);
  w.parts.forEach((part, pi) => {
    const tilesN = Math.ceil(part.rows / v.tileN);
    let threads = Math.ceil(M / v.tileM) * tilesN * (v.subgroups ? ASSUMED_SUBGROUP : 1);
    const buffers: Binding[] = [x, bias, out, part.data];
    if (w.format === 'q8') {
      if (!part.scales) throw new Error(`matmul ${w.name}: q8 part without scales`);
      buffers.push(part.scales);
    }
    const base = { M, N, K, rowStart: part.rowStart, rows: part.rows, xOff, outOff, flags, wStride, tilesN };
    if (tail) {
      // the shrink tail runs once, with the first part: tile · nMod + module
      if (pi === 0) threads += tail.step.nTiles * nMod;
      buffers.push(tail.step.meta, tail.step.t, tail.bank.A);
      rt.dispatch(kernel, { params: { ...base, ...fusedParams(pi === 0 ? tail : undefined) }, buffers, workgroups: rt.grid(Math.ceil(threads / v.wg)) });
      return;
    }
    rt.dispatch(kernel, { params: base as Record<F, number>, buffers, workgroups: rt.grid(Math.ceil(threads / v.wg)) });
  });
}

/** Bytes a matmul call moves at minimum (weights once, x once, out once or twice), for the bench. */
export function matmulBytes(w: GpuWeight, M: number, accumulate = false): number {
  return w.bytes + 4 * M * w.K + 4 * M * w.N * (accumulate ? 2 : 1);
}

export type { WeightFormat };
