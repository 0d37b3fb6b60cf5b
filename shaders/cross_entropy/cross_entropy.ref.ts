// float64 reference for shaders/cross_entropy: lm_head logits z = h·Wᵀ, lse, label log-prob and
// dh = Σ_v coef·(softmax(z) − onehot(label))_v · W[v] (the gradient of −Σ_t coef[t]·logp[t]).

export function lmHeadCrossEntropyRef(
  h: ArrayLike<number>, w: ArrayLike<number>, labels: ArrayLike<number>, T: number, V: number, Hd: number, coef?: ArrayLike<number>,
): { lse: Float64Array; logp: Float64Array; dh: Float64Array; loss: number } {
  const lse = new Float64Array(T), logp = new Float64Array(T), dh = new Float64Array(T * Hd);
  let loss = 0;
  const z = new Float64Array(V);
  for (let t = 0; t < T; t++) {
    let m = -Infinity;
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let k = 0; k < Hd; k++) s += h[t * Hd + k] * w[v * Hd + k];
      z[v] = s;
      m = Math.max(m, s);
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(z[v] - m);
    lse[t] = m + Math.log(sum);
    const y = labels[t];
    if (y < 0) continue;
    logp[t] = z[y] - lse[t];
    const c = coef ? coef[t] : 0;
    loss -= c * logp[t];
    if (!coef) continue;
    for (let v = 0; v < V; v++) {
      const g = c * (Math.exp(z[v] - lse[t]) - (v === y ? 1 : 0));
      for (let k = 0; k < Hd; k++) dh[t * Hd + k] += g * w[v * Hd + k];
    }
  }
  return { lse, logp, dh, loss };
}
