// Checks for shaders/attention/attention.backward.ts against attention.backward.ref.ts (float64):
// T = 1, GQA (groups 1-6, one or several invocations per group), head dims that are not
// multiples of 4, packed documents (one of a single token), fused qkv slices.
import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { attentionTrainForward, attentionBackward, segmentStarts } from './attention.backward.ts';
import { attentionTrainForwardRef, attentionBackwardRef } from './attention.backward.ref.ts';

interface Case { T: number; nh: number; nkv: number; hd: number; docs: number[]; fused: boolean }
const cases: Case[] = [
  { T: 1, nh: 2, nkv: 1, hd: 8, docs: [1], fused: false },
  { T: 19, nh: 4, nkv: 2, hd: 6, docs: [7, 5, 7], fused: true },
  { T: 33, nh: 3, nkv: 3, hd: 16, docs: [33], fused: false },
  // group 4 in one invocation (hd 5: a partial vec4); group 6 split into 2 x 3 heads (hd 40: 10 vec4s)
  { T: 23, nh: 4, nkv: 1, hd: 5, docs: [10, 1, 12], fused: true },
  { T: 9, nh: 6, nkv: 1, hd: 40, docs: [4, 5], fused: false },
];

export const checks: KernelCheck[] = cases.map((c) => ({
  name: `attention train fwd+bwd T=${c.T} nh=${c.nh} nkv=${c.nkv} hd=${c.hd} docs=${c.docs.join('+')}${c.fused ? ' fused-qkv' : ''}`,
  async run(rt) {
    const { T, nh, nkv, hd } = c;
    const docIds = c.docs.flatMap((n, i) => Array(n).fill(i));
    const seg = segmentStarts(docIds);
    const q = randomArray(T * nh * hd, 300 + T, 1.5), k = randomArray(T * nkv * hd, 301 + T, 1.5), v = randomArray(T * nkv * hd, 302 + T);
    const dout = randomArray(T * nh * hd, 303 + T);
    const QS = (nh + 2 * nkv) * hd;
    let bq: GPUBuffer, bk: GPUBuffer, bv: GPUBuffer;
    const views = c.fused
      ? (() => {
          const qkv = new Float32Array(T * QS);
          for (let t = 0; t < T; t++) {
            qkv.set(q.subarray(t * nh * hd, (t + 1) * nh * hd), t * QS);
            qkv.set(k.subarray(t * nkv * hd, (t + 1) * nkv * hd), t * QS + nh * hd);
            qkv.set(v.subarray(t * nkv * hd, (t + 1) * nkv * hd), t * QS + (nh + nkv) * hd);
          }
          bq = bk = bv = rt.upload(qkv);
          return { q: { buffer: bq, stride: QS, col: 0 }, k: { buffer: bk, stride: QS, col: nh * hd }, v: { buffer: bv, stride: QS, col: (nh + nkv) * hd } };
        })()
      : ((bq = rt.upload(q)), (bk = rt.upload(k)), (bv = rt.upload(v)), { q: { buffer: bq }, k: { buffer: bk }, v: { buffer: bv } });
    const bseg = rt.upload(seg), bo = rt.createBuffer(T * nh * hd * 4), blse = rt.createBuffer(T * nh * 4), bdo = rt.upload(dout);
    // dq into a strided buffer (the q slice of a fused dqkv) when fused
    const bdq = rt.createBuffer(T * (c.fused ? QS : nh * hd) * 4), bdk = rt.createBuffer(T * nkv * hd * 4), bdv = rt.createBuffer(T * nkv * hd * 4);
    const shape = { T, numHeads: nh, numKvHeads: nkv, headDim: hd };
    attentionTrainForward(rt, shape, views.q, views.k, views.v, bseg, bo, blse);
    // fused: dq, dk, dv written straight into the q, k, v slices of one dqkv [T, QS]
    const grads = c.fused
      ? { dq: { buffer: bdq, stride: QS, col: 0 }, dk: { buffer: bdq, stride: QS, col: nh * hd }, dv: { buffer: bdq, stride: QS, col: (nh + nkv) * hd } }
      : { dq: bdq, dk: bdk, dv: bdv };
    attentionBackward(rt, shape, { ...views, segStart: bseg, o: bo, lse: blse, dout: bdo, ...grads });
    const o = await rt.readF32(bo), lse = await rt.readF32(blse), dqRaw = await rt.readF32(bdq);
    let dk = await rt.readF32(bdk), dv = await rt.readF32(bdv);
    if (c.fused) {
      dk = new Float32Array(T * nkv * hd);
      dv = new Float32Array(T * nkv * hd);
      for (let t = 0; t < T; t++) {
        dk.set(dqRaw.subarray(t * QS + nh * hd, t * QS + (nh + nkv) * hd), t * nkv * hd);
        dv.set(dqRaw.subarray(t * QS + (nh + nkv) * hd, (t + 1) * QS), t * nkv * hd);
      }
    }
    for (const b of new Set([bq!, bk!, bv!, bseg, bo, blse, bdo, bdq, bdk, bdv])) rt.destroy(b);
    const dq = new Float32Array(T * nh * hd);
    for (let t = 0; t < T; t++) dq.set(dqRaw.subarray(t * (c.fused ? QS : nh * hd), t * (c.fused ? QS : nh * hd) + nh * hd), t * nh * hd);
    const s = { T, nh, nkv, hd };
    const f = attentionTrainForwardRef(s, q, k, v, seg), b = attentionBackwardRef(s, q, k, v, seg, dout);
    const errs: Array<[string, number]> = [
      ['o', result(o.subarray(0, T * nh * hd), f.o, 1e-4).maxRelErr],
      ['lse', result(lse.subarray(0, T * nh), f.lse, 1e-4).maxRelErr],
      ['dq', result(dq, b.dq, 1e-4).maxRelErr],
      ['dk', result(dk.subarray(0, T * nkv * hd), b.dk, 1e-4).maxRelErr],
      ['dv', result(dv.subarray(0, T * nkv * hd), b.dv, 1e-4).maxRelErr],
    ];
    return { maxRelErr: Math.max(...errs.map((e) => e[1])), bound: 1e-4, detail: errs.map(([n, e]) => `${n} ${e.toExponential(1)}`).join(' ') };
  },
}));
