// CPU reference for shaders/argmax.wgsl: first index of the maximum (NaNs ignored; all-NaN → 0).
export function argmaxRef(x: ArrayLike<number>, rows: number, vocab: number, rowStride = vocab): Uint32Array {
  const out = new Uint32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = -Infinity, bi = -1;
    for (let i = 0; i < vocab; i++) {
      const v = x[r * rowStride + i];
      if (v > best || (v === best && bi < 0)) { best = v; bi = i; }
    }
    out[r] = bi < 0 ? 0 : bi;
  }
  return out;
}
