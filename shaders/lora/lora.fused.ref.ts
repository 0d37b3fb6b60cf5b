// float64 reference for the multi-LoRA shrink tail (shaders/lora/lora.fused.ts):
//   t[row, tOff + m·rMax + k] = Σ_i x[row, i] · A_m[k, i]    (k < rank of the row's adapter)
// for rows whose adapter targets module m (the expand's reference is lora.ref.ts).

export interface FusedRefAdapter {
  rank: number;
  scale: number;
  /** per bank module: [rank, inDim] */
  A: ArrayLike<number>[];
  /** per bank module: whether the adapter targets it at the checked layer */
  on: boolean[];
}

/** Expected t entries (NaN where the kernels must not write). */
export function fusedShrinkRef(input: ArrayLike<number>, rows: number, inDim: number, rowAd: ReadonlyArray<FusedRefAdapter | null>, d: { nMod: number; rMax: number; tStride: number; tOff: number }): Float64Array {
  const t = new Float64Array(rows * d.tStride).fill(NaN);
  rowAd.forEach((a, r) => {
    if (!a) return;
    for (let m = 0; m < d.nMod; m++) {
      if (!a.on[m]) continue;
      for (let k = 0; k < a.rank; k++) {
        let s = 0;
        for (let i = 0; i < inDim; i++) s += input[r * inDim + i]! * a.A[m]![k * inDim + i]!;
        t[r * d.tStride + d.tOff + m * d.rMax + k] = s;
      }
    }
  });
  return t;
}

