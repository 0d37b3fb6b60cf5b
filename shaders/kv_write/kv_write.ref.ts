// float64 reference for shaders/kv_write.wgsl: the expected page contents after a paged KV write.

/**
 * Applies the write to copies of the K and V page arrays ([numBlocks, numKvHeads, blockSize, headDim]).
 * slots[t] = physical slot of token t (block*blockSize + offset), or -1 / 0xffffffff to skip.
 */
export function kvWriteRef(
  kPages: ArrayLike<number>,
  vPages: ArrayLike<number>,
  qkv: ArrayLike<number>,
  slots: ArrayLike<number>,
  o: { numKvHeads: number; headDim: number; blockSize: number; rowStride: number; kCol: number; vCol: number },
): { k: Float64Array; v: Float64Array } {
  const k = Float64Array.from(kPages);
  const v = Float64Array.from(vPages);
  for (let t = 0; t < slots.length; t++) {
    const slot = slots[t];
    if (slot < 0 || slot === 0xffffffff) continue;
    const block = Math.floor(slot / o.blockSize);
    const off = slot % o.blockSize;
    for (let h = 0; h < o.numKvHeads; h++) {
      for (let d = 0; d < o.headDim; d++) {
        const dst = ((block * o.numKvHeads + h) * o.blockSize + off) * o.headDim + d;
        k[dst] = qkv[t * o.rowStride + o.kCol + h * o.headDim + d];
        v[dst] = qkv[t * o.rowStride + o.vCol + h * o.headDim + d];
      }
    }
  }
  return { k, v };
}
