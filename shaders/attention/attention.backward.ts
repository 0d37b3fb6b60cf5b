// Causal GQA self-attention for training (host side): a forward that saves the log-sum-exp per
// (token, head) and the FlashAttention-2 backward that recomputes probabilities from it.
// WGSL: shaders/attention/attention.backward{,.fwd,.dq,.dkv}.wgsl (bindings) + the bodies generated
// here for the head dim (genFwd, genDq, genDkv) · reference:
// attention.backward.ref.ts · checks: attention.backward.check.ts · finite differences:
// attention.backward.test.ts.
//
// Whole sequences, contiguous layout (no KV pages). Packed blocks: segStart[t] (u32 [T]) is the
// first token of t's document, so token t attends to j ∈ [segStart[t], t] only; a batch of
// sequences is one packed block whose documents never straddle sequences (segmentStarts()).
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import { LorafleetError, type ErrorCode } from '../lib/errors.ts';

/** Bad arguments from the calling code ('internal': a bug) or from user settings ('invalid_request'). */
const err = (m: string, code: ErrorCode = 'internal') => new LorafleetError(m, code);

export const AttnTrainParams = defineParams('AttnTrainParams', {
  T: 'u32', nh: 'u32', nkv: 'u32', group: 'u32',
  qStride: 'u32', qCol: 'u32', kStride: 'u32', kCol: 'u32', vStride: 'u32', vCol: 'u32',
  dqStride: 'u32', dqCol: 'u32', dkStride: 'u32', dkCol: 'u32', dvStride: 'u32', dvCol: 'u32', dvOff: 'u32', scale: 'f32',
});
type F = (typeof AttnTrainParams.fields)[number][0];

// ------------------------------------------------------------------ generated kernel bodies
// The head dim is unrolled into NC = ceil(HD/4) vec4 chunks (components past HD are 0 and never
// stored), so q, k, v, dO rows live in registers: no private arrays, no loops over d. An
// invocation of fwd / dq handles HG q heads of one kv head (sharing each key's k, v loads).
const C4 = ['x', 'y', 'z', 'w'];
/** vec4 chunk c of the row at `base` of `buf` (0 past HD). */
const ld4 = (hd: number, buf: string, base: string, c: number) =>
  `vec4<f32>(${C4.map((_, i) => (4 * c + i < hd ? `${buf}[${base} + ${4 * c + i}u]` : '0.0')).join(', ')})`;
/** Stores the HD valid components of the chunk variables `${v}${c}` (× mul) at `base` of `buf`. */
const st4 = (hd: number, buf: string, base: string, v: string, mul = '') => {
  let s = '';
  for (let d = 0; d < hd; d++) s += `  ${buf}[${base} + ${d}u] = ${v}${d >> 2}.${C4[d & 3]}${mul};\n`;
  return s;
};
const dot4 = (nc: number, a: string, b: string) => [...Array(nc).keys()].map((c) => `dot(${a}${c}, ${b}${c})`).join(' + ');
const chunks = (hd: number) => [...Array(Math.ceil(hd / 4)).keys()];

/** q heads per invocation for fwd / dq: the largest divisor of the GQA group that keeps HG·NC ≤ 32 vec4 registers per tensor. */
export function headsPerInvocation(group: number, hd: number): number {
  const nc = Math.ceil(hd / 4);
  for (let hg = group; hg > 1; hg--) if (group % hg === 0 && hg * nc <= 32) return hg;
  return 1;
}

const HEAD = (hg: number) => `@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  let nsub = p.group / ${hg}u;
  if (idx >= p.T * p.nkv * nsub) { return; }
  let t = idx / (p.nkv * nsub);
  let g = (idx / nsub) % p.nkv;
  let h0 = g * p.group + (idx % nsub) * ${hg}u;
`;

