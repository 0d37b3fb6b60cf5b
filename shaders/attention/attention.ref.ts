// float64 reference for shaders/attention.wgsl: causal GQA attention over explicit per-sequence
// K/V histories (no paging).

export interface AttentionRefInput {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Per sequence: k and v rows by position, each [len, numKvHeads*headDim]. */
  seqs: Array<{ k: ArrayLike<number>; v: ArrayLike<number> }>;
  /** Per token: its sequence and absolute position; it attends to [pos-window+1 or 0, pos]. */
  tokens: Array<{ seq: number; pos: number }>;
  /** q of token t, head h at q[t*qStride + h*headDim + d] (qStride defaults to numHeads*headDim). */
  q: ArrayLike<number>;
  qStride?: number;
  scale?: number;
  /** Sliding window in tokens (0 or undefined: none). */
  window?: number;
}

/** Returns out [T, numHeads*headDim]. */
export function attentionRef(x: AttentionRefInput): Float64Array {
  const { numHeads: H, numKvHeads: KV, headDim: D } = x;
  const group = H / KV;
  if (!Number.isInteger(group)) throw new Error('numHeads must be a multiple of numKvHeads');
  const qStride = x.qStride ?? H * D;
  const scale = x.scale ?? 1 / Math.sqrt(D);
  const T = x.tokens.length;
  const out = new Float64Array(T * H * D);
  for (let t = 0; t < T; t++) {
    const { seq, pos } = x.tokens[t];
    const { k, v } = x.seqs[seq];
    const j0 = x.window ? Math.max(0, pos - x.window + 1) : 0;
    const scores = new Float64Array(pos + 1);
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      let max = -Infinity;
      for (let j = j0; j <= pos; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += x.q[t * qStride + h * D + d] * k[(j * KV + kvh) * D + d];
        s *= scale;
        scores[j] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let j = j0; j <= pos; j++) {
        scores[j] = Math.exp(scores[j] - max);
        sum += scores[j];
      }
      for (let d = 0; d < D; d++) {
        let a = 0;
        for (let j = j0; j <= pos; j++) a += scores[j] * v[(j * KV + kvh) * D + d];
        out[(t * H + h) * D + d] = a / sum;
      }
    }
  }
  return out;
}
