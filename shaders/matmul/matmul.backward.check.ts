// Checks for shaders/matmul/matmul.backward.ts against matmul.backward.ref.ts (float64).
import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { gemm, linearBackwardInput, loraLinearBackward, loraLinearForward, type GemmTile, type GemmWg } from './matmul.backward.ts';
import { matmul } from './matmul.ts';
import { gemmRef, loraLinearBackwardRef, loraLinearForwardRef } from './matmul.backward.ref.ts';
import { uploadWeight, destroyWeight } from './weights.ts';
import { dropoutRef } from '../dropout/dropout.ref.ts';

// [M, N, K, transA, transB, tile, accumulate, workgroup size (default: gemm's pick)]
const gemmCases: Array<[number, number, number, boolean, boolean, GemmTile, boolean, GemmWg?]> = [
  [1, 7, 13, false, false, 't4', false],
  [37, 29, 19, true, false, 't4', true, 4],
  [21, 66, 5, false, true, 't8', false],
  [45, 19, 70, true, true, 't8', true, 16],
  [35, 27, 9, true, false, 't16', true],
  [53, 41, 3, false, false, 't16', false, 8],
  [70, 33, 11, false, true, 't4', true, 64],
  // subgroup tiles (SwiftShader: subgroups of 4; skipped elsewhere): partial tiles, partial lane columns
  [37, 29, 19, true, false, 's16', true, 4],
  [53, 70, 7, false, false, 's16', false, 16],
  [45, 19, 70, false, true, 's32', true, 8],
  [70, 53, 13, true, true, 's32', false, 64],
];

const gemmChecks: KernelCheck[] = gemmCases.map(([M, N, K, tA, tB, tile, acc, wg]) => ({
  name: `gemm M=${M} N=${N} K=${K} ${tA ? 't' : 'n'}${tB ? 't' : 'n'} ${tile}${wg ? `/${wg}` : ''}${acc ? ' acc' : ''}`,
  async run(rt) {
    if (tile[0] === 's' && !(rt.info.isCpu && rt.info.features.subgroups)) return { maxRelErr: 0, bound: 1, detail: 'subgroup tile: not this adapter' };
    // Operands sit at an offset inside padded rows (ld > cols) to exercise ld/offset.
    const [ar, ac] = tA ? [K, M] : [M, K];
    const [br, bc] = tB ? [N, K] : [K, N];
    const pad = 3, off = 5;
    const a = randomArray(ar * ac, 100 + M, 1.5), b = randomArray(br * bc, 101 + N, 2), c0 = randomArray(M * N, 102 + K);
    const store = (v: Float32Array, rows: number, cols: number) => {
      const o = new Float32Array(off + rows * (cols + pad));
      for (let r = 0; r < rows; r++) o.set(v.subarray(r * cols, (r + 1) * cols), off + r * (cols + pad));
      return o;
    };
    const ga = rt.upload(store(a, ar, ac)), gb = rt.upload(store(b, br, bc)), gc = rt.upload(store(c0, M, N));
    gemm(rt, { buffer: ga, ld: ac + pad, offset: off, trans: tA }, { buffer: gb, ld: bc + pad, offset: off, trans: tB },
      { buffer: gc, ld: N + pad, offset: off }, M, N, K, { alpha: 0.75, accumulate: acc, tile, wg });
    const raw = await rt.readF32(gc);
    rt.destroy(ga); rt.destroy(gb); rt.destroy(gc);
    const out = new Float32Array(M * N);
    for (let m = 0; m < M; m++) out.set(raw.subarray(off + m * (N + pad), off + m * (N + pad) + N), m * N);
    // padding columns must be untouched
    let padOk = true;
    for (let m = 0; m < M; m++) for (let j = 0; j < pad && m < M - 1; j++) if (raw[off + m * (N + pad) + N + j] !== 0) padOk = false;
    const ref = gemmRef(a, b, M, N, K, { transA: tA, transB: tB, alpha: 0.75, c0: acc ? c0 : undefined });
    const r = result(out, ref, 1e-5);
    return padOk ? r : { ...r, maxRelErr: Infinity, detail: 'wrote into padding' };
  },
}));

// [T, N, K, r, maxPartBytes (splits W into row parts)]
const loraCases: Array<[number, number, number, number, number | undefined]> = [
  [1, 45, 27, 3, undefined],
  [37, 45, 27, 4, 10 * 27 * 4],
];

