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

/** q heads per invocation for fwd / dq: the largest divisor of the GQA group that keeps HG·NC ≤ 16 vec4 registers per tensor. */
export function headsPerInvocation(group: number, hd: number): number {
  const nc = Math.ceil(hd / 4);
  for (let hg = group; hg > 1; hg--) if (group % hg === 0 && hg * nc <= 16) return hg;
  return 1;
}

/** Consecutive rows (queries for fwd / dq, keys for dkv) per invocation: they share every k, v (or q, dO) load. */
export function rowsPerInvocation(perRowVec4: number): number {
  return Math.max(1, Math.min(4, Math.floor(32 / perRowVec4)));
}

/** fwd / dq: invocation = (block of QB queries tb.., kv head g, HG of g's q heads); keys j ∈ [segStart[tb], t_last]. */
const HEAD = (hg: number, qb: number) => {
  let s = `@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  let nsub = p.group / ${hg}u;
  let nblk = (p.T + ${qb - 1}u) / ${qb}u;
  if (idx >= nblk * p.nkv * nsub) { return; }
  let tb = (idx / (p.nkv * nsub)) * ${qb}u;
  let g = (idx / nsub) % p.nkv;
  let h0 = g * p.group + (idx % nsub) * ${hg}u;
  let tEnd = min(tb + ${qb - 1}u, p.T - 1u);
`;
  // per query: t (clamped), its document start (keys before it are masked)
  for (let b = 0; b < qb; b++) s += `  let t${b} = min(tb + ${b}u, p.T - 1u);\n  let sg${b} = segStart[t${b}];\n`;
  return s;
};
/** "query b, head h" suffix */
const QH = (b: number, h: number) => `${b}_${h}`;

function genFwd(hd: number, hg: number, qb: number): string {
  const C = chunks(hd), H = [...Array(hg).keys()], B = [...Array(qb).keys()];
  let s = HEAD(hg, qb);
  for (const b of B) for (const h of H) {
    const x = QH(b, h);
    s += `  let qo${x} = qi(t${b}, h0 + ${h}u);\n`;
    for (const c of C) s += `  let q${x}_${c} = ${ld4(hd, 'q', `qo${x}`, c)} * p.scale;\n`;
    s += `  var m${x} = -3.0e38;\n  var l${x} = 0.0;\n`;
    for (const c of C) s += `  var a${x}_${c} = vec4<f32>(0.0);\n`;
  }
  s += `  for (var j = sg0; j <= tEnd; j++) {\n    let ko = ki(j, g);\n    let vo = vi(j, g);\n`;
  for (const c of C) s += `    let k${c} = ${ld4(hd, 'k', 'ko', c)};\n`;
  for (const c of C) s += `    let v${c} = ${ld4(hd, 'v', 'vo', c)};\n`;
  for (const b of B) {
    s += `    if (j >= sg${b} && j <= t${b}) {\n`;
    for (const h of H) {
      const x = QH(b, h);
      s += `      let s${x} = ${dot4(C.length, `q${x}_`, 'k')};\n`;
      s += `      if (s${x} > m${x}) {\n        let c = exp(m${x} - s${x});\n        l${x} *= c;\n`;
      for (const c of C) s += `        a${x}_${c} *= c;\n`;
      s += `        m${x} = s${x};\n      }\n      let e${x} = exp(s${x} - m${x});\n      l${x} += e${x};\n`;
      for (const c of C) s += `      a${x}_${c} = fma(vec4<f32>(e${x}), v${c}, a${x}_${c});\n`;
    }
    s += `    }\n`;
  }
  s += `  }\n`;
  for (const b of B) {
    s += `  if (tb + ${b}u < p.T) {\n`;
    for (const h of H) {
      const x = QH(b, h);
      s += `  let inv${x} = 1.0 / l${x};\n  let oo${x} = (t${b} * p.nh + h0 + ${h}u) * HD;\n`;
      s += st4(hd, 'o', `oo${x}`, `a${x}_`, ` * inv${x}`);
      s += `  lse[t${b} * p.nh + h0 + ${h}u] = m${x} + log(l${x});\n`;
    }
    s += `  }\n`;
  }
  return s + `}\n`;
}

