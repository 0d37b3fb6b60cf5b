// Paged causal GQA attention (host side). WGSL: shaders/attention.wgsl · reference:
// shaders/attention.ref.ts · check: shaders/attention.check.ts. Layouts: engine/kv/paged-cache.ts.
import { WGSL } from './wgsl.gen.ts';
import { defineParams } from '../engine/gpu/params.ts';
import type { Binding, Kernel, Runtime } from '../engine/gpu/runtime.ts';
import type { BatchMeta, PagedKvCache } from '../engine/kv/paged-cache.ts';
import { fusedQkvLayout, laneTypePreamble } from './kv_write.ts';

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
});
type F = (typeof AttnParams.fields)[number][0];

const kernelCache = new Map<string, Kernel<F>>();

function attnKernel(headDim: number, vec4: boolean): Kernel<F> {
  const key = `${headDim}:${vec4}`;
  let k = kernelCache.get(key);
  if (!k) {
    const hdv = vec4 ? headDim / 4 : headDim;
    k = {
      name: `attention_paged_${vec4 ? 'vec4' : 'f32'}_hd${headDim}`,
      code: laneTypePreamble(vec4) + `const HDV: u32 = ${hdv}u;\n` + AttnParams.wgsl + WGSL.attention,
      params: AttnParams,
    };
    kernelCache.set(key, k);
  }
  return k;
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
}

/**
 * out[t, h*headDim + d] = softmax_j(q_t,h · k_j,kvh * scale) v_j,kvh over the positions j in
 * [0, pos_t] (or the window) of token t's sequence, read through its block table.
 * The step's K/V must already be in the cache (kvWrite first).
 */
export function pagedAttention(
  rt: Runtime,
  cache: PagedKvCache,
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
  const vec4 = hd % 4 === 0 && qStride % 4 === 0 && qCol % 4 === 0 && outStride % 4 === 0 && outCol % 4 === 0;
  const w = vec4 ? 4 : 1;
  rt.dispatch(attnKernel(hd, vec4), {
    params: {
      numTokens: T,
      numHeads: H,
      numKvHeads: KV,
      group: H / KV,
      blockSize: cache.blockSize,
      qStride: qStride / w,
      qCol: qCol / w,
      outStride: outStride / w,
      outCol: outCol / w,
      tokenBase: meta.tokenBase,
      window,
      scale: opts.scale ?? 1 / Math.sqrt(hd),
    },
    buffers: [qkv, cache.k[layer], cache.v[layer], meta.buffer, out],
    workgroups: rt.grid(Math.ceil((T * H) / 64)),
  });
}
