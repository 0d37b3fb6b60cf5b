// Paged causal GQA attention (host side). WGSL: shaders/attention.wgsl (v1), attention_v2.wgsl, attention_sg.wgsl (+ attention_combine.wgsl for split-context) · reference:
// shaders/attention.ref.ts · check: shaders/attention.check.ts. Layouts: shaders/kv/layout.ts.
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Binding, Kernel, Runtime } from '../gpu/runtime.ts';
import type { BatchMeta, KvPages } from '../kv/layout.ts';
import { fusedQkvLayout, laneTypePreamble } from '../kv_write/kv_write.ts';

export const AttnParams = defineParams('AttnParams', {
  numTokens: 'u32',
  numHeads: 'u32',
  numKvHeads: 'u32',
  group: 'u32',
  blockSize: 'u32',
  qStride: 'u32',
  qCol: 'u32',
  outStride: 'u32',
  outCol: 'u32',
  tokenBase: 'u32',
  window: 'u32',
  scale: 'f32',
  /** Split-context only: keys per chunk and chunks per (token, head) in the partials buffer. */
  chunk: 'u32',
  numChunks: 'u32',
});
type F = (typeof AttnParams.fields)[number][0];

/**
 * Kernel variants (all barrier-free, same results up to f32 rounding):
 *  - 'v1':    one invocation per (token, q head), loops over HDV lanes (f32 or vec4). Baseline.
 *  - 'v2':    one invocation per (token, G q heads sharing a kv head), 4 keys per step, head dim
 *             unrolled into registers (generated per head dim / block size / kv heads / G).
 *  - 'sg':    one subgroup per (token, G q heads sharing a kv head); lanes split the head dim
 *             (consecutive floats across lanes), 4 keys per step, subgroupAdd for the scores.
 *             Needs 'subgroups'.
 *  - 'split': 'sg' over context chunks (flash-decoding) + a combine pass; for few tokens with long
 *             contexts (decode), where (token, head group) items alone do not fill the machine.
 * G = the largest divisor of numHeads/numKvHeads within an unroll budget (headsPerItemFor;
 * opts.headsPerItem overrides): every K/V row is loaded once per G heads, which is what bounds
 * these kernels on SwiftShader.
 * 'auto' (default): 'split' or 'sg' when the device has subgroups, else 'v2' (head dims up to
 * V2_MAX_HDV lanes) or 'v1'.
 */
export const ATTENTION_VARIANTS = ['v1', 'v2', 'sg', 'split'] as const;
export type AttentionVariant = (typeof ATTENTION_VARIANTS)[number];

/** Most q heads one work item handles (register pressure). */
export const MAX_G = 8;

const kernelCache = new Map<string, Kernel<F>>();

function cached(key: string, make: () => Kernel<F>): Kernel<F> {
  let k = kernelCache.get(key);
  if (!k) kernelCache.set(key, (k = make()));
  return k;
}

function v1Kernel(headDim: number, vec4: boolean): Kernel<F> {
  return cached(`v1:${headDim}:${vec4}`, () => ({
    name: `attention_paged_v1_${vec4 ? 'vec4' : 'f32'}_hd${headDim}`,
    code: laneTypePreamble(vec4) + `const HDV: u32 = ${vec4 ? headDim / 4 : headDim}u;\n` + AttnParams.wgsl + WGSL.attention,
    params: AttnParams,
  }));
}

/** Largest head dim (in V lanes) the unrolled v2 kernel is generated for ('auto' falls back to v1). */
export const V2_MAX_HDV = 64;

