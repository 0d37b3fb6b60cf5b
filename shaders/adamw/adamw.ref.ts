// float64 references for shaders/adamw: torch.optim.AdamW (one step) and clip_grad_norm_.

export interface AdamWRefState {
  param: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

/** One AdamW step t (1-based) in float64, in place; grad already clipped. */
export function adamwRef(s: AdamWRefState, grad: ArrayLike<number>, h: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }, t: number): void {
  const bc1 = 1 - h.beta1 ** t, bc2 = 1 - h.beta2 ** t;
  const stepSize = h.lr / bc1, bc2Sqrt = Math.sqrt(bc2);
  for (let i = 0; i < s.param.length; i++) {
    const g = grad[i];
    s.param[i] *= 1 - h.lr * h.weightDecay;
    s.m[i] = s.m[i] * h.beta1 + (1 - h.beta1) * g;
    s.v[i] = s.v[i] * h.beta2 + (1 - h.beta2) * g * g;
    s.param[i] -= (stepSize * s.m[i]) / (Math.sqrt(s.v[i]) / bc2Sqrt + h.eps);
  }
}

/** clip_grad_norm_: total_norm = ‖(‖g_1‖, …, ‖g_n‖)‖₂; clip_coef = max_norm / (total + 1e-6) clamped to 1 (max_norm 0: 1). */
export function gradNormRef(grads: ArrayLike<number>[], maxNorm: number): { totalNorm: number; clipCoef: number } {
  let ss = 0;
  for (const g of grads) {
    let t = 0;
    for (let i = 0; i < g.length; i++) t += g[i] * g[i];
    ss += t; // (‖g_i‖)² summed: the norm of the per-tensor norms
  }
  const totalNorm = Math.sqrt(ss);
  return { totalNorm, clipCoef: maxNorm > 0 ? Math.min(maxNorm / (totalNorm + 1e-6), 1) : 1 };
}
