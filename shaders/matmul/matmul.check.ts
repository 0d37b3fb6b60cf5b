import type { KernelCheck, CheckResult } from '../lib/check.ts';
import { randomArray, relErr } from '../lib/check.ts';
import { matmul, MATMUL_VARIANTS, variantSupported } from './matmul.ts';
import { matmulRef, q8ErrorBound } from './matmul.ref.ts';
import { uploadWeight, destroyWeight, dequantized, quantizeQ8, Q8_GROUP, type WeightFormat } from './weights.ts';
import type { Runtime } from '../gpu/runtime.ts';

// Awkward shapes: every M in {1,3,7,33}, N in {5,67,130}, K in {3,13,64,172,257} appears at least twice.
const SHAPES: Array<[number, number, number]> = [
  [1, 5, 3], [1, 130, 257], [1, 67, 64],
  [3, 67, 13], [3, 5, 172], [3, 130, 64],
  [7, 130, 3], [7, 67, 257], [7, 5, 13],
  [33, 5, 64], [33, 67, 172], [33, 130, 13],
];

/** Bounds vs the float64 product of the ORIGINAL f32 weights. */
const BOUND: Record<WeightFormat, number> = { f32: 1e-5, f16: 2e-3, q8: 1 /* per-element derived bound, see below */ };

interface Case { M: number; N: number; K: number; seed: number; bias?: boolean; accumulate?: boolean; xOff?: number; outOff?: number; maxPartBytes?: number }

/** Runs one matmul on the GPU; returns the GPU output (M*N) and the inputs used. */
async function runCase(rt: Runtime, c: Case, format: WeightFormat, variant?: string) {
  const { M, N, K } = c;
  const x = randomArray(M * K, c.seed);
  const w = randomArray(N * K, c.seed + 1, 0.5);
  const bias = c.bias ? randomArray(N, c.seed + 2) : undefined;
  const prev = c.accumulate ? randomArray(M * N, c.seed + 3) : undefined;
  const xOff = c.xOff ?? 0, outOff = c.outOff ?? 0;
  const xPadded = new Float32Array(xOff + M * K + 5).fill(NaN); // NaN around x: any stray read shows
  xPadded.set(x, xOff);
  const outInit = new Float32Array(outOff + M * N + 7).fill(-12345);
  if (prev) outInit.set(prev, outOff);
  const gx = rt.upload(xPadded), gout = rt.upload(outInit);
  const gw = uploadWeight(rt, 'w', w, N, K, format, { bias, maxPartBytes: c.maxPartBytes });
  matmul(rt, gx, gw, gout, M, { accumulate: c.accumulate, xOffsetElems: xOff, outOffsetElems: outOff, variant });
  const all = await rt.readF32(gout, outInit.length);
  const parts = gw.parts.length;
  rt.destroy(gx); rt.destroy(gout); destroyWeight(rt, gw);
  // Nothing outside the output slice may change.
  let outside = 0;
  for (let i = 0; i < all.length; i++) if ((i < outOff || i >= outOff + M * N) && all[i] !== -12345) outside++;
  return { gpu: all.subarray(outOff, outOff + M * N), x, w, bias, prev, parts, outside };
}

function addPrev(ref: Float64Array, prev?: Float32Array): Float64Array {
  if (prev) for (let i = 0; i < ref.length; i++) ref[i] += prev[i];
  return ref;
}

/** Worst result over cases; format-aware bounds. q8: max over outputs of |gpu - ref| / derived bound
 *  (must be < 1), and separately vs the dequantized weights at 1e-5. */
async function checkCases(rt: Runtime, cases: Case[], format: WeightFormat, variant?: string): Promise<CheckResult> {
  let worst = 0;
  let detail = '';
  const note = (r: number, what: string) => {
    if (!(r <= worst)) { worst = Number.isNaN(r) ? Infinity : r; detail = what; }
  };
  for (const c of cases) {
    const { M, N, K } = c;
    const g = await runCase(rt, c, format, variant);
    const tag = `M=${M} N=${N} K=${K}${g.parts > 1 ? ` parts=${g.parts}` : ''}`;
    if (g.outside) note(Infinity, `${tag}: ${g.outside} values outside the output slice changed`);
    const refOrig = addPrev(matmulRef(g.x, g.w, M, N, K, g.bias), g.prev);
    if (format === 'q8') {
      // Each int8 weight is within s/2 of the original (s = group max / 127), so
      // |out - ref| <= sum_k |x_k| s_g / 2 per output; plus float32 rounding of the sum (tiny slack).
      const { scales } = quantizeQ8(g.w, N, K);
      const eb = q8ErrorBound(g.x, scales, M, N, K, Q8_GROUP);
      let scale = 0;
      for (const v of refOrig) scale = Math.max(scale, Math.abs(v));
      for (let i = 0; i < M * N; i++) {
        const r = Math.abs(g.gpu[i] - refOrig[i]) / (eb[i] + 1e-5 * Math.max(scale, 1e-30));
        note(r, `${tag}: vs original weights, err / (sum|x| s/2) = ${r.toFixed(3)}`);
      }
      const refDq = addPrev(matmulRef(g.x, dequantized(g.w, N, K, 'q8'), M, N, K, g.bias), g.prev);
      const e = relErr(g.gpu, refDq);
      // Express the dequantized comparison on the same "< 1" scale: rel err / 1e-5.
      note(e / 1e-5, `${tag}: vs dequantized weights rel err ${e.toExponential(2)} (bound 1e-5)`);
    } else {
      const e = relErr(g.gpu, refOrig);
      note(e, `${tag}: rel err ${e.toExponential(2)}`);
    }
  }
  const bound = BOUND[format];
  return { maxRelErr: worst, bound, detail };
}

