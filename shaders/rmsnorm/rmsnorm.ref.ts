// float64 reference for shaders/rmsnorm.wgsl
export function rmsnormRef(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, dim: number, eps: number): Float64Array {
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i] * x[r * dim + i];
    const s = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[r * dim + i] = x[r * dim + i] * s * w[i];
  }
  return out;
}

/** float64 backward of rmsnormRef: dx [rows, dim], dw [dim] for upstream dy. */
export function rmsnormBackwardRef(x: ArrayLike<number>, w: ArrayLike<number>, dy: ArrayLike<number>, rows: number, dim: number, eps: number): { dx: Float64Array; dw: Float64Array } {
  const dx = new Float64Array(rows * dim), dw = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0, dot = 0;
    for (let i = 0; i < dim; i++) {
      ss += x[r * dim + i] * x[r * dim + i];
      dot += dy[r * dim + i] * w[i] * x[r * dim + i];
    }
    const s = 1 / Math.sqrt(ss / dim + eps);
    const c = (s * s * s * dot) / dim;
    for (let i = 0; i < dim; i++) {
      dx[r * dim + i] = s * dy[r * dim + i] * w[i] - c * x[r * dim + i];
      dw[i] += dy[r * dim + i] * x[r * dim + i] * s;
    }
  }
  return { dx, dw };
}