const loraChecks: KernelCheck[] = loraCases.map(([T, N, K, r, maxPartBytes]) => ({
  name: `loraLinearBackward T=${T} N=${N} K=${K} r=${r}${maxPartBytes ? ' parts' : ''}`,
  async run(rt) {
    const s = 2.5;
    const x = randomArray(T * K, 200 + T, 1), dy = randomArray(T * N, 201 + T, 1);
    const w = randomArray(N * K, 202, 0.5), a = randomArray(r * K, 203, 0.3), b = randomArray(N * r, 204, 0.3);
    const dA0 = randomArray(r * K, 205), dB0 = randomArray(N * r, 206);
    const gw = uploadWeight(rt, 'w', w, N, K, 'f32', { maxPartBytes });
    const gx = rt.upload(x), gdy = rt.upload(dy), ga = rt.upload(a), gb = rt.upload(b);
    const gdA = rt.upload(dA0), gdB = rt.upload(dB0), gdx = rt.createBuffer(T * K * 4);
    const gy = rt.createBuffer(T * N * 4), gh = rt.createBuffer(T * r * 4);
    loraLinearForward(rt, { x: gx, w: gw, a: ga, b: gb, T, N, K, r, scale: s, y: gy, h: gh });
    loraLinearBackward(rt, { x: gx, dy: gdy, w: gw, a: ga, b: gb, h: gh, T, N, K, r, scale: s, grads: { dA: gdA, dB: gdB, accumulate: true }, dx: gdx });
    const [y, dA, dB, dX] = [await rt.readF32(gy, T * N), await rt.readF32(gdA, r * K), await rt.readF32(gdB, N * r), await rt.readF32(gdx, T * K)];
    // Second run without saved H and without W: recomputes H, dX = dH·A only.
    loraLinearBackward(rt, { x: gx, dy: gdy, a: ga, b: gb, T, N, K, r, scale: s, grads: { dA: gdA, dB: gdB }, dx: gdx });
    const [dA2, dX2] = [await rt.readF32(gdA, r * K), await rt.readF32(gdx, T * K)];
    for (const g of [gx, gdy, ga, gb, gdA, gdB, gdx, gy, gh]) rt.destroy(g);
    destroyWeight(rt, gw);
    const fr = loraLinearForwardRef(x, w, a, b, T, N, K, r, s);
    const br = loraLinearBackwardRef(x, dy, w, a, b, T, N, K, r, s);
    const bn = loraLinearBackwardRef(x, dy, null, a, b, T, N, K, r, s);
    const errs = [
      ['y', result(y, fr.y, 1e-4)],
      ['dA', result(dA, br.dA.map((v, i) => v + dA0[i]), 1e-4)],
      ['dB', result(dB, br.dB.map((v, i) => v + dB0[i]), 1e-4)],
      ['dX', result(dX, br.dX, 1e-4)],
      ['dA (no acc)', result(dA2, bn.dA, 1e-4)],
      ['dX (no W)', result(dX2, bn.dX, 1e-4)],
    ] as const;
    const worst = errs.reduce((p, c) => (c[1].maxRelErr > p[1].maxRelErr ? c : p));
    return { maxRelErr: worst[1].maxRelErr, bound: 1e-4, detail: errs.map(([n, e]) => `${n} ${e.maxRelErr.toExponential(1)}`).join(' ') };
  },
}));

export const checks: KernelCheck[] = [...gemmChecks, ...loraChecks];

// GpuModel's fused layout: qkv = X·Wqkvᵀ [T, Q+2KV] with LoRA on the q and v column slices; the
// backward takes dqkv slices (dyLd/dyOffset) and one fused dX = dqkv·Wqkv + Σ dH·A.
checks.push({
  name: 'loraLinear fused qkv: LoRA on column slices (yLd/yOffset, dyLd/dyOffset)',
  async run(rt) {
    const [T, K, Q, KV, r, s] = [11, 21, 12, 6, 3, 0.5];
    const NF = Q + 2 * KV;
    const x = randomArray(T * K, 700, 1), w = randomArray(NF * K, 701, 0.5), dqkv = randomArray(T * NF, 702);
    const mods = [{ off: 0, N: Q }, { off: Q + KV, N: KV }].map((m, i) => ({ ...m, a: randomArray(r * K, 710 + i, 0.3), b: randomArray(m.N * r, 720 + i, 0.3) }));
    const gw = uploadWeight(rt, 'qkv', w, NF, K, 'f32');
    const gx = rt.upload(x), gd = rt.upload(dqkv), gy = rt.createBuffer(T * NF * 4), gdx = rt.createBuffer(T * K * 4);
    matmul(rt, gx, gw, gy, T);
    linearBackwardInput(rt, gd, gw, gdx, T);
    const bufs = mods.map((m) => {
      const b = { a: rt.upload(m.a), b: rt.upload(m.b), h: rt.createBuffer(T * r * 4), dA: rt.createBuffer(r * K * 4), dB: rt.createBuffer(m.N * r * 4) };
      loraLinearForward(rt, { x: gx, a: b.a, b: b.b, T, N: m.N, K, r, scale: s, y: gy, h: b.h, yLd: NF, yOffset: m.off, accumulate: true });
      loraLinearBackward(rt, { x: gx, dy: gd, dyLd: NF, dyOffset: m.off, a: b.a, b: b.b, h: b.h, T, N: m.N, K, r, scale: s, grads: { dA: b.dA, dB: b.dB }, dx: gdx, accumulateDx: true });
      return b;
    });
    const y = await rt.readF32(gy, T * NF), dX = await rt.readF32(gdx, T * K);
    const got: Array<{ dA: Float32Array; dB: Float32Array }> = [];
    for (const b of bufs) got.push({ dA: await rt.readF32(b.dA, r * K), dB: await rt.readF32(b.dB, b.dB.size / 4) });
    for (const b of bufs) for (const g of Object.values(b)) rt.destroy(g);
    for (const g of [gx, gd, gy, gdx]) rt.destroy(g);
    destroyWeight(rt, gw);
    // float64: base + per-module terms on their column slices
    const yRef = gemmRef(x, w, T, NF, K, { transB: true });
    const dxRef = gemmRef(dqkv, w, T, K, NF);
    const errs: number[] = [];
    mods.forEach((m, i) => {
      const dySlice = new Float64Array(T * m.N);
      for (let t = 0; t < T; t++) for (let j = 0; j < m.N; j++) dySlice[t * m.N + j] = dqkv[t * NF + m.off + j];
      const f = loraLinearForwardRef(x, null, m.a, m.b, T, m.N, K, r, s);
      for (let t = 0; t < T; t++) for (let j = 0; j < m.N; j++) yRef[t * NF + m.off + j] += f.y[t * m.N + j];
      const g = loraLinearBackwardRef(x, dySlice, null, m.a, m.b, T, m.N, K, r, s);
      for (let k = 0; k < dxRef.length; k++) dxRef[k] += g.dX[k];
      errs.push(result(got[i].dA, g.dA, 1e-4).maxRelErr, result(got[i].dB, g.dB, 1e-4).maxRelErr);
    });
    errs.push(result(y, yRef, 1e-4).maxRelErr, result(dX, dxRef, 1e-4).maxRelErr);
    return { maxRelErr: Math.max(...errs), bound: 1e-4, detail: errs.map((e) => e.toExponential(1)).join(' ') };
  },
});

