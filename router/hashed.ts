/**
 * The embedded encoder's training and ONNX export (Node only: the export reads the ONNX schema).
 *
 * Model (fastText-like bag of hashed features, trained for routing):
 *   features f_i with weights v_i          (router/features.ts)
 *   h = Σ_i v_i · W[remap[f_i]]            remap: bucket → learned row (0 = an all-zero row for buckets
 *                                                  never seen in training)
 *   e = h / max(|h|, 1e-12)                the sentence embedding, [dim]
 * `members` such models are trained with different seeds (bagging: the seed alone moves held-out
 * accuracy by several points) and concatenated, each block normalised and scaled by 1/√members.
 * Training objective: cosine-softmax over routes, logits_r = s · (e·p_r/|p_r| − margin·[r = y]) with
 * learned route prototypes p_r and an additive margin on the true route (CosFace; the gradient is that
 * of the plain logits), class-balanced cross-entropy, feature dropout, row-wise Adagrad on the touched
 * rows only.
 *
 * ONNX graph (opset 17), inputs ids int32 [N, L] (bucket ids), weights float [N, L] (0 = padding):
 *   Gather(remap, ids) → Gather(W, ·) [N, L, D] → Mul(·, Unsqueeze(weights, 2)) → ReduceSum(axis 1)
 *   → Reshape [N, M, D/M] → Div(·, Max(Sqrt(ReduceSum(x², axis 2)), 1e-12)) · 1/√M → Reshape
 *   → sentence_embedding [N, D]
 */
import { featurize, type FeatureSpec } from './features.ts';
import { GraphBuilder } from './onnx-build.ts';

export interface HashedTrainOptions {
  dim?: number;
  epochs?: number;
  lr?: number;
  /** Cosine-softmax scale. */
  scale?: number;
  /** Additive cosine margin on the true route's logit (CosFace): s·(cos_y − margin). Pushes each
   *  route's utterances closer to their prototype than the classifier alone needs, so requests worded
   *  a little differently still land on the right side. 0 = plain cosine-softmax. */
  margin?: number;
  /** Probability of dropping each feature of a training example. */
  dropout?: number;
  seed?: number;
  /** Std of the initial rows. */
  initScale?: number;
  /** Models trained with different seeds; their embeddings are concatenated (bagging; see the header). */
  members?: number;
}

export interface HashedWeights {
  spec: FeatureSpec;
  /** Embedding size = members × memberDim. */
  dim: number;
  members: number;
  memberDim: number;
  /** [buckets] → row index into `rows` (0 = zero row). */
  remap: Int32Array;
  /** [nRows, members × memberDim], row 0 all zeros. */
  rows: Float32Array;
  nRows: number;
  /** Final training loss and accuracy (prototype classifier on the training texts). */
  loss: number;
  trainAccuracy: number;
}