function genFwd(hd: number, hg: number): string {
  const C = chunks(hd), H = [...Array(hg).keys()];
  let s = HEAD(hg);
  for (const h of H) {
    s += `  let qo${h} = qi(t, h0 + ${h}u);\n`;
    for (const c of C) s += `  let q${h}_${c} = ${ld4(hd, 'q', `qo${h}`, c)} * p.scale;\n`;
    s += `  var m${h} = -3.0e38;\n  var l${h} = 0.0;\n`;
    for (const c of C) s += `  var a${h}_${c} = vec4<f32>(0.0);\n`;
  }
  s += `  for (var j = segStart[t]; j <= t; j++) {\n    let ko = ki(j, g);\n    let vo = vi(j, g);\n`;
  for (const c of C) s += `    let k${c} = ${ld4(hd, 'k', 'ko', c)};\n`;
  for (const c of C) s += `    let v${c} = ${ld4(hd, 'v', 'vo', c)};\n`;
  for (const h of H) {
    s += `    let s${h} = ${dot4(C.length, `q${h}_`, 'k')};\n`;
    s += `    if (s${h} > m${h}) {\n      let c = exp(m${h} - s${h});\n      l${h} *= c;\n`;
    for (const c of C) s += `      a${h}_${c} *= c;\n`;
    s += `      m${h} = s${h};\n    }\n    let e${h} = exp(s${h} - m${h});\n    l${h} += e${h};\n`;
    for (const c of C) s += `    a${h}_${c} = fma(vec4<f32>(e${h}), v${c}, a${h}_${c});\n`;
  }
  s += `  }\n`;
  for (const h of H) {
    s += `  let inv${h} = 1.0 / l${h};\n  let oo${h} = (t * p.nh + h0 + ${h}u) * HD;\n`;
    s += st4(hd, 'o', `oo${h}`, `a${h}_`, ` * inv${h}`);
    s += `  lse[t * p.nh + h0 + ${h}u] = m${h} + log(l${h});\n`;
  }
  return s + `}\n`;
}

function genDq(hd: number, hg: number): string {
  const C = chunks(hd), H = [...Array(hg).keys()];
  let s = HEAD(hg);
  for (const h of H) {
    s += `  let qo${h} = qi(t, h0 + ${h}u);\n  let oo${h} = (t * p.nh + h0 + ${h}u) * HD;\n`;
    for (const c of C) s += `  let q${h}_${c} = ${ld4(hd, 'q', `qo${h}`, c)};\n  let d${h}_${c} = ${ld4(hd, 'dout', `oo${h}`, c)};\n`;
    s += `  let D${h} = ${C.map((c) => `dot(d${h}_${c}, ${ld4(hd, 'o', `oo${h}`, c)})`).join(' + ')};\n`;
    s += `  dsum[t * p.nh + h0 + ${h}u] = D${h};\n  let L${h} = lse[t * p.nh + h0 + ${h}u];\n`;
    for (const c of C) s += `  var a${h}_${c} = vec4<f32>(0.0);\n`;
  }
  s += `  for (var j = segStart[t]; j <= t; j++) {\n    let ko = ki(j, g);\n    let vo = vi(j, g);\n`;
  for (const c of C) s += `    let k${c} = ${ld4(hd, 'k', 'ko', c)};\n`;
  for (const c of C) s += `    let v${c} = ${ld4(hd, 'v', 'vo', c)};\n`;
  for (const h of H) {
    s += `    let pr${h} = exp((${dot4(C.length, `q${h}_`, 'k')}) * p.scale - L${h});\n`;
    s += `    let ds${h} = pr${h} * ((${dot4(C.length, `d${h}_`, 'v')}) - D${h});\n`;
    for (const c of C) s += `    a${h}_${c} = fma(vec4<f32>(ds${h}), k${c}, a${h}_${c});\n`;
  }
  s += `  }\n`;
  for (const h of H) {
    s += `  let dqo${h} = t * p.dqStride + p.dqCol + (h0 + ${h}u) * HD;\n`;
    s += st4(hd, 'dq', `dqo${h}`, `a${h}_`, ' * p.scale');
  }
  return s + `}\n`;
}