function genDq(hd: number, hg: number, qb: number): string {
  const C = chunks(hd), H = [...Array(hg).keys()], B = [...Array(qb).keys()];
  let s = HEAD(hg, qb);
  for (const b of B) for (const h of H) {
    const x = QH(b, h);
    s += `  let qo${x} = qi(t${b}, h0 + ${h}u);\n  let oo${x} = (t${b} * p.nh + h0 + ${h}u) * HD;\n`;
    for (const c of C) s += `  let q${x}_${c} = ${ld4(hd, 'q', `qo${x}`, c)};\n  let d${x}_${c} = ${ld4(hd, 'dout', `oo${x}`, c)};\n`;
    s += `  let D${x} = ${C.map((c) => `dot(d${x}_${c}, ${ld4(hd, 'o', `oo${x}`, c)})`).join(' + ')};\n`;
    s += `  let L${x} = lse[t${b} * p.nh + h0 + ${h}u];\n`;
    for (const c of C) s += `  var a${x}_${c} = vec4<f32>(0.0);\n`;
  }
  s += `  for (var j = sg0; j <= tEnd; j++) {\n    let ko = ki(j, g);\n    let vo = vi(j, g);\n`;
  for (const c of C) s += `    let k${c} = ${ld4(hd, 'k', 'ko', c)};\n`;
  for (const c of C) s += `    let v${c} = ${ld4(hd, 'v', 'vo', c)};\n`;
  for (const b of B) {
    s += `    let ok${b} = j >= sg${b} && j <= t${b};\n`;
    for (const h of H) {
      const x = QH(b, h);
      // masked keys: P = 0 (select, so an overflowing exp of a masked score cannot leak)
      s += `    let pr${x} = select(0.0, exp((${dot4(C.length, `q${x}_`, 'k')}) * p.scale - L${x}), ok${b});\n`;
      s += `    let ds${x} = pr${x} * ((${dot4(C.length, `d${x}_`, 'v')}) - D${x});\n`;
      for (const c of C) s += `    a${x}_${c} = fma(vec4<f32>(ds${x}), k${c}, a${x}_${c});\n`;
    }
  }
  s += `  }\n`;
  for (const b of B) {
    s += `  if (tb + ${b}u < p.T) {\n`;
    for (const h of H) {
      const x = QH(b, h);
      s += `  dsum[t${b} * p.nh + h0 + ${h}u] = D${x};\n  let dqo${x} = t${b} * p.dqStride + p.dqCol + (h0 + ${h}u) * HD;\n`;
      s += st4(hd, 'dq', `dqo${x}`, `a${x}_`, ' * p.scale');
    }
    s += `  }\n`;
  }
  return s + `}\n`;
}

/** dk, dv of a block of KB keys jb.. of kv head g: over the group's q heads and the queries i ≥ j of each key's document. */
function genDkv(hd: number, group: number, kb: number): string {
  const C = chunks(hd), B = [...Array(kb).keys()], G = [...Array(group).keys()];
  let s = `@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  let nblk = (p.T + ${kb - 1}u) / ${kb}u;
  if (idx >= nblk * p.nkv) { return; }
  let jb = (idx / p.nkv) * ${kb}u;
  let g = idx % p.nkv;
`;
  for (const b of B) {
    s += `  let j${b} = min(jb + ${b}u, p.T - 1u);\n  let sg${b} = segStart[j${b}];\n  let ko${b} = ki(j${b}, g);\n  let vo${b} = vi(j${b}, g);\n`;
    for (const c of C) s += `  let k${b}_${c} = ${ld4(hd, 'k', `ko${b}`, c)};\n  let v${b}_${c} = ${ld4(hd, 'v', `vo${b}`, c)};\n  var dk${b}_${c} = vec4<f32>(0.0);\n  var dv${b}_${c} = vec4<f32>(0.0);\n`;
  }
  // queries i from jb to the end of the last key's document (documents are contiguous)
  s += `  for (var i = jb; i < p.T; i++) {\n    let si = segStart[i];\n    if (si > sg${kb - 1}) { break; }\n`;
  for (const b of B) s += `    let ok${b} = si == sg${b} && i >= j${b} && jb + ${b}u < p.T;\n`;
  for (const hh of G) {
    s += `    {\n      let h = g * ${group}u + ${hh}u;\n      let qo = qi(i, h);\n      let oo = (i * p.nh + h) * HD;\n      let L = lse[i * p.nh + h];\n      let D = dsum[i * p.nh + h];\n`;
    for (const c of C) s += `      let q${c} = ${ld4(hd, 'q', 'qo', c)};\n      let d${c} = ${ld4(hd, 'dout', 'oo', c)};\n`;
    for (const b of B) {
      s += `      let pr${b} = select(0.0, exp((${dot4(C.length, 'q', `k${b}_`)}) * p.scale - L), ok${b});\n`;
      s += `      let ds${b} = pr${b} * ((${dot4(C.length, 'd', `v${b}_`)}) - D);\n`;
      for (const c of C) s += `      dv${b}_${c} = fma(vec4<f32>(pr${b}), d${c}, dv${b}_${c});\n      dk${b}_${c} = fma(vec4<f32>(ds${b}), q${c}, dk${b}_${c});\n`;
    }
    s += `    }\n`;
  }
  s += `  }\n`;
  for (const b of B) {
    s += `  if (jb + ${b}u < p.T) {\n  let wk${b} = j${b} * p.dkStride + p.dkCol + g * HD;\n  let wv${b} = p.dvOff + j${b} * p.dvStride + p.dvCol + g * HD;\n`;
    s += st4(hd, 'dkv', `wk${b}`, `dk${b}_`, ' * p.scale') + st4(hd, 'dkv', `wv${b}`, `dv${b}_`) + `  }\n`;
  }
  return s + `}\n`;
}

