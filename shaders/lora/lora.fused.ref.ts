// float64 reference for the fused multi-LoRA pieces (shaders/lora/lora.fused.ts):
//   shrink  t[row, tOff + m·rMax + k] = Σ_i in[row, i] · A_m[k, i]                (k < rank of the row's adapter)
//   expand  delta[row, outOff + oc_m + j] = scale · Σ_k t[row, tOff + m·rMax + k] · B_m[j, k]
// for rows whose adapter targets module m; the producer kernels' own math (rmsnorm, silu·mul) comes
// from their references (rmsnorm.ref.ts, silu_mul.ref.ts).

export interface FusedRefAdapter {
  rank: number;
  scale: number;
  /** per bank module: [rank, inDim] */
  A: ArrayLike<number>[];
  /** per bank module: [outDim, rank] */
  B: ArrayLike<number>[];
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

/** LoRA deltas [rows, outWidth] (0 where nothing is added). */
export function fusedExpandRef(t: ArrayLike<number>, rows: number, outDims: readonly number[], rowAd: ReadonlyArray<FusedRefAdapter | null>, d: { rMax: number; tStride: number; tOff: number; outOff: number; outWidth: number }): Float64Array {
  const out = new Float64Array(rows * d.outWidth);
  rowAd.forEach((a, r) => {
    if (!a) return;
    let oc = d.outOff;
    outDims.forEach((outDim, m) => {
      if (a.on[m]) {
        for (let j = 0; j < outDim; j++) {
          let s = 0;
          for (let k = 0; k < a.rank; k++) s += t[r * d.tStride + d.tOff + m * d.rMax + k]! * a.B[m]![j * a.rank + k]!;
          out[r * d.outWidth + oc + j] = a.scale * s;
        }
      }
      oc += outDim;
    });
  });
  return out;
}
