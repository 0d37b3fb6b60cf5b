// A BERT-shaped sentence encoder built as an ONNX graph (router/onnx-build.ts) with random weights,
// plus its float64 reference forward and a WordPiece tokenizer.json — for the router's HF-encoder
// test (tiny sizes) and bench/router (MiniLM-L6 sizes: 6 layers, hidden 384, 12 heads, FFN 1536,
// vocab 30522). Graph per layer, as in HF BertLayer:
//   x = LN(word[ids] + pos[0..T) + type[tt])
//   q,k,v = x·Wq+bq, …  → [B, heads, T, hd];  p = softmax(q·kᵀ/√hd + (1-mask)·-1e4)
//   x = LN(x + (p·v)·Wo + bo);   x = LN(x + gelu(x·W1+b1)·W2 + b2)      (gelu: erf form)
// Output: last_hidden_state [B, T, H].
import { GraphBuilder } from '../../router/onnx-build.ts';
import { prng } from '../../router/hashed.ts';

export interface BertShape {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  ffn: number;
  maxPos: number;
}

export const MINILM_L6: BertShape = { vocab: 30522, hidden: 384, layers: 6, heads: 12, ffn: 1536, maxPos: 512 };

export interface BertWeights {
  shape: BertShape;
  t: Record<string, { data: Float32Array; dims: number[] }>;
}

export function randomBertWeights(shape: BertShape, seed = 1): BertWeights {
  const r = prng(seed);
  const t: BertWeights['t'] = {};
  const rnd = (name: string, dims: number[], scale = 0.05) => {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (r() * 2 - 1) * scale;
    t[name] = { data, dims };
  };
  const ones = (name: string, n: number) => (t[name] = { data: new Float32Array(n).fill(1), dims: [n] });
  const { vocab, hidden: H, ffn: F, maxPos } = shape;
  rnd('word', [vocab, H], 0.5);
  rnd('pos', [maxPos, H], 0.5);
  rnd('type', [2, H], 0.5);
  ones('ln0_g', H);
  rnd('ln0_b', [H], 0.1);
  for (let l = 0; l < shape.layers; l++) {
    for (const m of ['q', 'k', 'v', 'o']) {
      rnd(`l${l}_${m}_w`, [H, H], 1 / Math.sqrt(H));
      rnd(`l${l}_${m}_b`, [H], 0.05);
    }
    rnd(`l${l}_f1_w`, [H, F], 1 / Math.sqrt(H));
    rnd(`l${l}_f1_b`, [F], 0.05);
    rnd(`l${l}_f2_w`, [F, H], 1 / Math.sqrt(F));
    rnd(`l${l}_f2_b`, [H], 0.05);
    ones(`l${l}_ln1_g`, H);
    rnd(`l${l}_ln1_b`, [H], 0.1);
    ones(`l${l}_ln2_g`, H);
    rnd(`l${l}_ln2_b`, [H], 0.1);
  }
  return { shape, t };
}

export function bertOnnx(w: BertWeights): Uint8Array {
  const { hidden: H, heads, layers } = w.shape;
  const hd = H / heads;
  const g = new GraphBuilder('bert_like');
  const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
  const mask = g.input('attention_mask', 'int64', ['batch', 'seq']);
  const tt = g.input('token_type_ids', 'int64', ['batch', 'seq']);
  const W: Record<string, string> = {};
  for (const [k, v] of Object.entries(w.t)) W[k] = g.init(k, v.data, v.dims);
  const seqLen = g.node('Gather', [g.node('Shape', [ids]), g.ints([1])], { axis: 0 }); // [1]
  const seqScalar = g.node('Squeeze', [seqLen, g.ints([0])]);
  const zero = g.init('c_zero', [0], [], 'int64');
  const one = g.init('c_one', [1], [], 'int64');
  const posIds = g.node('Range', [zero, seqScalar, one]); // [T]
  let x = g.node('Add', [g.node('Add', [g.node('Gather', [W.word, ids], { axis: 0 }), g.node('Gather', [W.pos, posIds], { axis: 0 })]), g.node('Gather', [W.type, tt], { axis: 0 })]);
  const ln = (v: string, gam: string, bet: string) => g.node('LayerNormalization', [v, gam, bet], { axis: -1, epsilon: 1e-12 });
  x = ln(x, W.ln0_g, W.ln0_b);
  // (1 - mask) * -1e4 → [B, 1, 1, T]
  const maskF = g.node('Cast', [mask], { to: 1 });
  const bias = g.node('Unsqueeze', [g.node('Mul', [g.node('Sub', [g.scalar(1), maskF]), g.scalar(-1e4)]), g.ints([1, 2])]);
  const split = (v: string) => g.node('Transpose', [g.node('Reshape', [v, g.ints([0, 0, heads, hd])])], { perm: [0, 2, 1, 3] });
  const lin = (v: string, wn: string, bn: string) => g.node('Add', [g.node('MatMul', [v, W[wn]]), W[bn]]);
  for (let l = 0; l < layers; l++) {
    const q = split(lin(x, `l${l}_q_w`, `l${l}_q_b`));
    const k = split(lin(x, `l${l}_k_w`, `l${l}_k_b`));
    const v = split(lin(x, `l${l}_v_w`, `l${l}_v_b`));
    const scores = g.node('Add', [g.node('Mul', [g.node('MatMul', [q, g.node('Transpose', [k], { perm: [0, 1, 3, 2] })]), g.scalar(1 / Math.sqrt(hd))]), bias]);
    const p = g.node('Softmax', [scores], { axis: -1 });
    const ctx = g.node('Reshape', [g.node('Transpose', [g.node('MatMul', [p, v])], { perm: [0, 2, 1, 3] }), g.ints([0, 0, H])]);
    x = ln(g.node('Add', [x, lin(ctx, `l${l}_o_w`, `l${l}_o_b`)]), W[`l${l}_ln1_g`], W[`l${l}_ln1_b`]);
    const h1 = lin(x, `l${l}_f1_w`, `l${l}_f1_b`);
    const gelu = g.node('Mul', [g.node('Mul', [h1, g.scalar(0.5)]), g.node('Add', [g.scalar(1), g.node('Erf', [g.node('Mul', [h1, g.scalar(Math.SQRT1_2)])])])]);
    x = ln(g.node('Add', [x, lin(gelu, `l${l}_f2_w`, `l${l}_f2_b`)]), W[`l${l}_ln2_g`], W[`l${l}_ln2_b`]);
  }
  g.output(x, 'float', ['batch', 'seq', H], 'last_hidden_state');
  return g.toModel({ opset: 17 });
}