/** A kernel variant: head dim, q heads per invocation (fwd/dq) or the GQA group (dkv), rows per invocation. */
interface Variant { which: 'fwd' | 'dq' | 'dkv'; hd: number; heads: number; rows: number }
const kernels = new Map<string, Kernel<F>>();
function kernel(v: Variant): Kernel<F> {
  const key = `${v.which}|${v.hd}|${v.heads}|${v.rows}`;
  let k = kernels.get(key);
  if (!k) {
    const body = v.which === 'fwd' ? genFwd(v.hd, v.heads, v.rows) : v.which === 'dq' ? genDq(v.hd, v.heads, v.rows) : genDkv(v.hd, v.heads, v.rows);
    k = {
      name: `attention_train_${v.which}_hd${v.hd}_${v.which === 'dkv' ? 'g' : 'h'}${v.heads}r${v.rows}`,
      code: AttnTrainParams.wgsl + `const HD: u32 = ${v.hd}u;\n` + WGSL['attention.backward'] + WGSL[`attention.backward.${v.which}`] + body,
      params: AttnTrainParams,
    };
    kernels.set(key, k);
  }
  return k;
}

/** The variants for a shape: fwd/dq hold QB·HG·2·NC vec4s (q, acc / q, dO), dkv KB·4·NC (k, v, dk, dv). */
function variants(group: number, hd: number): Record<'fwd' | 'dq' | 'dkv', Variant> {
  const nc = Math.ceil(hd / 4), hg = headsPerInvocation(group, hd);
  const qb = rowsPerInvocation(hg * 2 * nc);
  return {
    fwd: { which: 'fwd', hd, heads: hg, rows: qb },
    dq: { which: 'dq', hd, heads: hg, rows: qb },
    dkv: { which: 'dkv', hd, heads: group, rows: rowsPerInvocation(4 * nc) },
  };
}
const invocations = (T: number, nkv: number, v: Variant, group: number) => Math.ceil(T / v.rows) * nkv * (v.which === 'dkv' ? 1 : group / v.heads);

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
  const fv = variants(r.group, r.hd).fwd;
  rt.dispatch(kernel(fv), {
    params: { T: r.T, nh: r.nh, nkv: r.nkv, group: r.group, qStride: r.qStride, qCol: r.qCol, kStride: r.kStride, kCol: r.kCol, vStride: r.vStride, vCol: r.vCol, dqStride: 0, dqCol: 0, dkStride: 0, dkCol: 0, dvStride: 0, dvCol: 0, dvOff: 0, scale: r.scale },
    buffers: [q.buffer, k.buffer, v.buffer, segStart, o, lse],
    workgroups: rt.grid(Math.ceil(invocations(r.T, r.nkv, fv, r.group) / 64)),
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
  const vs = variants(r.group, hd);
  rt.dispatch(kernel(vs.dq), {
    params: { ...base, dqStride: q.stride, dqCol: q.col, dkStride: 0, dkCol: 0, dvStride: 0, dvCol: 0, dvOff: 0 },
    buffers: [a.q.buffer, a.k.buffer, a.v.buffer, a.segStart, a.o, a.lse, a.dout, dsum, dq.buffer],
    workgroups: rt.grid(Math.ceil(invocations(T, nkv, vs.dq, r.group) / 64)),
  });
  const kvParams = shared
    ? { dkStride: k.stride, dkCol: k.col, dvStride: v.stride, dvCol: v.col, dvOff: 0 }
    : { dkStride: nkv * hd, dkCol: 0, dvStride: nkv * hd, dvCol: 0, dvOff: kvElems };
  rt.dispatch(kernel(vs.dkv), {
    params: { ...base, dqStride: 0, dqCol: 0, ...kvParams },
    buffers: [a.q.buffer, a.k.buffer, a.v.buffer, a.segStart, a.lse, a.dout, dsum, scratch ?? dk.buffer],
    workgroups: rt.grid(Math.ceil(invocations(T, nkv, vs.dkv, r.group) / 64)),
  });
  if (scratch) {
    rt.copy(scratch, 0, dk.buffer, 0, kvElems * 4);
    rt.copy(scratch, kvElems * 4, dv.buffer, 0, kvElems * 4);
    rt.release(scratch);
  }
  rt.release(dsum);
}
