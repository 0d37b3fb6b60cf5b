// Backward-kernel bench: what each training kernel costs next to the forward kernel it inverts,
// at the SmolLM2-135M shapes (Hd 576, I 1536, 9/3 heads of 64, V 49152; LoRA r 8), measured in one
// run. Question: which backward pieces dominate a training step, and how far each is from its
// forward (the ideal linear backward is ~2× the forward: dX and dW-like products).
//
//   npx tsx bench/train-kernels/run.ts [--quick] [--rounds N] [--T 128] [--no-write]
//
// Timing: GPU timestamps when the adapter has them (SwiftShader does), else wall clock around
// rt.sync(); every case is warmed up (compile + one run), then the cases run in interleaved rounds
// (median and min–max over rounds reported), so a load spike from other processes hits all alike.
// Host load average is recorded. Writes bench/train-kernels/results.md.
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { matmul } from '../../shaders/matmul/matmul.ts';
import { uploadWeight } from '../../shaders/matmul/weights.ts';
import { loraLinearForward, loraLinearBackward, linearBackwardInput } from '../../shaders/matmul/matmul.backward.ts';
import { rmsnorm } from '../../shaders/rmsnorm/rmsnorm.ts';
import { rmsnormBackward } from '../../shaders/rmsnorm/rmsnorm.backward.ts';
import { siluMul } from '../../shaders/silu_mul/silu_mul.ts';
import { siluMulBackward } from '../../shaders/silu_mul/silu_mul.backward.ts';
import { rope, ropeInvFreq } from '../../shaders/rope/rope.ts';
import { ropeBackward } from '../../shaders/rope/rope.backward.ts';
import { attentionTrainForward, attentionBackward, segmentStarts } from '../../shaders/attention/attention.backward.ts';
import { lmHeadCrossEntropy, meanCoefficients } from '../../shaders/cross_entropy/cross_entropy.ts';
import { adamwStep, gradNorm } from '../../shaders/adamw/adamw.ts';
import { randomArray } from '../../shaders/lib/check.ts';
import { adapterLine, runIfMain } from '../common.ts';

const here = dirname(fileURLToPath(import.meta.url));

interface Pair { name: string; fwd: string; bwd: string }

