// float64 reference for shaders/softmax.wgsl (same masking contract).
export function softmaxRef(
  x: ArrayLike<number>,
  rows: number,
  cols: number,
  causal?: { queryOffset: number; queryRows?: number },
): Float64Array {
  const out = new Float64Array(rows * cols);
  const qr = causal?.queryRows ?? rows;
  for (let r = 0; r < rows; r++) {
    const lim = causal ? Math.min(cols, (r % qr) + causal.queryOffset + 1) : cols;
    let m = -Infinity;
    for (let c = 0; c < lim; c++) m = Math.max(m, x[r * cols + c]);
    let s = 0;
    for (let c = 0; c < lim; c++) s += Math.exp(x[r * cols + c] - m);
    for (let c = 0; c < lim; c++) out[r * cols + c] = Math.exp(x[r * cols + c] - m) / s;
  }
  return out;
}