/** dk, dv of one (key j, kv head g): over the group's q heads and the queries i ≥ j of j's document. */
function genDkv(hd: number): string {
  const C = chunks(hd);
  let s = `@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= p.T * p.nkv) { return; }
  let j = idx / p.nkv;
  let g = idx % p.nkv;
  let ko = ki(j, g);
  let vo = vi(j, g);
`;
  for (const c of C) s += `  let k${c} = ${ld4(hd, 'k', 'ko', c)};\n  let v${c} = ${ld4(hd, 'v', 'vo', c)};\n  var dk${c} = vec4<f32>(0.0);\n  var dv${c} = vec4<f32>(0.0);\n`;
  s += `  let seg = segStart[j];\n  for (var i = j; i < p.T; i++) {\n    if (segStart[i] != seg) { break; }\n`;
  s += `    for (var hh = 0u; hh < p.group; hh++) {\n      let h = g * p.group + hh;\n      let qo = qi(i, h);\n      let oo = (i * p.nh + h) * HD;\n`;
  for (const c of C) s += `      let q${c} = ${ld4(hd, 'q', 'qo', c)};\n      let d${c} = ${ld4(hd, 'dout', 'oo', c)};\n`;
  s += `      let pr = exp((${dot4(C.length, 'q', 'k')}) * p.scale - lse[i * p.nh + h]);\n`;
  s += `      let ds = pr * ((${dot4(C.length, 'd', 'v')}) - dsum[i * p.nh + h]);\n`;
  for (const c of C) s += `      dv${c} = fma(vec4<f32>(pr), d${c}, dv${c});\n      dk${c} = fma(vec4<f32>(ds), q${c}, dk${c});\n`;
  s += `    }\n  }\n  let wk = j * p.dkStride + p.dkCol + g * HD;\n  let wv = p.dvOff + j * p.dvStride + p.dvCol + g * HD;\n`;
  s += st4(hd, 'dkv', 'wk', 'dk', ' * p.scale') + st4(hd, 'dkv', 'wv', 'dv');
  return s + `}\n`;
}

const kernels = new Map<string, Kernel<F>>();
function kernel(which: 'fwd' | 'dq' | 'dkv', hd: number, hg: number): Kernel<F> {
  const key = `${which}|${hd}|${hg}`;
  let k = kernels.get(key);
  if (!k) {
    const body = which === 'fwd' ? genFwd(hd, hg) : which === 'dq' ? genDq(hd, hg) : genDkv(hd);
    k = {
      name: `attention_train_${which}_hd${hd}${which === 'dkv' || hg === 1 ? '' : `_g${hg}`}`,
      code: AttnTrainParams.wgsl + `const HD: u32 = ${hd}u;\n` + WGSL['attention.backward'] + WGSL[`attention.backward.${which}`] + body,
      params: AttnTrainParams,
    };
    kernels.set(key, k);
  }
  return k;
}

/**
 * segStart [T] for a packed block from per-token document ids (equal ids must be contiguous;
 * a new id, or `-1`-style boundaries, starts a document). Also accepts `cu_seqlens`
 * (flash-attn style, [0, len0, len0+len1, ..., T]) through segmentStartsFromCuSeqlens.
 */
export function segmentStarts(docIds: ArrayLike<number>): Uint32Array {
  const out = new Uint32Array(docIds.length);
  let start = 0;
  for (let t = 0; t < docIds.length; t++) {
    if (t > 0 && docIds[t] !== docIds[t - 1]) start = t;
    out[t] = start;
  }
  return out;
}