function v2Kernel(headDim: number, vec4: boolean, blockSize: number, numKvHeads: number, G: number): Kernel<F> {
  return cached(`v2:${headDim}:${vec4}:${blockSize}:${numKvHeads}:${G}`, () => {
    const hdv = vec4 ? headDim / 4 : headDim;
    const D = Array.from({ length: hdv }, (_, d) => d);
    const Gs = Array.from({ length: G }, (_, g) => g);
    const step: string[] = [];
    for (const g of Gs) step.push(`    var s${g} = vec4<f32>(0.0);`);
    for (const d of D) {
      step.push(`    { let k0 = kc[b0 + ${d}u]; let k1 = kc[b1 + ${d}u]; let k2 = kc[b2 + ${d}u]; let k3 = kc[b3 + ${d}u];`);
      for (const g of Gs) step.push(`      s${g} += vec4<f32>(vdot(q${g}_${d}, k0), vdot(q${g}_${d}, k1), vdot(q${g}_${d}, k2), vdot(q${g}_${d}, k3));`);
      step.push('    }');
    }
    for (const g of Gs) {
      step.push(
        `    s${g} = select(s${g}, vec4<f32>(-3.0e38), past);`,
        `    let mn${g} = max(m${g}, max(max(s${g}.x, s${g}.y), max(s${g}.z, s${g}.w)));`,
        `    let cr${g} = exp(m${g} - mn${g});`,
        `    let w${g} = exp(s${g} - mn${g});`,
        `    l${g} = l${g} * cr${g} + (w${g}.x + w${g}.y) + (w${g}.z + w${g}.w);`,
        `    m${g} = mn${g};`,
      );
    }
    for (const d of D) {
      step.push(`    { let v0 = vc[b0 + ${d}u]; let v1 = vc[b1 + ${d}u]; let v2 = vc[b2 + ${d}u]; let v3 = vc[b3 + ${d}u];`);
      for (const g of Gs) step.push(`      a${g}_${d} = a${g}_${d} * cr${g} + w${g}.x * v0 + w${g}.y * v1 + w${g}.z * v2 + w${g}.w * v3;`);
      step.push('    }');
    }
    const store = Gs.flatMap((g) => [
      `  if (h0 + ${g}u < hEnd) {`,
      `    let inv = 1.0 / l${g};`,
      `    let oh = oo + (h0 + ${g}u) * HDV;`,
      ...D.map((d) => `    out[oh + ${d}u] = a${g}_${d} * inv;`),
      '  }',
    ]);
    const src = WGSL.attention_v2
      .replace(
        '{{Q_LOAD}}',
        Gs.flatMap((g) => [`  let qh${g} = qo + min(h0 + ${g}u, hEnd - 1u) * HDV;`, ...D.map((d) => `  let q${g}_${d} = qkv[qh${g} + ${d}u] * p.scale;`)]).join('\n'),
      )
      .replace('{{STATE_DECL}}', Gs.flatMap((g) => [`  var m${g} = -3.0e38;`, `  var l${g} = 0.0;`, ...D.map((d) => `  var a${g}_${d} = V(0.0);`)]).join('\n'))
      .replace('{{STEP}}', step.join('\n'))
      .replace('{{STORE}}', store.join('\n'));
    return {
      name: `attention_paged_v2_${vec4 ? 'vec4' : 'f32'}_hd${headDim}_bs${blockSize}_kv${numKvHeads}_g${G}`,
      code:
        laneTypePreamble(vec4) +
        `const HDV: u32 = ${hdv}u;\nconst BS: u32 = ${blockSize}u;\nconst KVH: u32 = ${numKvHeads}u;\nconst G: u32 = ${G}u;\n` +
        AttnParams.wgsl +
        src,
      params: AttnParams,
    };
  });
}

/** Smallest subgroup size the 'sg' / 'split' kernels are generated for (SwiftShader: 4; GPUs: 8..128). */
export const SG_MIN_SIZE = 4;
const SG_WG = 64;

