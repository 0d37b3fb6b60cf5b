// float64 reference for shaders/matmul.*.wgsl: out[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]).
// w is in the HF Linear layout [N, K], row-major.
export function matmulRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  bias?: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n] : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      out[m * N + n] = s;
    }
  }
  return out;
}

/** Per-output bound on |x·W_q − x·W| for group-wise symmetric int8 weights: each weight is off by
 *  at most s_g/2 (round to nearest; s_g = max|w| over the group / 127), so
 *  |err[m, n]| <= sum_k |x[m, k]| * s_{g(n,k)} / 2. Returns that bound for every output. */
export function q8ErrorBound(
  x: ArrayLike<number>,
  scales: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  group: number,
): Float64Array {
  const G = Math.ceil(K / group);
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += Math.abs(x[m * K + k]) * scales[n * G + Math.floor(k / group)] * 0.5;
      out[m * N + n] = s;
    }
  return out;
}
