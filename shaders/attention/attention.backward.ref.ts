// float64 reference for shaders/attention/attention.backward.ts: causal GQA attention over a
// packed block (token t attends j ∈ [segStart[t], t]) and its backward. Dense layouts:
// q, o [T, nh*hd]; k, v [T, nkv*hd]; lse [T, nh].

export interface AttnRefShape { T: number; nh: number; nkv: number; hd: number; scale?: number }

export function attentionTrainForwardRef(
  s: AttnRefShape, q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, segStart: ArrayLike<number>,
): { o: Float64Array; lse: Float64Array } {
  const { T, nh, nkv, hd } = s;
  const scale = s.scale ?? 1 / Math.sqrt(hd), group = nh / nkv;
  const o = new Float64Array(T * nh * hd), lse = new Float64Array(T * nh);
  for (let t = 0; t < T; t++)
    for (let h = 0; h < nh; h++) {
      const g = Math.floor(h / group), j0 = segStart[t];
      const sc: number[] = [];
      for (let j = j0; j <= t; j++) {
        let d = 0;
        for (let e = 0; e < hd; e++) d += q[(t * nh + h) * hd + e] * k[(j * nkv + g) * hd + e];
        sc.push(d * scale);
      }
      const m = Math.max(...sc);
      let l = 0;
      for (const x of sc) l += Math.exp(x - m);
      lse[t * nh + h] = m + Math.log(l);
      for (let j = j0; j <= t; j++) {
        const pr = Math.exp(sc[j - j0] - lse[t * nh + h]);
        for (let e = 0; e < hd; e++) o[(t * nh + h) * hd + e] += pr * v[(j * nkv + g) * hd + e];
      }
    }
  return { o, lse };
}

/** dq [T, nh*hd], dk, dv [T, nkv*hd] for upstream dO, by the textbook softmax backward. */
export function attentionBackwardRef(
  s: AttnRefShape, q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, segStart: ArrayLike<number>, dout: ArrayLike<number>,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { T, nh, nkv, hd } = s;
  const scale = s.scale ?? 1 / Math.sqrt(hd), group = nh / nkv;
  const { lse } = attentionTrainForwardRef(s, q, k, v, segStart);
  const dq = new Float64Array(T * nh * hd), dk = new Float64Array(T * nkv * hd), dv = new Float64Array(T * nkv * hd);
  for (let t = 0; t < T; t++)
    for (let h = 0; h < nh; h++) {
      const g = Math.floor(h / group), j0 = segStart[t];
      const P: number[] = [], dP: number[] = [];
      for (let j = j0; j <= t; j++) {
        let d = 0, dp = 0;
        for (let e = 0; e < hd; e++) {
          d += q[(t * nh + h) * hd + e] * k[(j * nkv + g) * hd + e];
          dp += dout[(t * nh + h) * hd + e] * v[(j * nkv + g) * hd + e];
        }
        P.push(Math.exp(d * scale - lse[t * nh + h]));
        dP.push(dp);
      }
      // softmax backward: dS_j = P_j (dP_j − Σ_i P_i dP_i)
      let PdP = 0;
      for (let i = 0; i < P.length; i++) PdP += P[i] * dP[i];
      for (let j = j0; j <= t; j++) {
        const pr = P[j - j0], ds = pr * (dP[j - j0] - PdP);
        for (let e = 0; e < hd; e++) {
          dv[(j * nkv + g) * hd + e] += pr * dout[(t * nh + h) * hd + e];
          dq[(t * nh + h) * hd + e] += scale * ds * k[(j * nkv + g) * hd + e];
          dk[(j * nkv + g) * hd + e] += scale * ds * q[(t * nh + h) * hd + e];
        }
      }
    }
  return { dq, dk, dv };
}