export async function run(argv: string[]): Promise<number> {
  const quick = argv.includes('--quick');
  const opt = (n: string) => (argv.indexOf(n) >= 0 ? argv[argv.indexOf(n) + 1] : undefined);
  const T = Number(opt('--T') ?? (quick ? 32 : 128));
  const rounds = Number(opt('--rounds') ?? (quick ? 2 : 5));
  const Tce = Math.min(T, quick ? 8 : 32);
  const [Hd, I, nh, nkv, hd, V, r] = [576, 1536, 9, 3, 64, 49152, 8];
  const rt = await Runtime.create();
  const ts = rt.setProfiling(true);
  const load0 = loadavg()[0];
  const t0 = performance.now();
  console.log(adapterLine(rt));
  const buf = (n: number, seed: number, s = 1) => rt.upload(randomArray(n, seed, s));
  const out = (n: number) => rt.createBuffer(n * 4);

  // --- data
  const x = buf(T * Hd, 1), wUp = uploadWeight(rt, 'up', randomArray(I * Hd, 2, 0.05), I, Hd);
  const y = out(T * I), dy = buf(T * I, 3), dx = out(T * Hd), la = buf(r * Hd, 4, 0.05), lb = buf(I * r, 5, 0.05), h = out(T * r), dA = out(r * Hd), dB = out(I * r);
  const nw = buf(Hd, 6), xn = out(T * Hd), dxn = buf(T * Hd, 7);
  const gu = buf(T * 2 * I, 8, 3), act = out(T * I), dact = buf(T * I, 9), dgu = out(T * 2 * I);
  const Q = nh * hd, KV = nkv * hd, QS = Q + 2 * KV;
  const qkv = buf(T * QS, 10), qkvR = buf(T * QS, 10), pos = rt.upload(Uint32Array.from({ length: T }, (_, i) => i));
  const inv = rt.upload(ropeInvFreq({ headDim: hd, ropeTheta: 100000, ropeScaling: null }));
  const seg = rt.upload(segmentStarts(new Array(T).fill(0))), o = out(T * Q), lse = out(T * nh), dO = buf(T * Q, 11), dqkv = out(T * QS);
  const lm = uploadWeight(rt, 'lm_head', randomArray(V * Hd, 12, 0.05), V, Hd), hN = buf(Tce * Hd, 13), logits = out(Tce * V);
  const labels = Int32Array.from({ length: Tce }, (_, i) => (i * 7919) % V), lab = rt.upload(labels), coef = rt.upload(meanCoefficients(labels));
  const ceLse = out(Tce), ceLp = out(Tce), dh = out(Tce * Hd);
  // SmolLM2 LoRA r=8 on all 7 modules of 30 layers: 30·8·(3·576+576+192·2... ) — one flat buffer
  const nP = 30 * r * ((Hd + Q) + 2 * (Hd + KV) + (Q + Hd) + 2 * (Hd + I) + (I + Hd));
  const P = buf(nP, 14, 0.01), G = buf(nP, 15, 0.01), M = out(nP), Vb = out(nP), clip = out(2);
  const attn = { T, numHeads: nh, numKvHeads: nkv, headDim: hd };
  const qv = { buffer: qkv, stride: QS, col: 0 }, kv = { buffer: qkv, stride: QS, col: Q }, vv = { buffer: qkv, stride: QS, col: Q + KV };

  const cases: Record<string, () => void> = {
    'linear fwd x·Wᵀ (576→1536)': () => matmul(rt, x, wUp, y, T),
    'linear bwd dX = dY·W': () => linearBackwardInput(rt, dy, wUp, dx, T),
    'LoRA linear fwd (base + r8)': () => loraLinearForward(rt, { x, w: wUp, a: la, b: lb, T, N: I, K: Hd, r, scale: 2, y, h }),
    'LoRA linear bwd (dA, dB, dX)': () => loraLinearBackward(rt, { x, dy, w: wUp, a: la, b: lb, h, T, N: I, K: Hd, r, scale: 2, grads: { dA, dB }, dx }),
    'rmsnorm fwd': () => rmsnorm(rt, x, nw, xn, T, Hd, 1e-5),
    'rmsnorm bwd': () => rmsnormBackward(rt, { x, w: nw, dy: dxn, dx, rows: T, dim: Hd, eps: 1e-5 }),
    'silu_mul fwd (fused gate|up)': () => siluMul(rt, gu, gu, act, T * I, { rows: T, inter: I }),
    'silu_mul bwd': () => siluMulBackward(rt, { gu, dout: dact, dgu, rows: T, inter: I, fused: true }),
    'rope fwd (q+k)': () => rope(rt, qkvR, pos, inv, T, nh + nkv, hd, { rowStride: QS }),
    'rope bwd (q+k)': () => ropeBackward(rt, qkvR, pos, inv, T, nh + nkv, hd, { rowStride: QS }),
    'attention train fwd (saves lse)': () => attentionTrainForward(rt, attn, qv, kv, vv, seg, o, lse),
    'attention bwd (dq, dk, dv)': () => attentionBackward(rt, attn, { q: qv, k: kv, v: vv, segStart: seg, o, lse, dout: dO, dq: { buffer: dqkv, stride: QS, col: 0 }, dk: { buffer: dqkv, stride: QS, col: Q }, dv: { buffer: dqkv, stride: QS, col: Q + KV } }),
    [`lm_head logits only (T=${Tce}, V=${V})`]: () => matmul(rt, hN, lm, logits, Tce),
    'cross-entropy fwd (lse, logp)': () => lmHeadCrossEntropy(rt, { h: hN, w: lm, labels: lab, T: Tce, lse: ceLse, logp: ceLp }),
    'cross-entropy fwd+bwd (dh)': () => lmHeadCrossEntropy(rt, { h: hN, w: lm, labels: lab, T: Tce, lse: ceLse, logp: ceLp, coef, dh }),
    [`grad norm (${(nP / 1e6).toFixed(2)}M params)`]: () => gradNorm(rt, [{ buffer: G, n: nP }], 1.0, clip),
    'adamw step (same params)': () => adamwStep(rt, [{ param: P, grad: G, m: M, v: Vb, n: nP }], { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, 3, clip),
  };
  const pairs: Pair[] = [
    { name: 'linear dX', fwd: 'linear fwd x·Wᵀ (576→1536)', bwd: 'linear bwd dX = dY·W' },
    { name: 'LoRA linear', fwd: 'LoRA linear fwd (base + r8)', bwd: 'LoRA linear bwd (dA, dB, dX)' },
    { name: 'rmsnorm', fwd: 'rmsnorm fwd', bwd: 'rmsnorm bwd' },
    { name: 'silu_mul', fwd: 'silu_mul fwd (fused gate|up)', bwd: 'silu_mul bwd' },
    { name: 'rope', fwd: 'rope fwd (q+k)', bwd: 'rope bwd (q+k)' },
    { name: 'attention', fwd: 'attention train fwd (saves lse)', bwd: 'attention bwd (dq, dk, dv)' },
    { name: 'cross-entropy', fwd: `lm_head logits only (T=${Tce}, V=${V})`, bwd: 'cross-entropy fwd+bwd (dh)' },
  ];

  async function time(f: () => void): Promise<number> {
    await rt.sync();
    await rt.profile(true);
    const w0 = performance.now();
    f();
    await rt.sync();
    const wall = performance.now() - w0;
    if (!ts) return wall;
    return (await rt.profile(true)).reduce((a, x) => a + x.ms, 0);
  }
  const names = Object.keys(cases);
  for (const n of names) { cases[n](); await rt.sync(); }
  const ms: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let k = 0; k < rounds; k++) for (const n of names) ms[n].push(await time(cases[n]));
  const med = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
  const seconds = (performance.now() - t0) / 1000;
  const load1 = loadavg()[0];
  let md = `# bench/train-kernels results\n\n${new Date().toISOString()} · ${seconds.toFixed(0)} s · timing: ${ts ? 'gpu-timestamps' : 'wall clock'} · T=${T} (cross-entropy T=${Tce}) · ${rounds} interleaved rounds · args: \`${argv.join(' ') || '(none)'}\`\n\n`;
  md += `${adapterLine(rt)}. ${cpus().length} cores, load average ${load0.toFixed(1)} → ${load1.toFixed(1)} during the run.\n\n`;
  md += `SmolLM2-135M shapes: Hd 576, I 1536, 9 q / 3 kv heads of 64, V 49152, LoRA r 8. ms = median over rounds (min–max).\n\n| kernel | ms | min–max |\n|---|---|---|\n`;
  for (const n of names) md += `| ${n} | ${med(ms[n]).toFixed(2)} | ${Math.min(...ms[n]).toFixed(2)}–${Math.max(...ms[n]).toFixed(2)} |\n`;
  md += `\nBackward ÷ forward (medians of the same run; per round ratio min–max in brackets):\n\n| op | bwd ÷ fwd |\n|---|---|\n`;
  for (const p of pairs) {
    const per = ms[p.bwd].map((b, i) => b / ms[p.fwd][i]);
    md += `| ${p.name} | ${(med(ms[p.bwd]) / med(ms[p.fwd])).toFixed(2)} (${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)}) |\n`;
  }
  console.log(md);
  if (!argv.includes('--no-write')) writeFileSync(join(here, quick ? 'results-quick.md' : 'results.md'), md);
  rt.destroyAll();
  return 0;
}

runIfMain(import.meta.url, run);