function sgKernel(headDim: number, blockSize: number, numKvHeads: number, G: number, guards: boolean, split: boolean): Kernel<F> {
  return cached(`sg:${headDim}:${blockSize}:${numKvHeads}:${G}:${guards}:${split}`, () => {
    const nc = Math.ceil(headDim / SG_MIN_SIZE);
    const C = Array.from({ length: nc }, (_, c) => c);
    const Gs = Array.from({ length: G }, (_, g) => g);
    // element chunks c >= 1 are skipped (subgroup-uniformly) when c*S >= HD: only matters for S > SG_MIN_SIZE
    const guard = (c: number, body: string[]) =>
      guards && c > 0 ? [`      if (${c}u * S < HD) {`, ...body.map((x) => '  ' + x), '      }'] : body;
    const lines = (xs: string[]) => xs.join('\n');
    const step: string[] = [];
    for (const g of Gs) step.push(`      var sp${g} = vec4<f32>(0.0);`);
    for (const c of C) {
      step.push(
        ...guard(c, [
          `      { let k = vec4<f32>(kc[b0 + e${c}], kc[b1 + e${c}], kc[b2 + e${c}], kc[b3 + e${c}]);`,
          ...Gs.map((g) => `        sp${g} += q${g}_${c} * k;`),
          '      }',
        ]),
      );
    }
    for (const g of Gs) {
      step.push(
        `      let s${g} = select(subgroupAdd(sp${g}), vec4<f32>(-3.0e38), past);`,
        `      let mn${g} = max(m${g}, max(max(s${g}.x, s${g}.y), max(s${g}.z, s${g}.w)));`,
        `      let cr${g} = exp(m${g} - mn${g});`,
        `      let w${g} = exp(s${g} - mn${g});`,
        `      l${g} = l${g} * cr${g} + (w${g}.x + w${g}.y) + (w${g}.z + w${g}.w);`,
        `      m${g} = mn${g};`,
      );
    }
    for (const c of C) {
      step.push(
        ...guard(c, [
          `      { let v0 = vc[b0 + e${c}]; let v1 = vc[b1 + e${c}]; let v2 = vc[b2 + e${c}]; let v3 = vc[b3 + e${c}];`,
          ...Gs.map((g) => `        a${g}_${c} = a${g}_${c} * cr${g} + w${g}.x * v0 + w${g}.y * v1 + w${g}.z * v2 + w${g}.w * v3;`),
          '      }',
        ]),
      );
    }
    const store: string[] = [];
    for (const g of Gs) {
      store.push(`    if (h0 + ${g}u < hEnd) {`);
      if (split) {
        store.push(`      let po = ((t * p.numHeads + h0 + ${g}u) * p.numChunks + chunk) * (HD + 2u);`);
        store.push(`      if (lane == 0u) { part[po] = m${g}; part[po + 1u] = l${g}; }`);
        for (const c of C) store.push(`      if (ok${c}) { part[po + 2u + e${c}] = a${g}_${c}; }`);
      } else {
        store.push(`      let inv = 1.0 / l${g};`);
        store.push(`      let oo = t * p.outStride + p.outCol + (h0 + ${g}u) * HD;`);
        for (const c of C) store.push(`      if (ok${c}) { out[oo + e${c}] = a${g}_${c} * inv; }`);
      }
      store.push('    }');
    }
    const src = WGSL.attention_sg
      .replace('{{OUT_BINDING}}', `@group(0) @binding(5) var<storage, read_write> ${split ? 'part' : 'out'}: array<f32>;`)
      .replace('{{LANE_ELEMS}}', lines(C.map((c) => `  let e${c} = min(lane + ${c}u * S, HD - 1u);\n  let ok${c} = lane + ${c}u * S < HD;`)))
      .replace(
        '{{Q_LOAD}}',
        lines(
          Gs.flatMap((g) => [
            `    let qh${g} = qo + min(h0 + ${g}u, hEnd - 1u) * HD;`,
            ...C.map((c) => `    let q${g}_${c} = select(0.0, qkv[qh${g} + e${c}], ok${c}) * p.scale;`),
          ]),
        ),
      )
      .replace('{{STATE_DECL}}', lines(Gs.flatMap((g) => [`    var m${g} = -3.0e38;`, `    var l${g} = 0.0;`, ...C.map((c) => `    var a${g}_${c} = 0.0;`)])))
      .replace('{{STEP}}', lines(step))
      .replace('{{STORE}}', lines(store));
    return {
      name: `attention_paged_${split ? 'split' : 'sg'}_hd${headDim}_bs${blockSize}_kv${numKvHeads}_g${G}`,
      code:
        'enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n' +
        `const HD: u32 = ${headDim}u;\nconst BS: u32 = ${blockSize}u;\nconst KVH: u32 = ${numKvHeads}u;\nconst G: u32 = ${G}u;\n` +
        `const WG: u32 = ${SG_WG}u;\nconst SPLIT: bool = ${split};\n` +
        AttnParams.wgsl +
        src,
      params: AttnParams,
    };
  });
}

function combineKernel(headDim: number): Kernel<F> {
  return cached(`combine:${headDim}`, () => ({
    name: `attention_combine_hd${headDim}`,
    code: `const HD: u32 = ${headDim}u;\n` + AttnParams.wgsl + WGSL.attention_combine,
    params: AttnParams,
  }));
}

/**
 * Unrolled values per work item (G heads × lanes of q and of the accumulator) 'auto' allows:
 * compile time grows steeply with it on SwiftShader (LLVM: sg hd64 G=1 0.7 s, G=2 1.0 s, G=4
 * 1.6 s of CPU; v2 hd64 G=2 2.8 s; G=3 much worse), register pressure on GPUs.
 */
const UNROLL_BUDGET = { cpu: { v2: 16, sg: 48 }, gpu: { v2: 64, sg: 64 } };

/**
 * G for a variant on this runtime: as many q heads of a kv head as the unroll budget allows,
 * spread evenly (group 7, at most 3 → items of 3, 2, 2 → G = 3 with one clamped head).
 */
