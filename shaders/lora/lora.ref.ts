// float64 reference for the multi-LoRA kernels (shaders/lora.*.wgsl):
//   out[r, outOff + j] += scale · Σ_k (Σ_i x[r, i] · A[k, i]) · B[j, k]   for rows r with an adapter.

export interface RefRowAdapter {
  /** [rank, inDim] */
  A: ArrayLike<number>;
  /** [outDim, rank] */
  B: ArrayLike<number>;
  rank: number;
  scale: number;
}

/** Returns a float64 copy of `out` with the LoRA deltas added; rows whose adapter is null are copied unchanged. */
export function loraRef(
  x: ArrayLike<number>,
  out: ArrayLike<number>,
  rowAdapters: ReadonlyArray<RefRowAdapter | null>,
  d: { inDim: number; outDim: number; xStride: number; outStride: number; outOff: number },
): Float64Array {
  const res = Float64Array.from(out);
  rowAdapters.forEach((ad, r) => {
    if (!ad) return;
    const t = new Float64Array(ad.rank);
    for (let k = 0; k < ad.rank; k++) {
      let s = 0;
      for (let i = 0; i < d.inDim; i++) s += x[r * d.xStride + i] * ad.A[k * d.inDim + i];
      t[k] = s;
    }
    for (let j = 0; j < d.outDim; j++) {
      let s = 0;
      for (let k = 0; k < ad.rank; k++) s += t[k] * ad.B[j * ad.rank + k];
      res[r * d.outStride + d.outOff + j] += ad.scale * s;
    }
  });
  return res;
}

/** float64 W' = W + scale · B·A on rows rowOff .. rowOff + outDim of W [N, K] (B [outDim, r], A [r, K]). */
export function loraMergeRef(W: ArrayLike<number>, N: number, K: number, A: ArrayLike<number>, B: ArrayLike<number>, r: number, outDim: number, rowOff: number, scale: number): Float64Array {
  const out = Float64Array.from(W);
  if (rowOff + outDim > N) throw new Error('loraMergeRef: rows out of range');
  for (let j = 0; j < outDim; j++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let q = 0; q < r; q++) s += B[j * r + q] * A[q * K + k];
      out[(rowOff + j) * K + k] += scale * s;
    }
  }
  return out;
}
