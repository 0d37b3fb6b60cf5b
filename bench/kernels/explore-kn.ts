// Exploration (issue 2, layout hypothesis): W stored transposed [K, N] with lanes over
// consecutive output columns, against the product's nk kernels, in one process. Not product code.
//   npx tsx bench/kernels/explore-kn.ts K N M reps [configs]
// configs (comma-separated), <TM>x<TN> per invocation, WG = workgroup size:
//   s:TMxTN:WG[:c]  kn, scalar Wt loads, column j of an invocation = base + j*WG + lane (sequential
//                   across lanes), x[m,k] the same for all lanes; ':c' = K as a WGSL literal
//   v:TMxTN:WG      kn, one vec4 of Wt (4 consecutive columns) per lane and column block
//   u:TMxTN:WG      as s, but every lane reads the same Wt element (uniform load, wrong result)
//   a:TMxTN:WG      as s, no loads in the K loop at all (ALU/loop-overhead ceiling, wrong result)
//   n:TMxTN:WG / d:TMxTN:WG  nk layout, vec4 x/W along K; n: vec4 partial sums (no horizontal
//                   add per step), d: scalar accumulators with dot()
//   nk=<variant>    shaders/matmul.ts variant (e.g. nk=tiled:8x8, nk=mv1)
// Prints best-of-reps wall time and process CPU time (per CPU-second on 2 cores), ×baseline
// (v4, or mv1 for M < 4). 'u' and 'a' print their (meaningless) error in the warm-up line.
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { Runtime, type Kernel } from '../../shaders/gpu/runtime.ts';
import { defineParams } from '../../shaders/gpu/params.ts';
import { matmul } from '../../shaders/matmul/matmul.ts';
import { uploadWeight } from '../../shaders/matmul/weights.ts';
import { randomArray } from '../../shaders/lib/check.ts';

const P = defineParams('KnParams', { M: 'u32', N: 'u32', K: 'u32', pad: 'u32' });

// mode 's': scalar, column j of the invocation = base + j*WG + lid (sequential across lanes)
// mode 'v': vec4 per lane, vec4 block j = base4 + j*WG + lid
function gen(mode: 's' | 'v' | 'a' | 'u', TM: number, TN: number, WG: number, kConst = 0): Kernel {
  const I = [...Array(TM).keys()], J = [...Array(TN).keys()];
  let s = P.wgsl + `
@group(0) @binding(0) var<uniform> p: KnParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<${mode === 'v' ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(3) var<storage, read_write> out: array<${mode === 'v' ? 'vec4<f32>' : 'f32'}>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let m0 = wid.y * ${TM}u;
  let NC = ${mode === 'v' ? 'p.N / 4u' : 'p.N'};
  let base = wid.x * ${WG * TN}u + lid;
`;
  for (const i of I) s += `  let mi${i} = min(m0 + ${i}u, p.M - 1u) * p.K;\n`;
  for (const j of J) s += `  let cj${j} = min(base + ${j * WG}u, NC - 1u);\n`;
  const z = mode === 'v' ? 'vec4<f32>(0.0)' : '0.0';
  for (const i of I) for (const j of J) s += `  var c${i}_${j} = ${z};\n`;
  s += `  for (var k = 0u; k < ${kConst ? kConst + 'u' : 'p.K'}; k++) {\n    let row = k * NC;\n`;
  // a: no loads in the loop (ALU bound); u: W loads uniform across lanes (k-only index)
  for (const j of J) s += mode === 'a' ? `    let w${j} = f32(k) + ${j}.0;\n` : mode === 'u' ? `    let w${j} = wt[row + ${j}u];\n` : `    let w${j} = wt[row + cj${j}];\n`;
  for (const i of I) {
    s += mode === 'a' ? `    let x${i} = f32(mi${i} + ${i}u);\n` : `    let x${i} = x[mi${i} + k];\n`;
    for (const j of J) s += `    c${i}_${j} += x${i} * w${j};\n`;
  }
  s += `  }\n`;
  for (const i of I) for (const j of J) s += `  if (m0 + ${i}u < p.M && base + ${j * WG}u < NC) { out[(m0 + ${i}u) * NC + base + ${j * WG}u] = c${i}_${j}; }\n`;
  s += `}\n`;
  return { name: `kn_${mode}_${TM}x${TN}_${WG}_${kConst}`, code: s, params: P };
}

