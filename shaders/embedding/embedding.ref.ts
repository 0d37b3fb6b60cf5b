// float64 reference for shaders/embedding.wgsl. `table` is what the GPU holds (weights.ts
// `dequantized()` of the format), [N, K] row-major.
export function embeddingRef(ids: ArrayLike<number>, table: ArrayLike<number>, N: number, K: number): Float64Array {
  const out = new Float64Array(ids.length * K);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (id >= N) continue;
    for (let k = 0; k < K; k++) out[t * K + k] = table[id * K + k];
  }
  return out;
}

/** float64 backward of embeddingRef: dTable [N, K] = Σ_t onehot(ids[t]) ⊗ dout[t]. */
export function embeddingBackwardRef(ids: ArrayLike<number>, dout: ArrayLike<number>, N: number, K: number): Float64Array {
  const d = new Float64Array(N * K);
  for (let t = 0; t < ids.length; t++) for (let k = 0; k < K; k++) d[ids[t] * K + k] += dout[t * K + k];
  return d;
}