export function headsPerItemFor(rt: Runtime, variant: AttentionVariant, group: number, headDim: number): number {
  if (variant === 'v1') return 1;
  const budget = UNROLL_BUDGET[rt.info.isCpu ? 'cpu' : 'gpu'][variant === 'v2' ? 'v2' : 'sg'];
  const lanes = variant === 'v2' ? (headDim % 4 === 0 ? headDim / 4 : headDim) : Math.ceil(headDim / SG_MIN_SIZE);
  const max = Math.max(1, Math.min(MAX_G, Math.floor(budget / lanes), group));
  const items = Math.ceil(group / max);
  return Math.ceil(group / items);
}

export interface AttentionOptions {
  numHeads: number;
  /** Floats per qkv row (default: fused (numHeads + 2*numKvHeads)*headDim). */
  qStride?: number;
  /** Column of q in a qkv row (default 0). */
  qCol?: number;
  /** Floats per output row (default numHeads*headDim). */
  outStride?: number;
  outCol?: number;
  /** Softmax scale (default 1/sqrt(headDim)). */
  scale?: number;
  /** Sliding window in tokens: keys pos-window+1 .. pos (0 / undefined = none). */
  window?: number;
  /** Kernel variant (default 'auto'). */
  variant?: AttentionVariant | 'auto';
  /** 'split' only: keys per context chunk (default: chosen from the batch and the device). */
  splitChunk?: number;
  /** Q heads per work item (v2/sg/split; 1..numHeads/numKvHeads; default headsPerItemFor). */
  headsPerItem?: number;
  /** 'sg'/'split' only, for tests: emit the GPU-side chunk guards even on a CPU adapter. */
  sgGuards?: boolean;
}

/** Keys per chunk the split variant uses for a batch (headGroups = numHeads / G work items per
 *  token); 0 = do not split. */
export function splitChunkFor(rt: Runtime, numTokens: number, headGroups: number, maxContext: number): number {
  // Work items wanted in flight: SwiftShader runs a workgroup (16 subgroups of 4 lanes) per core
  // (2 cores here); a big GPU wants thousands of subgroups. Chunks stay long enough to amortise
  // the per-item setup and the combine pass.
  const target = rt.info.isCpu ? 32 : 4096;
  const minChunk = rt.info.isCpu ? 128 : 64;
  const items = numTokens * headGroups;
  if (items >= target || maxContext < 2 * minChunk) return 0;
  const chunks = Math.min(Math.ceil(target / items), Math.floor(maxContext / minChunk));
  if (chunks < 2) return 0;
  return Math.ceil(maxContext / chunks / 4) * 4;
}

/** The variant 'auto' picks for a batch on this runtime. */
export function chooseAttentionVariant(
  rt: Runtime,
  b: { headDim: number; numTokens: number; numSeqs: number; headGroups: number; maxContext: number },
): AttentionVariant {
  const hdv = b.headDim % 4 === 0 ? b.headDim / 4 : b.headDim;
  const v2ok = hdv <= V2_MAX_HDV;
  // SwiftShader (bench/attention): v2 wins for small heads (few lanes for 'sg' to split); for
  // head dim 64 'sg' is as fast and compiles several times faster.
  if (rt.info.isCpu && v2ok && b.headDim <= 16) return 'v2';
  if (rt.info.features.subgroups) return splitChunkFor(rt, b.numTokens, b.headGroups, b.maxContext) ? 'split' : 'sg';
  return v2ok ? 'v2' : 'v1';
}

/**
 * out[t, h*headDim + d] = softmax_j(q_t,h · k_j,kvh * scale) v_j,kvh over the positions j in
 * [0, pos_t] (or the window) of token t's sequence, read through its block table.
 * The step's K/V must already be in the cache (kvWrite first).
 */
