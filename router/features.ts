/**
 * Hashed text features for the embedded encoder: words, word bigrams and character n-grams of each
 * word, each hashed (FNV-1a, 32-bit) into `buckets` slots. The ONNX graph maps a slot to a learned
 * row and sums the rows (router/hashed.ts), so this is the encoder's "tokenizer". Pure JS, the same
 * numbers in Node and in the browser.
 */
import { z } from 'zod';

export const FeatureSpecSchema = z
  .object({
    buckets: z.number().int().min(256).max(1 << 24),
    charNgrams: z.array(z.number().int().min(2).max(8)).default([3, 4, 5]),
    wordWeight: z.number().positive().default(1),
    bigramWeight: z.number().nonnegative().default(0.7),
    charWeight: z.number().nonnegative().default(0.3),
    /** Factor on identifier-like tokens (with digits or inner . _ - : li.wei, api-gateway, hl-3107): names
     *  occur in every kind of request, so their route signal is mostly noise. */
    identWeight: z.number().nonnegative().default(1),
    /** Factor on the payload of an instruction-style request — the words after the first ':' (when at
     *  least two words come before it) or inside quotes: "what is the sentiment of: <payload>". The
     *  instruction carries the intent; the payload is what it operates on. */
    payloadWeight: z.number().nonnegative().default(0.5),
    /** Payload words as features of their own ("p:" words, bigrams and character n-grams) instead of
     *  the same features as the words elsewhere: a bare request ("restart notifier") then shares nothing
     *  with the payload of an instruction that quotes it ("what is the intent of: restart notifier"). */
    payloadSeparate: z.boolean().default(false),
    /** Weight of the request-form features (0 = none): the first word and the first two words of the
     *  instruction, whether a payload follows (after ':' or in quotes) and how, a question mark, and the
     *  instruction's length bucket. The form says "classify/extract this" vs "do this" vs "tell me". */
    formWeight: z.number().nonnegative().default(0),
    /** Expand the contractions of question words, pronouns and negations before featurising
     *  (what's → what is, how's → how is, isn't → is not, I'm → I am): the same request typed both
     *  ways then has the same features. */
    contractions: z.boolean().default(false),
    /** Text past this many characters is not featurised. */
    maxChars: z.number().int().positive().default(1000),
    /** At most this many distinct features per text (the ONNX input's second dimension). */
    maxFeatures: z.number().int().positive().default(512),
  })
  .strict();
export type FeatureSpec = z.infer<typeof FeatureSpecSchema>;

/**
 * The features a new encoder gets (`route build`). The schema's defaults are the first encoder's
 * features, so router files written before these options existed keep featurising as they were
 * trained; new files carry every option explicitly. Chosen on the dev sets (router/README.md).
 */
export const NEW_ENCODER_FEATURES: Partial<FeatureSpec> = { payloadSeparate: true, formWeight: 1, contractions: true };

export function defaultFeatureSpec(buckets = 1 << 16, over: Partial<FeatureSpec> = {}): FeatureSpec {
  return FeatureSpecSchema.parse({ buckets, ...NEW_ENCODER_FEATURES, ...over });
}