export function segmentStartsFromCuSeqlens(cu: ArrayLike<number>): Uint32Array {
  const T = cu[cu.length - 1];
  if (cu[0] !== 0) throw err('cu_seqlens must start at 0');
  const out = new Uint32Array(T);
  for (let s = 0; s + 1 < cu.length; s++) {
    if (!(cu[s + 1] >= cu[s])) throw err('cu_seqlens must be nondecreasing');
    out.fill(cu[s], cu[s], cu[s + 1]);
  }
  return out;
}

/** A [T, stride] row-major activation holding `heads` heads of hd at column `col` (default: dense, col 0). */
export interface HeadsView {
  buffer: GPUBuffer;
  stride?: number;
  col?: number;
}

export interface AttnTrainShape {
  T: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Default 1/√headDim. */
  scale?: number;
}

function resolve(s: AttnTrainShape, q: HeadsView, k: HeadsView, v: HeadsView) {
  const { T, numHeads: nh, numKvHeads: nkv, headDim: hd } = s;
  if (!(nh > 0 && nkv > 0 && nh % nkv === 0)) throw err(`attention: numHeads ${nh} must be a multiple of numKvHeads ${nkv}`);
  if (!(hd > 0 && Number.isInteger(hd) && hd <= 256)) throw err(`attention: headDim ${hd} must be in 1..256`);
  const view = (x: HeadsView, heads: number, what: string) => {
    const stride = x.stride ?? heads * hd, col = x.col ?? 0;
    if (col + heads * hd > stride) throw err(`attention: ${what} col ${col} + ${heads}x${hd} exceeds stride ${stride}`);
    if (T > 0 && ((T - 1) * stride + col + heads * hd) * 4 > x.buffer.size) throw err(`attention: ${what} buffer too small`);
    return { stride, col };
  };
  const qv = view(q, nh, 'q'), kv = view(k, nkv, 'k'), vv = view(v, nkv, 'v');
  return {
    T, nh, nkv, hd, group: nh / nkv,
    qStride: qv.stride, qCol: qv.col, kStride: kv.stride, kCol: kv.col, vStride: vv.stride, vCol: vv.col,
    scale: s.scale ?? 1 / Math.sqrt(hd),
  };
}

/**
 * Training forward: o [T, nh*hd] (dense) and lse [T, nh] (natural log-sum-exp of the scaled
 * scores, kept for the backward). q/k/v may be slices of one fused qkv activation.
 */
export function attentionTrainForward(
  rt: Runtime, s: AttnTrainShape, q: HeadsView, k: HeadsView, v: HeadsView, segStart: GPUBuffer, o: GPUBuffer, lse: GPUBuffer,
): void {
  const r = resolve(s, q, k, v);
  if (r.T === 0) return;
  if (segStart.size < r.T * 4 || o.size < r.T * r.nh * r.hd * 4 || lse.size < r.T * r.nh * 4) throw err('attentionTrainForward: segStart/o/lse too small');
  const hg = headsPerInvocation(r.group, r.hd);
  rt.dispatch(kernel('fwd', r.hd, hg), {
    params: { T: r.T, nh: r.nh, nkv: r.nkv, group: r.group, qStride: r.qStride, qCol: r.qCol, kStride: r.kStride, kCol: r.kCol, vStride: r.vStride, vCol: r.vCol, dqStride: 0, dqCol: 0, dkStride: 0, dkCol: 0, dvStride: 0, dvCol: 0, dvOff: 0, scale: r.scale },
    buffers: [q.buffer, k.buffer, v.buffer, segStart, o, lse],
    workgroups: rt.grid(Math.ceil((r.T * r.nh) / hg / 64)),
  });
}