export function pagedAttention(
  rt: Runtime,
  cache: KvPages,
  layer: number,
  qkv: Binding,
  out: Binding,
  meta: BatchMeta,
  opts: AttentionOptions,
): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= cache.numLayers) throw new Error(`pagedAttention: layer ${layer} outside 0..${cache.numLayers - 1}`);
  const H = opts.numHeads;
  const KV = cache.numKvHeads;
  const hd = cache.headDim;
  if (!Number.isInteger(H) || H < 1 || H % KV) throw new Error(`pagedAttention: numHeads=${H} must be a positive multiple of numKvHeads=${KV}`);
  const qStride = opts.qStride ?? fusedQkvLayout(H, KV, hd).rowStride;
  const qCol = opts.qCol ?? 0;
  const outStride = opts.outStride ?? H * hd;
  const outCol = opts.outCol ?? 0;
  if (qCol + H * hd > qStride) throw new Error(`pagedAttention: q columns ${qCol}+${H * hd} exceed qStride ${qStride}`);
  if (outCol + H * hd > outStride) throw new Error(`pagedAttention: out columns ${outCol}+${H * hd} exceed outStride ${outStride}`);
  const window = opts.window ?? 0;
  if (!Number.isInteger(window) || window < 0) throw new Error(`pagedAttention: window=${window}`);
  const T = meta.numTokens;
  if (T === 0) return;
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  const context = window ? Math.min(window, meta.maxContext) : meta.maxContext;
  let variant = opts.variant ?? 'auto';
  if (variant === 'auto') {
    const groups = KV * Math.ceil(H / KV / (opts.headsPerItem ?? headsPerItemFor(rt, 'sg', H / KV, hd)));
    variant = chooseAttentionVariant(rt, { headDim: hd, numTokens: T, numSeqs: meta.numSeqs, headGroups: groups, maxContext: context });
  }
  const G = variant === 'v1' ? 1 : opts.headsPerItem ?? headsPerItemFor(rt, variant, H / KV, hd);
  if (!Number.isInteger(G) || G < 1 || G > H / KV) throw new Error(`pagedAttention: headsPerItem=${G} must be in 1..numHeads/numKvHeads=${H / KV}`);
  const itemsPerToken = KV * Math.ceil(H / KV / G); // work items per token (v2/sg/split)
  const base = { numTokens: T, numHeads: H, numKvHeads: KV, group: H / KV, blockSize: cache.blockSize, tokenBase: meta.tokenBase, window, scale };

  if (variant === 'sg' || variant === 'split') {
    if (!rt.info.features.subgroups) throw new Error(`pagedAttention: variant '${variant}' needs the subgroups feature`);
    // The grid assumes SwiftShader's 4 lanes on CPUs and 32 elsewhere; the kernels loop over
    // work items, so another subgroup size stays correct.
    const lanes = rt.info.isCpu ? 4 : 32;
    const guards = opts.sgGuards ?? !rt.info.isCpu;
    const chunk = variant === 'split' ? opts.splitChunk ?? (splitChunkFor(rt, T, itemsPerToken, context) || Math.max(4, context)) : 0;
    if (variant === 'split' && (!Number.isInteger(chunk) || chunk < 1)) throw new Error(`pagedAttention: splitChunk=${chunk}`);
    const numChunks = chunk ? Math.ceil(context / chunk) : 1;
    const params = { ...base, qStride, qCol, outStride, outCol, chunk, numChunks };
    const workgroups = rt.grid(Math.ceil((T * itemsPerToken * numChunks * lanes) / SG_WG));
    if (variant === 'sg') {
      rt.dispatch(sgKernel(hd, cache.blockSize, KV, G, guards, false), { params, buffers: [qkv, cache.k[layer], cache.v[layer], meta.buffer, out], workgroups });
      return;
    }
    const partBytes = T * H * numChunks * (hd + 2) * 4;
    const part = rt.acquire(partBytes);
    rt.dispatch(sgKernel(hd, cache.blockSize, KV, G, guards, true), { params, buffers: [qkv, cache.k[layer], cache.v[layer], meta.buffer, part], workgroups });
    rt.dispatch(combineKernel(hd), { params, buffers: [meta.buffer, part, out], workgroups: rt.grid(Math.ceil((T * H * hd) / 64)) });
    rt.release(part);
    return;
  }

  const vec4 = hd % 4 === 0 && qStride % 4 === 0 && qCol % 4 === 0 && outStride % 4 === 0 && outCol % 4 === 0;
  const w = vec4 ? 4 : 1;
  const params = { ...base, qStride: qStride / w, qCol: qCol / w, outStride: outStride / w, outCol: outCol / w, chunk: 0, numChunks: 1 };
  const kernel = variant === 'v2' ? v2Kernel(hd, vec4, cache.blockSize, KV, G) : v1Kernel(hd, vec4);
  rt.dispatch(kernel, {
    params,
    buffers: [qkv, cache.k[layer], cache.v[layer], meta.buffer, out],
    workgroups: rt.grid(Math.ceil((T * (variant === 'v2' ? itemsPerToken : H)) / 64)),
  });
}