export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const WORD = /[\p{L}\p{N}]+(?:[._'’-][\p{L}\p{N}]+)*/gu;

/** Lower-cased, NFKC-normalised word tokens (compound tokens such as `li.wei`, `hl-3107` kept whole). */
export function words(text: string, maxChars = Infinity): string[] {
  const t = text.slice(0, maxChars).normalize('NFKC').toLowerCase();
  return t.match(WORD) ?? [];
}

const CONTRACTIONS: [RegExp, string][] = [
  [/\b(what|how|who|where|when|why|it|that|there|here|he|she)['’]s\b/g, '$1 is'],
  [/\blet['’]s\b/g, 'let us'],
  [/\b(can)['’]t\b/g, '$1 not'],
  [/\bwon['’]t\b/g, 'will not'],
  [/\b(\w+)n['’]t\b/g, '$1 not'],
  [/\b(i)['’]m\b/g, '$1 am'],
  [/\b(you|we|they|what|who)['’]re\b/g, '$1 are'],
  [/\b(i|you|we|they|what|who)['’]ve\b/g, '$1 have'],
  [/\b(i|you|we|they|he|she|it|that)['’]ll\b/g, '$1 will'],
  [/\b(i|you|we|they|he|she)['’]d\b/g, '$1 would'],
];

/** Lower-cased text with the contractions of CONTRACTIONS expanded. */
export function expandContractions(lower: string): string {
  let t = lower;
  for (const [re, to] of CONTRACTIONS) t = t.replace(re, to);
  return t;
}

/** Words of a text and, per word, whether it is in the payload (see payloadWeight); `how` says how a
 *  payload was marked: 'colon', 'quote' or 'none'. */
export function splitPayload(text: string, contractions = false): { words: string[]; payload: boolean[]; how: 'colon' | 'quote' | 'none' } {
  const t0 = text.normalize('NFKC').toLowerCase();
  const t = contractions ? expandContractions(t0) : t0;
  const out: string[] = [];
  const payload: boolean[] = [];
  let inQuote = false;
  let afterColon = false;
  let how: 'colon' | 'quote' | 'none' = 'none';
  // Tokens: words, quotes and colons, in order.
  for (const m of t.matchAll(/[\p{L}\p{N}]+(?:[._'’-][\p{L}\p{N}]+)*|["“”]|:(?!\d)/gu)) {
    const tok = m[0];
    if (tok === ':') {
      if (!afterColon && !inQuote && out.length >= 2) afterColon = true;
    } else if (tok === '"' || tok === '“' || tok === '”') inQuote = !inQuote;
    else {
      out.push(tok);
      payload.push(afterColon || inQuote);
      if (how === 'none' && (afterColon || inQuote)) how = inQuote ? 'quote' : 'colon';
    }
  }
  return { words: out, payload, how };
}

export interface Features {
  ids: Int32Array;
  weights: Float32Array;
}

/** Distinct hashed features of one text with their summed weights. Empty when the text has no word. */
export function featurize(text: string, spec: FeatureSpec): Features {
  const acc = new Map<number, number>();
  const add = (f: string, w: number) => {
    if (w === 0) return;
    const id = fnv1a(f) % spec.buckets;
    acc.set(id, (acc.get(id) ?? 0) + w);
  };
  const { words: ws, payload, how } = splitPayload(text.slice(0, spec.maxChars), spec.contractions);
  for (let i = 0; i < ws.length; i++) {
    const w = ws[i];
    const sep = spec.payloadSeparate && payload[i];
    const ns = sep ? 'p' : '';
    const ident = /[\d._'’-]/.test(w);
    const iw = (ident ? spec.identWeight : 1) * (payload[i] ? spec.payloadWeight : 1);
    add(`${ns}w:${w}`, spec.wordWeight * iw);
    // Shape of tokens with digits (error codes, times): "hl-0000".
    if (/\d/.test(w)) add(`${ns}s:${w.replace(/\d/g, '0')}`, spec.wordWeight * 0.5);
    const parts = w.split(/[._'’-]/);
    if (parts.length > 1) for (const p of parts) add(`${ns}w:${p}`, spec.wordWeight * 0.5);
    if (i > 0 && (!spec.payloadSeparate || payload[i - 1] === payload[i])) add(`${ns}b:${ws[i - 1]} ${w}`, spec.bigramWeight);
    const padded = `<${w}>`;
    for (const n of spec.charNgrams)
      for (let j = 0; j + n <= padded.length; j++) add(`${ns}c:${padded.slice(j, j + n)}`, spec.charWeight * iw);
  }
  if (spec.formWeight > 0 && ws.length) {
    // The instruction: the words outside the payload (all of them for a bare request).
    const ins = ws.filter((_, i) => !payload[i]);
    const fw = spec.formWeight;
    if (ins.length) {
      add(`f:first:${ins[0]}`, fw);
      if (ins.length > 1) add(`f:first2:${ins[0]} ${ins[1]}`, fw);
    }
    add(`f:payload:${how}`, fw);
    add(`f:len:${ins.length <= 2 ? 'le2' : ins.length <= 5 ? 'le5' : ins.length <= 10 ? 'le10' : 'gt10'}`, fw * 0.5);
    if (/\?\s*$/.test(text)) add('f:q', fw * 0.5);
  }
  let entries = [...acc.entries()];
  if (entries.length > spec.maxFeatures) {
    // Keep the heaviest features; ties by id so the cut is deterministic.
    entries.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    entries = entries.slice(0, spec.maxFeatures);
  }
  entries.sort((a, b) => a[0] - b[0]);
  return { ids: Int32Array.from(entries, (e) => e[0]), weights: Float32Array.from(entries, (e) => e[1]) };
}

/** Pads a batch of feature lists to one [N, L] pair of arrays (padding has weight 0). */
export function packBatch(feats: Features[]): { ids: Int32Array; weights: Float32Array; n: number; len: number } {
  const len = Math.max(1, ...feats.map((f) => f.ids.length));
  const n = feats.length;
  const ids = new Int32Array(n * len);
  const weights = new Float32Array(n * len);
  feats.forEach((f, i) => {
    ids.set(f.ids, i * len);
    weights.set(f.weights, i * len);
  });
  return { ids, weights, n, len };
}