const SHAPE_CASES: Case[] = SHAPES.map(([M, N, K], i) => ({ M, N, K, seed: 100 + 7 * i }));
const FORMATS: WeightFormat[] = ['f32', 'f16', 'q8'];

export const checks: KernelCheck[] = [];
for (const variant of Object.keys(MATMUL_VARIANTS)) {
  for (const format of FORMATS) {
    checks.push({
      name: `matmul ${variant} ${format} awkward shapes`,
      run: async (rt) =>
        variantSupported(rt, variant)
          ? checkCases(rt, SHAPE_CASES, format, variant)
          : { maxRelErr: 0, bound: BOUND[format], detail: `skipped: ${variant} needs subgroups` },
    });
  }
}
// The generator behind v3/v4/mv1 at an odd tile, workgroup size and K unroll (explore.ts uses it).
checks.push({ name: 'matmul tiled:3x8:32:u2 q8+f32 awkward shapes', run: async (rt) => {
  const a = await checkCases(rt, SHAPE_CASES.slice(0, 6), 'f32', 'tiled:3x8:32:u2');
  const b = await checkCases(rt, SHAPE_CASES.slice(6), 'q8', 'tiled:3x8:32:u2');
  // Both on the f32 scale: q8's ratio (< 1) is mapped onto 1e-5.
  return a.maxRelErr >= b.maxRelErr * 1e-5 ? a : { ...b, maxRelErr: b.maxRelErr * 1e-5, bound: 1e-5 };
} });
// The generator with the vec4 loaders (':v', K % 4 == 0 and x offset % 4 == 0 take them; other
// K / offsets fall back to the scalar loaders): f32 and q8, with parts, bias, accumulate, offsets.
checks.push({ name: 'matmul tiled:2x4:32:v f32+q8 vec4 loaders', run: async (rt) => {
  const cases: Case[] = [
    { M: 7, N: 67, K: 64, seed: 21, bias: true, accumulate: true, xOff: 8, outOff: 3 },
    { M: 33, N: 130, K: 172, seed: 22, maxPartBytes: 48 * 172 * 4, xOff: 64 },
    { M: 3, N: 5, K: 13, seed: 23, xOff: 4 },
    { M: 6, N: 130, K: 64, seed: 24, xOff: 3 },
  ];
  const a = await checkCases(rt, cases, 'f32', 'tiled:2x4:32:v');
  const b = await checkCases(rt, cases, 'q8', 'tiled:2x4:32:v');
  return a.maxRelErr >= b.maxRelErr * 1e-5 ? a : { ...b, maxRelErr: b.maxRelErr * 1e-5, bound: 1e-5 };
} });
for (const format of FORMATS) {
  // Product path (variant picked by M) with a weight split into several row parts, bias,
  // accumulate and element offsets that are not multiples of 4 or 64.
  checks.push({
    name: `matmul auto ${format} parts+bias+accumulate+offsets`,
    run: (rt) =>
      checkCases(
        rt,
        [
          { M: 1, N: 130, K: 64, seed: 7, maxPartBytes: 40 * 64 * 4, bias: true, accumulate: true, xOff: 3, outOff: 5 },
          { M: 5, N: 67, K: 13, seed: 8, maxPartBytes: 1, bias: true },
          { M: 33, N: 130, K: 172, seed: 9, maxPartBytes: 48 * 172 * 2, accumulate: true, xOff: 64, outOff: 260 },
          { M: 70, N: 67, K: 257, seed: 10, bias: true, accumulate: true, xOff: 1 },
          { M: 12, N: 130, K: 64, seed: 11, maxPartBytes: 50 * 64, bias: true, accumulate: true, outOff: 3 },
        ],
        format,
      ),
  });
}
