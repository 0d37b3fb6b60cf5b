// Paged KV write (host side). WGSL: shaders/kv_write.wgsl · reference: shaders/kv_write.ref.ts ·
// check: shaders/kv_write.check.ts. Page layout: shaders/kv/layout.ts.
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Binding, Kernel, Runtime } from '../gpu/runtime.ts';
import { TOKEN_WORDS, type BatchMeta, type KvPages } from '../kv/layout.ts';

/** Where q, k and v sit in a row of the qkv activation (all in floats). */
export interface QkvLayout {
  /** Floats per token row. */
  rowStride: number;
  qCol: number;
  kCol: number;
  vCol: number;
}

/** The fused layout [T, (numHeads + 2*numKvHeads) * headDim] with q | k | v per row. */
export function fusedQkvLayout(numHeads: number, numKvHeads: number, headDim: number): QkvLayout {
  return {
    rowStride: (numHeads + 2 * numKvHeads) * headDim,
    qCol: 0,
    kCol: numHeads * headDim,
    vCol: (numHeads + numKvHeads) * headDim,
  };
}

/** WGSL preamble choosing the element type: vec4 lanes when every offset allows, else f32. */
export function laneTypePreamble(vec4: boolean): string {
  return vec4
    ? 'alias V = vec4<f32>;\nconst W: u32 = 4u;\nfn vdot(a: V, b: V) -> f32 { return dot(a, b); }\n'
    : 'alias V = f32;\nconst W: u32 = 1u;\nfn vdot(a: V, b: V) -> f32 { return a * b; }\n';
}

export const KvWriteParams = defineParams('KvWriteParams', {
  numTokens: 'u32',
  numKvHeads: 'u32',
  headDimV: 'u32',
  blockSize: 'u32',
  rowStride: 'u32',
  kCol: 'u32',
  vCol: 'u32',
  slotBase: 'u32',
  slotStride: 'u32',
});
type F = (typeof KvWriteParams.fields)[number][0];

const kernels = [false, true].map(
  (vec4): Kernel<F> => ({
    name: vec4 ? 'kv_write_vec4' : 'kv_write_f32',
    code: laneTypePreamble(vec4) + KvWriteParams.wgsl + WGSL.kv_write,
    params: KvWriteParams,
  }),
);

/** Per-token slots: word slotBase + t*slotStride of `buffer` (0xffffffff = skip the token). */
export interface SlotMapping {
  buffer: GPUBuffer;
  /** Word offset of token 0's slot (default 0). */
  slotBase?: number;
  /** Words between consecutive tokens' slots (default 1). */
  slotStride?: number;
}

export interface KvWriteOptions extends Partial<QkvLayout> {
  /** Needed for the default fused layout (kCol = numHeads*headDim, ...). */
  numHeads?: number;
}

/**
 * Writes the k and v rows of T tokens from `qkv` into layer `layer` of the cache, token t into
 * physical slot slots[t]. `slotMapping` is a BatchMeta (its per-token records) or any u32 buffer.
 */
export function kvWrite(
  rt: Runtime,
  cache: KvPages,
  layer: number,
  qkv: Binding,
  slotMapping: BatchMeta | SlotMapping,
  T: number,
  opts: KvWriteOptions = {},
): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= cache.numLayers) throw new Error(`kvWrite: layer ${layer} outside 0..${cache.numLayers - 1}`);
  if (!Number.isInteger(T) || T < 0) throw new Error(`kvWrite: T=${T}`);
  const hd = cache.headDim;
  const kvDim = cache.numKvHeads * hd;
  let layout: QkvLayout;
  if (opts.rowStride !== undefined && opts.kCol !== undefined && opts.vCol !== undefined) {
    layout = { rowStride: opts.rowStride, qCol: opts.qCol ?? 0, kCol: opts.kCol, vCol: opts.vCol };
  } else {
    if (opts.numHeads === undefined) throw new Error('kvWrite: give numHeads (fused qkv layout) or rowStride, kCol and vCol');
    layout = { ...fusedQkvLayout(opts.numHeads, cache.numKvHeads, hd), ...stripUndefined(opts) };
  }
  const { rowStride, kCol, vCol } = layout;
  if (kCol + kvDim > rowStride || vCol + kvDim > rowStride) throw new Error(`kvWrite: k/v columns (${kCol}, ${vCol}) + ${kvDim} exceed rowStride ${rowStride}`);
  let slots: Required<SlotMapping>;
  if ('numTokens' in slotMapping) {
    if (slotMapping.numTokens !== T) throw new Error(`kvWrite: T=${T} but the batch has ${slotMapping.numTokens} tokens`);
    slots = { buffer: slotMapping.buffer, slotBase: slotMapping.tokenBase + 2, slotStride: TOKEN_WORDS };
  } else {
    slots = { buffer: slotMapping.buffer, slotBase: slotMapping.slotBase ?? 0, slotStride: slotMapping.slotStride ?? 1 };
  }
  if (T === 0) return;
  const vec4 = hd % 4 === 0 && rowStride % 4 === 0 && kCol % 4 === 0 && vCol % 4 === 0;
  const w = vec4 ? 4 : 1;
  const n = T * (kvDim / w);
  rt.dispatch(kernels[vec4 ? 1 : 0], {
    params: {
      numTokens: T,
      numKvHeads: cache.numKvHeads,
      headDimV: hd / w,
      blockSize: cache.blockSize,
      rowStride: rowStride / w,
      kCol: kCol / w,
      vCol: vCol / w,
      slotBase: slots.slotBase,
      slotStride: slots.slotStride,
    },
    buffers: [qkv, slots.buffer, cache.k[layer], cache.v[layer]],
    workgroups: rt.grid(Math.ceil(n / 64)),
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