// mode 'n': nk layout (W[N,K] as vec4 along K), TM x TN outputs as vec4 partial sums along K
// (c += xv * wv: no horizontal add per step), reduced once at the end. K % 4 == 0 assumed.
function genN(TM: number, TN: number, WG: number, dot = false): Kernel {
  const I = [...Array(TM).keys()], J = [...Array(TN).keys()];
  let s = P.wgsl + `
@group(0) @binding(0) var<uniform> p: KnParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let tilesN = (p.N + ${TN - 1}u) / ${TN}u;
  let t = gid.x;
  let m0 = (t / tilesN) * ${TM}u;
  let r0 = (t % tilesN) * ${TN}u;
  let K4 = p.K / 4u;
`;
  for (const i of I) s += `  let mi${i} = min(m0 + ${i}u, p.M - 1u) * K4;\n`;
  for (const j of J) s += `  let rj${j} = min(r0 + ${j}u, p.N - 1u) * K4;\n`;
  for (const i of I) for (const j of J) s += dot ? `  var c${i}_${j} = 0.0;\n` : `  var c${i}_${j} = vec4<f32>(0.0);\n`;
  s += `  for (var k = 0u; k < K4; k++) {\n`;
  for (const j of J) s += `    let w${j} = w[rj${j} + k];\n`;
  for (const i of I) {
    s += `    let x${i} = x[mi${i} + k];\n`;
    for (const j of J) s += dot ? `    c${i}_${j} += dot(x${i}, w${j});\n` : `    c${i}_${j} += x${i} * w${j};\n`;
  }
  s += `  }\n`;
  for (const i of I) for (const j of J) s += `  if (m0 + ${i}u < p.M && r0 + ${j}u < p.N) { out[(m0 + ${i}u) * p.N + r0 + ${j}u] = ${dot ? `c${i}_${j}` : `dot(c${i}_${j}, vec4<f32>(1.0))`}; }\n`;
  s += `}\n`;
  return { name: `nkp_${TM}x${TN}_${WG}_${dot}`, code: s, params: P };
}

async function main() {
  const [K, N, M, reps] = process.argv.slice(2).map(Number);
  const cfgs = (process.argv[6] ?? 's:4x4:64,s:8x4:64,s:16x4:64,v:4x1:64,v:8x1:64,v:16x1:64').split(',');
  const rt = await Runtime.create();
  const W = randomArray(N * K, 1, 0.05);
  const Wt = new Float32Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) Wt[k * N + n] = W[n * K + k];
  const X = randomArray(M * K, 2);
  const w = uploadWeight(rt, 'w', W, N, K, 'f32');
  const wt = rt.upload(Wt);
  const x = rt.upload(X);
  const out = rt.createBuffer(M * N * 4);
  const ref = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) { let a = 0; for (let k = 0; k < K; k++) a += X[m * K + k] * W[n * K + k]; ref[m * N + n] = a; }
  const runs: Record<string, () => void> = {};
  const base = M < 4 ? 'mv1' : 'v4';
  runs[base] = () => matmul(rt, x, w, out, M, { variant: base });
  for (const c of cfgs) {
    if (c.startsWith('nk=')) { runs[c] = () => matmul(rt, x, w, out, M, { variant: c.slice(3) }); continue; }
    const [mode, tile, wg, kc] = c.split(':');
    if (mode === 'n' || mode === 'd') {
      const [TM, TN] = tile.split('x').map(Number);
      const kn = genN(TM, TN, +wg, mode === 'd');
      const threads = Math.ceil(M / TM) * Math.ceil(N / TN);
      runs[c] = () => rt.dispatch(kn, { params: { M, N, K, pad: 0 }, buffers: [x, w.parts[0].data, out], workgroups: [Math.ceil(threads / +wg), 1, 1] });
      continue;
    }
    const [TM, TN] = tile.split('x').map(Number);
    const k = gen(mode as 's' | 'v' | 'a' | 'u', TM, TN, +wg, kc ? K : 0);
    const cols = mode === 'v' ? N / 4 : N;
    runs[c] = () => rt.dispatch(k, { params: { M, N, K, pad: 0 }, buffers: [x, wt, out], workgroups: [Math.ceil(cols / (+wg * TN)), Math.ceil(M / TM), 1] });
  }
  for (const [name, f] of Object.entries(runs)) {
    rt.write(out, new Float32Array(M * N));
    const t = performance.now(); f(); await rt.sync();
    const o = await rt.readF32(out);
    let e = 0; for (let i = 0; i < M * N; i++) e = Math.max(e, Math.abs(o[i] - ref[i]) / (Math.abs(ref[i]) + 1e-3));
    console.log(`warm ${name}: ${(performance.now() - t).toFixed(0)} ms, max rel err ${e.toExponential(1)}`);
  }
  const best: Record<string, number> = {};
  const cpu: Record<string, number> = {};
  for (let r = 0; r < reps; r++) for (const [name, f] of Object.entries(runs)) {
    const c0 = process.cpuUsage();
    const t = performance.now(); f(); await rt.sync();
    best[name] = Math.min(best[name] ?? Infinity, performance.now() - t);
    const c = process.cpuUsage(c0);
    cpu[name] = Math.min(cpu[name] ?? Infinity, (c.user + c.system) / 1000);
  }
  const g = (ms: number) => (2 * M * N * K / ms / 1e6).toFixed(2);
  for (const [name, ms] of Object.entries(best)) console.log(`${K}->${N} M=${M} ${name}: wall ${ms.toFixed(1)} ms ${g(ms)} GFLOP/s (x${(best[base] / ms).toFixed(2)}) | cpu ${cpu[name].toFixed(0)} ms ${g(cpu[name] / 2)} GFLOP/s/2cores (x${(cpu[base] / cpu[name]).toFixed(2)} vs ${base})`);
  process.exit(0);
}
main();
