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
    /** Text past this many characters is not featurised. */
    maxChars: z.number().int().positive().default(1000),
    /** At most this many distinct features per text (the ONNX input's second dimension). */
    maxFeatures: z.number().int().positive().default(512),
  })
  .strict();
export type FeatureSpec = z.infer<typeof FeatureSpecSchema>;

export function defaultFeatureSpec(buckets = 1 << 16, over: Partial<FeatureSpec> = {}): FeatureSpec {
  return FeatureSpecSchema.parse({ buckets, ...over });
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

/** Words of a text and, per word, whether it is in the payload (see payloadWeight). */
export function splitPayload(text: string): { words: string[]; payload: boolean[] } {
  const t = text.normalize('NFKC').toLowerCase();
  const out: string[] = [];
  const payload: boolean[] = [];
  let inQuote = false;
  let afterColon = false;
  // Tokens: words, quotes and colons, in order.
  for (const m of t.matchAll(/[\p{L}\p{N}]+(?:[._'’-][\p{L}\p{N}]+)*|["“”]|:(?!\d)/gu)) {
    const tok = m[0];
    if (tok === ':') {
      if (!afterColon && !inQuote && out.length >= 2) afterColon = true;
    } else if (tok === '"' || tok === '“' || tok === '”') inQuote = !inQuote;
    else {
      out.push(tok);
      payload.push(afterColon || inQuote);
    }
  }
  return { words: out, payload };
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
  const { words: ws, payload } = splitPayload(text.slice(0, spec.maxChars));
  for (let i = 0; i < ws.length; i++) {
    const w = ws[i];
    const iw = (/[\d._'’-]/.test(w) ? spec.identWeight : 1) * (payload[i] ? spec.payloadWeight : 1);
    add(`w:${w}`, spec.wordWeight * iw);
    // Shape of tokens with digits (error codes, times): "hl-0000".
    if (/\d/.test(w)) add(`s:${w.replace(/\d/g, '0')}`, spec.wordWeight * 0.5);
    const parts = w.split(/[._'’-]/);
    if (parts.length > 1) for (const p of parts) add(`w:${p}`, spec.wordWeight * 0.5);
    if (i > 0) add(`b:${ws[i - 1]} ${w}`, spec.bigramWeight);
    const padded = `<${w}>`;
    for (const n of spec.charNgrams)
      for (let j = 0; j + n <= padded.length; j++) add(`c:${padded.slice(j, j + n)}`, spec.charWeight * iw);
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