// lora_dropout: H = dropout(X)·Aᵀ; dA = dHᵀ·dropout(X); dX = dY·W + dropout(dH·A) (same seed).
checks.push(...([true, false] as const).map((withW) => ({
  name: `loraLinear with lora_dropout p=0.3${withW ? ' (+ base W)' : ' (no W, dX overwritten)'}`,
  async run(rt: Parameters<KernelCheck['run']>[0]) {
    const [T, N, K, r, s, p, seed] = [9, 14, 23, 3, 2, 0.3, 4242];
    const x = randomArray(T * K, 730), dy = randomArray(T * N, 731), w = randomArray(N * K, 732, 0.5), a = randomArray(r * K, 733, 0.3), b = randomArray(N * r, 734, 0.3);
    const gw = uploadWeight(rt, 'w', w, N, K);
    const gx = rt.upload(x), gdy = rt.upload(dy), ga = rt.upload(a), gb = rt.upload(b), gy = rt.createBuffer(T * N * 4), gh = rt.createBuffer(T * r * 4);
    const gdA = rt.createBuffer(r * K * 4), gdB = rt.createBuffer(N * r * 4), gdx = rt.upload(randomArray(T * K, 735));
    const drop = { p, seed };
    loraLinearForward(rt, { x: gx, w: withW ? gw : undefined, a: ga, b: gb, T, N, K, r, scale: s, y: gy, h: gh, dropout: drop });
    loraLinearBackward(rt, { x: gx, dy: gdy, w: withW ? gw : undefined, a: ga, b: gb, h: gh, T, N, K, r, scale: s, grads: { dA: gdA, dB: gdB }, dx: gdx, dropout: drop });
    const y = await rt.readF32(gy, T * N), dA = await rt.readF32(gdA, r * K), dB = await rt.readF32(gdB, N * r), dX = await rt.readF32(gdx, T * K);
    for (const g of [gx, gdy, ga, gb, gy, gh, gdA, gdB, gdx]) rt.destroy(g);
    destroyWeight(rt, gw);
    const xd = dropoutRef(x, p, seed);
    const f = loraLinearForwardRef(xd, null, a, b, T, N, K, r, s);
    const g = loraLinearBackwardRef(xd, dy, null, a, b, T, N, K, r, s);
    const dxRef = dropoutRef(g.dX, p, seed);
    if (withW) {
      const base = gemmRef(x, w, T, N, K, { transB: true }), dbase = gemmRef(dy, w, T, K, N);
      for (let i = 0; i < f.y.length; i++) f.y[i] += base[i];
      for (let i = 0; i < dxRef.length; i++) dxRef[i] += dbase[i];
    }
    const e = [result(y, f.y, 1e-4), result(dA, g.dA, 1e-4), result(dB, g.dB, 1e-4), result(dX, dxRef, 1e-4)].map((q) => q.maxRelErr);
    return { maxRelErr: Math.max(...e), bound: 1e-4, detail: `y dA dB dX ${e.map((v) => v.toExponential(1)).join(' ')}` };
  },
})));