/** mulberry32: small seeded PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gauss(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
}

export function trainHashedEncoder(examples: { text: string; label: string }[], spec: FeatureSpec, opts: HashedTrainOptions = {}): HashedWeights {
  if (examples.length === 0) throw new Error('trainHashedEncoder: no training examples');
  const labels = [...new Set(examples.map((e) => e.label))].sort();
  if (labels.length < 2) throw new Error(`trainHashedEncoder: need at least two routes, got ${labels.length}`);
  const memberDim = opts.dim ?? 64;
  const members = opts.members ?? 3;
  // Buckets seen in training get a row each (1..nRows-1), in first-seen order.
  const remap = new Int32Array(spec.buckets);
  let nRows = 1;
  const data = examples.map((e) => {
    const f = featurize(e.text, spec);
    const r = Int32Array.from(f.ids, (id) => (remap[id] ||= nRows++));
    return { rows: r, w: f.weights, y: labels.indexOf(e.label) };
  });
  const dim = members * memberDim;
  const rows = new Float32Array(nRows * dim);
  let loss = 0, acc = 0;
  for (let m = 0; m < members; m++) {
    const t = trainMember(data, nRows, labels.length, memberDim, { ...opts, seed: (opts.seed ?? 1) + 1000 * m });
    for (let r = 0; r < nRows; r++) rows.set(t.W.subarray(r * memberDim, (r + 1) * memberDim), r * dim + m * memberDim);
    loss += t.loss / members;
    acc += t.acc / members;
  }
  return { spec, dim, members, memberDim, remap, rows, nRows, loss, trainAccuracy: acc };
}

type Example = { rows: Int32Array; w: Float32Array; y: number };

function trainMember(data: Example[], nRows: number, R: number, dim: number, opts: HashedTrainOptions): { W: Float32Array; loss: number; acc: number } {
  const epochs = opts.epochs ?? 30;
  const lr = opts.lr ?? 0.3;
  const s = opts.scale ?? 16;
  const dropout = opts.dropout ?? 0.25;
  const margin = opts.margin ?? 0;
  const rand = prng(opts.seed ?? 1);
  const W = new Float32Array(nRows * dim);
  const init = opts.initScale ?? 0.1;
  for (let i = dim; i < W.length; i++) W[i] = gauss(rand) * init;
  const GW = new Float64Array(nRows);
  const P = new Float32Array(R * dim);
  for (let i = 0; i < P.length; i++) P[i] = gauss(rand);
  const GP = new Float32Array(R * dim);
  const counts = Array.from({ length: R }, (_, r) => data.filter((d) => d.y === r).length);
  const classW = counts.map((c) => data.length / (R * Math.max(1, c)));

  const h = new Float64Array(dim), dh = new Float64Array(dim), de = new Float64Array(dim);
  const q = new Float64Array(R * dim), qn = new Float64Array(R);
  const logits = new Float64Array(R);
  let loss = 0, correct = 0;
  const order = data.map((_, i) => i);
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    loss = 0;
    correct = 0;
    for (const idx of order) {
      const d = data[idx];
      // Feature dropout (never all of them).
      const keep: number[] = [];
      for (let k = 0; k < d.rows.length; k++) if (rand() >= dropout) keep.push(k);
      if (keep.length === 0) keep.push(Math.floor(rand() * d.rows.length));
      h.fill(0);
      for (const k of keep) {
        const o = d.rows[k] * dim, v = d.w[k];
        for (let c = 0; c < dim; c++) h[c] += v * W[o + c];
      }
      let hn = 0;
      for (let c = 0; c < dim; c++) hn += h[c] * h[c];
      hn = Math.max(Math.sqrt(hn), 1e-12);
      for (let r = 0; r < R; r++) {
        let n = 0;
        for (let c = 0; c < dim; c++) n += P[r * dim + c] ** 2;
        qn[r] = Math.max(Math.sqrt(n), 1e-12);
        let dot = 0;
        for (let c = 0; c < dim; c++) {
          q[r * dim + c] = P[r * dim + c] / qn[r];
          dot += (h[c] / hn) * q[r * dim + c];
        }
        logits[r] = s * (dot - (r === d.y ? margin : 0));
      }
      let mx = -Infinity;
      for (let r = 0; r < R; r++) mx = Math.max(mx, logits[r]);
      let z = 0;
      for (let r = 0; r < R; r++) z += Math.exp(logits[r] - mx);
      let best = 0;
      for (let r = 1; r < R; r++) if (logits[r] > logits[best]) best = r;
      if (best === d.y) correct++;
      loss += -(logits[d.y] - mx - Math.log(z)) * classW[d.y];
      // Backward.
      de.fill(0);
      for (let r = 0; r < R; r++) {
        const g = ((Math.exp(logits[r] - mx) / z) - (r === d.y ? 1 : 0)) * classW[d.y];
        // dL/dp_r = s g (e - q_r (q_r·e)) / |p_r|
        let qe = 0;
        for (let c = 0; c < dim; c++) qe += q[r * dim + c] * (h[c] / hn);
        for (let c = 0; c < dim; c++) {
          de[c] += s * g * q[r * dim + c];
          const gp = (s * g * ((h[c] / hn) - q[r * dim + c] * qe)) / qn[r];
          GP[r * dim + c] += gp * gp;
          P[r * dim + c] -= (lr * gp) / (Math.sqrt(GP[r * dim + c]) + 1e-8);
        }
      }
      let ede = 0;
      for (let c = 0; c < dim; c++) ede += (h[c] / hn) * de[c];
      for (let c = 0; c < dim; c++) dh[c] = (de[c] - (h[c] / hn) * ede) / hn;
      // Row-wise Adagrad (one accumulator per row, as in embedding-table trainers): |dh|² once.
      let dh2 = 0;
      for (let c = 0; c < dim; c++) dh2 += dh[c] * dh[c];
      dh2 /= dim;
      for (const k of keep) {
        const row = d.rows[k], o = row * dim, v = d.w[k];
        GW[row] += v * v * dh2;
        const step = (lr * v) / (Math.sqrt(GW[row]) + 1e-8);
        for (let c = 0; c < dim; c++) W[o + c] -= step * dh[c];
      }
    }
    loss /= order.length;
  }
  return { W, loss, acc: correct / order.length };
}

/** The ONNX model for trained weights (see the header for the graph). */
export function exportHashedOnnx(w: HashedWeights, docString = 'lorafleet embedded router encoder'): Uint8Array {
  const g = new GraphBuilder('lorafleet_hashed_encoder');
  const ids = g.input('ids', 'int32', ['batch', 'features']);
  const weights = g.input('weights', 'float', ['batch', 'features']);
  const remap = g.init('remap', w.remap, [w.spec.buckets], 'int32');
  const table = g.init('W', w.rows, [w.nRows, w.dim]);
  const rowIdx = g.node('Gather', [remap, ids], { axis: 0 });
  const emb = g.node('Gather', [table, rowIdx], { axis: 0 });
  const weighted = g.node('Mul', [emb, g.node('Unsqueeze', [weights, g.ints([2])])]);
  const sum = g.node('ReduceSum', [weighted, g.ints([1])], { keepdims: 0 });
  // Each member's block normalised, scaled by 1/√members: the concatenation has norm 1 and a dot
  // product is the members' mean cosine.
  const blocks = g.node('Reshape', [sum, g.ints([0, w.members, w.memberDim])]);
  const sq = g.node('ReduceSum', [g.node('Mul', [blocks, blocks]), g.ints([2])], { keepdims: 1 });
  const norm = g.node('Max', [g.node('Sqrt', [sq]), g.scalar(1e-12)]);
  const unit = g.node('Mul', [g.node('Div', [blocks, norm]), g.scalar(1 / Math.sqrt(w.members))]);
  g.output(g.node('Reshape', [unit, g.ints([0, w.dim])]), 'float', ['batch', w.dim], 'sentence_embedding');
  return g.toModel({ opset: 17, docString, metadata: { 'lorafleet.encoder': 'hashed', 'lorafleet.spec': JSON.stringify(w.spec), 'lorafleet.dim': String(w.dim) } });
}