function erf(x: number): number {
  // Numerical Recipes' erfc approximation (|error| < 1.2e-7).
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const y = 1 - t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? y : -y;
}

/** float64 forward of one sequence (no padding): last_hidden_state [T, H]. */
export function bertRef(w: BertWeights, ids: number[]): Float64Array[] {
  const { hidden: H, heads, layers, ffn: F } = w.shape;
  const hd = H / heads;
  const T = ids.length;
  const P = (n: string) => w.t[n].data;
  const lnorm = (v: Float64Array, gam: Float32Array, bet: Float32Array) => {
    let m = 0;
    for (const a of v) m += a / v.length;
    let s = 0;
    for (const a of v) s += (a - m) ** 2 / v.length;
    return Float64Array.from(v, (a, i) => ((a - m) / Math.sqrt(s + 1e-12)) * gam[i] + bet[i]);
  };
  const mv = (v: Float64Array, wn: string, bn: string, out: number) => {
    const Wm = P(wn), b = P(bn), n = v.length;
    const r = new Float64Array(out);
    for (let j = 0; j < out; j++) {
      let s = b[j];
      for (let i = 0; i < n; i++) s += v[i] * Wm[i * out + j];
      r[j] = s;
    }
    return r;
  };
  let x = ids.map((id, t) => {
    const v = new Float64Array(H);
    for (let c = 0; c < H; c++) v[c] = P('word')[id * H + c] + P('pos')[t * H + c] + P('type')[c];
    return lnorm(v, P('ln0_g'), P('ln0_b'));
  });
  for (let l = 0; l < layers; l++) {
    const q = x.map((v) => mv(v, `l${l}_q_w`, `l${l}_q_b`, H));
    const k = x.map((v) => mv(v, `l${l}_k_w`, `l${l}_k_b`, H));
    const vv = x.map((v) => mv(v, `l${l}_v_w`, `l${l}_v_b`, H));
    const ctx = x.map(() => new Float64Array(H));
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < T; i++) {
        const s = new Float64Array(T);
        let mx = -Infinity;
        for (let j = 0; j < T; j++) {
          let d = 0;
          for (let c = 0; c < hd; c++) d += q[i][h * hd + c] * k[j][h * hd + c];
          s[j] = d / Math.sqrt(hd);
          mx = Math.max(mx, s[j]);
        }
        let z = 0;
        for (let j = 0; j < T; j++) z += (s[j] = Math.exp(s[j] - mx));
        for (let j = 0; j < T; j++) for (let c = 0; c < hd; c++) ctx[i][h * hd + c] += (s[j] / z) * vv[j][h * hd + c];
      }
    x = x.map((v, i) => {
      const o = mv(ctx[i], `l${l}_o_w`, `l${l}_o_b`, H);
      const a = lnorm(Float64Array.from(v, (e, c) => e + o[c]), P(`l${l}_ln1_g`), P(`l${l}_ln1_b`));
      const h1 = mv(a, `l${l}_f1_w`, `l${l}_f1_b`, F).map((e) => 0.5 * e * (1 + erf(e * Math.SQRT1_2)));
      const h2 = mv(h1, `l${l}_f2_w`, `l${l}_f2_b`, H);
      return lnorm(Float64Array.from(a, (e, c) => e + h2[c]), P(`l${l}_ln2_g`), P(`l${l}_ln2_b`));
    });
  }
  return x;
}

/** A BERT-style WordPiece tokenizer.json over the given words (ids: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3, then words, then ##suffixes). */
export function wordpieceTokenizerJson(words: string[]): object {
  const vocab: Record<string, number> = { '[PAD]': 0, '[UNK]': 1, '[CLS]': 2, '[SEP]': 3 };
  for (const w of words) if (!(w in vocab)) vocab[w] = Object.keys(vocab).length;
  const special = (content: string, id: number) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special('[PAD]', 0), special('[UNK]', 1), special('[CLS]', 2), special('[SEP]', 3)],
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } }],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] } },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}
