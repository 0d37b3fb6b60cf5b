// RoPE (q and k) + paged KV write in one dispatch (host side). WGSL: shaders/rope_kv_write.wgsl ·
// reference: shaders/rope_kv_write.ref.ts · check: shaders/rope_kv_write.check.ts.
// Same results as rope(qkv, positions, invFreq, T, numHeads + numKvHeads, ...) on the q|k columns
// followed by kvWrite(cache, layer, qkv, meta, T, ...), with positions and slots read from the
// batch metadata's token records.
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import { TOKEN_WORDS, type BatchMeta, type KvPages } from '../kv/layout.ts';
import type { QkvLayout } from '../kv_write/kv_write.ts';

export const RopeKvWriteParams = defineParams('RopeKvWriteParams', {
  numTokens: 'u32',
  numHeads: 'u32',
  numKvHeads: 'u32',
  headDim: 'u32',
  blockSize: 'u32',
  rowStride: 'u32',
  qCol: 'u32',
  kCol: 'u32',
  vCol: 'u32',
  tokenBase: 'u32',
});
type F = (typeof RopeKvWriteParams.fields)[number][0];

/** shaders/rope.wgsl's rope_cos_sin(), so both kernels round identically. */
function ropeCosSinWgsl(): string {
  const src = WGSL.rope;
  const a = src.indexOf('fn rope_cos_sin');
  const b = src.indexOf('@compute', a);
  if (a < 0 || b < 0) throw new Error('rope_kv_write: rope_cos_sin() not found in shaders/rope.wgsl');
  return src.slice(a, b);
}

const kernel: Kernel<F> = {
  name: 'rope_kv_write',
  code: RopeKvWriteParams.wgsl + ropeCosSinWgsl() + WGSL.rope_kv_write,
  params: RopeKvWriteParams,
};


/**
 * In place on `qkv` ([T, rowStride]): RoPE on the numHeads q heads at qCol and the numKvHeads k
 * heads at kCol (rotate-half pairs, angle = f32(pos) * invFreq[i]); then the rotated k and the v
 * (at vCol) of token t go to cache layer `layer`, slot of token t. pos and slot: words 1 and 2 of
 * token t's record in `meta` (slot 0xffffffff skips the write).
 */
export function ropeKvWrite(
  rt: Runtime,
  cache: KvPages,
  layer: number,
  qkv: GPUBuffer,
  meta: Pick<BatchMeta, 'buffer' | 'numTokens' | 'tokenBase'>,
  invFreq: GPUBuffer,
  T: number,
  numHeads: number,
  layout: QkvLayout,
): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= cache.numLayers) throw new Error(`ropeKvWrite: layer ${layer} outside 0..${cache.numLayers - 1}`);
  if (meta.numTokens !== T) throw new Error(`ropeKvWrite: T=${T} but the batch has ${meta.numTokens} tokens`);
  const D = cache.headDim;
  const KVH = cache.numKvHeads;
  if (D % 2 || D <= 0) throw new Error(`ropeKvWrite: headDim ${D} must be even`);
  const { rowStride, qCol, kCol, vCol } = layout;
  if (qCol + numHeads * D > rowStride || kCol + KVH * D > rowStride || vCol + KVH * D > rowStride) {
    throw new Error(`ropeKvWrite: q/k/v columns (${qCol}, ${kCol}, ${vCol}) exceed rowStride ${rowStride}`);
  }
  if (T === 0) return;
  if (qkv.size < T * rowStride * 4) throw new Error('ropeKvWrite: qkv too small');
  if (meta.buffer.size < (meta.tokenBase + T * TOKEN_WORDS) * 4) throw new Error('ropeKvWrite: meta too small');
  if (invFreq.size < (D / 2) * 4) throw new Error('ropeKvWrite: invFreq too small');
  const n = T * (numHeads + KVH) * (D / 2);
  rt.dispatch(kernel, {
    params: { numTokens: T, numHeads, numKvHeads: KVH, headDim: D, blockSize: cache.blockSize, rowStride, qCol, kCol, vCol, tokenBase: meta.tokenBase },
    buffers: [qkv, meta.buffer, invFreq, cache.k[layer]!, cache.v[layer]!],
    workgroups: rt.grid(Math.ceil(n / 64)),
  });
}
