// CPU reference for shaders/topk.wgsl: sort by (value desc, index asc), NaNs dropped, pad with (-inf, 0xffffffff).
export function topkRef(x: ArrayLike<number>, rows: number, vocab: number, k: number, rowStride = vocab): { values: Float64Array; indices: Uint32Array } {
  const values = new Float64Array(rows * k).fill(-Infinity);
  const indices = new Uint32Array(rows * k).fill(0xffffffff);
  for (let r = 0; r < rows; r++) {
    const idx: number[] = [];
    for (let i = 0; i < vocab; i++) if (!Number.isNaN(x[r * rowStride + i])) idx.push(i);
    idx.sort((a, b) => x[r * rowStride + b] - x[r * rowStride + a] || a - b);
    for (let j = 0; j < Math.min(k, idx.length); j++) {
      values[r * k + j] = x[r * rowStride + idx[j]];
      indices[r * k + j] = idx[j];
    }
  }
  return { values, indices };
}