export interface AttnBackwardArgs {
  q: HeadsView; k: HeadsView; v: HeadsView;
  segStart: GPUBuffer;
  /** Saved forward output o [T, nh*hd] and lse [T, nh]. */
  o: GPUBuffer;
  lse: GPUBuffer;
  /** Upstream gradient dO [T, nh*hd]. */
  dout: GPUBuffer;
  /** dq [T, nh*hd], dk, dv [T, nkv*hd] (dense buffers, or views: e.g. the q, k, v slices of one
   *  fused dqkv [T, Q+2KV]). dk and dv are either dense buffers or views of one buffer. Overwritten. */
  dq: HeadsView | GPUBuffer;
  dk: HeadsView | GPUBuffer;
  dv: HeadsView | GPUBuffer;
}

/** dq, dk, dv of the training forward (two dispatches; dense separate dk/dv add a scratch and two copies). */
export function attentionBackward(rt: Runtime, s: AttnTrainShape, a: AttnBackwardArgs): void {
  const r = resolve(s, a.q, a.k, a.v);
  const { T, nh, nkv, hd } = r;
  if (T === 0) return;
  const asView = (x: HeadsView | GPUBuffer): HeadsView => ('buffer' in x ? x : { buffer: x });
  const out = (x: HeadsView, heads: number, what: string) => {
    const stride = x.stride ?? heads * hd, col = x.col ?? 0;
    if (col + heads * hd > stride || ((T - 1) * stride + col + heads * hd) * 4 > x.buffer.size) throw err(`attentionBackward: ${what} too small for its view`);
    return { stride, col };
  };
  const dq = asView(a.dq), dk = asView(a.dk), dv = asView(a.dv);
  const q = out(dq, nh, 'dq'), k = out(dk, nkv, 'dk'), v = out(dv, nkv, 'dv');
  if (a.o.size < T * nh * hd * 4 || a.dout.size < T * nh * hd * 4 || a.lse.size < T * nh * 4 || a.segStart.size < T * 4) throw err('attentionBackward: o/dout/lse/segStart too small');
  const shared = dk.buffer === dv.buffer;
  const dense = k.stride === nkv * hd && k.col === 0 && v.stride === nkv * hd && v.col === 0;
  if (!shared && !dense) throw err('attentionBackward: dk and dv must be views of one buffer, or two dense buffers');
  const kvElems = T * nkv * hd;
  const dsum = rt.acquire(T * nh * 4);
  const scratch = shared ? null : rt.acquire(2 * kvElems * 4);
  const base = { T, nh, nkv, group: r.group, qStride: r.qStride, qCol: r.qCol, kStride: r.kStride, kCol: r.kCol, vStride: r.vStride, vCol: r.vCol, scale: r.scale };
  const hg = headsPerInvocation(r.group, hd);
  rt.dispatch(kernel('dq', hd, hg), {
    params: { ...base, dqStride: q.stride, dqCol: q.col, dkStride: 0, dkCol: 0, dvStride: 0, dvCol: 0, dvOff: 0 },
    buffers: [a.q.buffer, a.k.buffer, a.v.buffer, a.segStart, a.o, a.lse, a.dout, dsum, dq.buffer],
    workgroups: rt.grid(Math.ceil((T * nh) / hg / 64)),
  });
  const kvParams = shared
    ? { dkStride: k.stride, dkCol: k.col, dvStride: v.stride, dvCol: v.col, dvOff: 0 }
    : { dkStride: nkv * hd, dkCol: 0, dvStride: nkv * hd, dvCol: 0, dvOff: kvElems };
  rt.dispatch(kernel('dkv', hd, 1), {
    params: { ...base, dqStride: 0, dqCol: 0, ...kvParams },
    buffers: [a.q.buffer, a.k.buffer, a.v.buffer, a.segStart, a.lse, a.dout, dsum, scratch ?? dk.buffer],
    workgroups: rt.grid(Math.ceil((T * nkv) / 64)),
  });
  if (scratch) {
    rt.copy(scratch, 0, dk.buffer, 0, kvElems * 4);
    rt.copy(scratch, kvElems * 4, dv.buffer, 0, kvElems * 4);
    rt.release(scratch);
  }
  rt.release(dsum);
}
