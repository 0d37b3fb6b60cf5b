// float64 references for shaders/matmul/matmul.backward.ts: GEMM with transposes and the LoRA
// linear forward/backward. Row-major [rows, cols]; shapes in comments.

/** C[M, N] = alpha · op(A)·op(B) (+ C0). A stored [M, K] (transA: [K, M]), B [K, N] (transB: [N, K]), dense. */
export function gemmRef(
  A: ArrayLike<number>, B: ArrayLike<number>, M: number, N: number, K: number,
  opts: { transA?: boolean; transB?: boolean; alpha?: number; c0?: ArrayLike<number> } = {},
): Float64Array {
  const out = new Float64Array(M * N);
  const alpha = opts.alpha ?? 1;
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += A[opts.transA ? k * M + m : m * K + k] * B[opts.transB ? n * K + k : k * N + n];
      out[m * N + n] = alpha * s + (opts.c0 ? opts.c0[m * N + n] : 0);
    }
  return out;
}

/** Y[T, N] = X·Wᵀ + s·(X·Aᵀ)·Bᵀ; also H[T, r]. W [N, K] (optional), A [r, K], B [N, r]. */
export function loraLinearForwardRef(
  x: ArrayLike<number>, w: ArrayLike<number> | null, a: ArrayLike<number>, b: ArrayLike<number>,
  T: number, N: number, K: number, r: number, s: number,
): { y: Float64Array; h: Float64Array } {
  const h = gemmRef(x, a, T, r, K, { transB: true });
  const y = gemmRef(h, b, T, N, r, { transB: true, alpha: s });
  if (w) {
    const base = gemmRef(x, w, T, N, K, { transB: true });
    for (let i = 0; i < y.length; i++) y[i] += base[i];
  }
  return { y, h };
}

/** dB = s·dYᵀ·H, dH = s·dY·B, dA = dHᵀ·X, dX = dY·W + dH·A. */
export function loraLinearBackwardRef(
  x: ArrayLike<number>, dy: ArrayLike<number>, w: ArrayLike<number> | null, a: ArrayLike<number>, b: ArrayLike<number>,
  T: number, N: number, K: number, r: number, s: number,
): { dA: Float64Array; dB: Float64Array; dX: Float64Array; dH: Float64Array } {
  const h = gemmRef(x, a, T, r, K, { transB: true });
  const dB = gemmRef(dy, h, N, r, T, { transA: true, alpha: s });
  const dH = gemmRef(dy, b, T, r, N, { alpha: s });
  const dA = gemmRef(dH, x, r, K, T, { transA: true });
  const dX = gemmRef(dH, a, T, K, r);
  if (w) {
    const base = gemmRef(dy, w, T, K, N);
    for (let i = 0; i < dX.length; i++) dX[i] += base[i];
  }
  return { dA, dB, dX, dH };
}
