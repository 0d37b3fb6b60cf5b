// Float64 reference for shaders/lora_train/lora_train.ts (one module; row-major arrays).
//   merge:  W_eff[N, K] = W + s·B·A         (A [r, K], B [N, r])
//   grads:  dB[N, r] = s·dW·Aᵀ,  dA[r, K] = s·Bᵀ·dW   (the gradient of Σ dW ∘ W_eff w.r.t. B, A)

export function loraMergeRef(w: ArrayLike<number>, a: ArrayLike<number>, b: ArrayLike<number>, N: number, K: number, r: number, s: number): Float64Array {
  const out = Float64Array.from(w);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      let acc = 0;
      for (let p = 0; p < r; p++) acc += b[n * r + p] * a[p * K + k];
      out[n * K + k] += s * acc;
    }
  return out;
}

export function loraGradsFromDwRef(dw: ArrayLike<number>, a: ArrayLike<number>, b: ArrayLike<number>, N: number, K: number, r: number, s: number): { dA: Float64Array; dB: Float64Array } {
  const dA = new Float64Array(r * K), dB = new Float64Array(N * r);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      const g = dw[n * K + k];
      for (let p = 0; p < r; p++) {
        dB[n * r + p] += s * g * a[p * K + k];
        dA[p * K + k] += s * b[n * r + p] * g;
      }
    }
  return { dA, dB };
}
