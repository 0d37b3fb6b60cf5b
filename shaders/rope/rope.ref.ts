// float64 reference for shaders/rope.wgsl. The angle is the float32 product f32(pos) * invFreq[i]
// (invFreq already float32, from ropeInvFreq), exactly as the kernel and HF form it; cos, sin and
// the rotation are float64.
export function ropeRef(
  x: ArrayLike<number>,
  positions: ArrayLike<number>,
  invFreq: Float32Array,
  tokens: number,
  numHeads: number,
  headDim: number,
  rowStride = numHeads * headDim,
  colOffset = 0,
): Float64Array {
  const out = Float64Array.from(x);
  const half = headDim / 2;
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < numHeads; h++) {
      const base = t * rowStride + colOffset + h * headDim;
      for (let i = 0; i < half; i++) {
        const ang = Math.fround(Math.fround(positions[t]) * invFreq[i]);
        const c = Math.cos(ang), s = Math.sin(ang);
        const x1 = x[base + i], x2 = x[base + i + half];
        out[base + i] = x1 * c - x2 * s;
        out[base + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

/** float64 backward of ropeRef (the transpose of the rotation), same angles. */
export function ropeBackwardRef(
  dy: ArrayLike<number>, positions: ArrayLike<number>, invFreq: Float32Array, tokens: number, numHeads: number, headDim: number,
  rowStride = numHeads * headDim, colOffset = 0,
): Float64Array {
  const out = Float64Array.from(dy);
  const half = headDim / 2;
  for (let t = 0; t < tokens; t++)
    for (let h = 0; h < numHeads; h++) {
      const base = t * rowStride + colOffset + h * headDim;
      for (let i = 0; i < half; i++) {
        const ang = Math.fround(Math.fround(positions[t]) * invFreq[i]);
        const c = Math.cos(ang), s = Math.sin(ang);
        const g1 = dy[base + i], g2 = dy[base + i + half];
        out[base + i] = g1 * c + g2 * s;
        out[base + i + half] = g2 * c - g1 * s;
      }
    }
  return out;
}
