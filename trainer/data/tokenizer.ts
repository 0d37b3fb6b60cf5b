import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

/** What the chunker needs from a tokenizer: a token count in the model's own tokens. */
export interface TokenCounter {
  count(text: string): number;
  readonly name: string;
}

/** Load the model's tokenizer from a directory holding tokenizer.json and tokenizer_config.json (or from the tokenizer.json path). */
export async function loadTokenizer(path: string): Promise<TokenCounter> {
  const dir = path.endsWith('.json') ? path.replace(/[\\/][^\\/]+$/, '') : path;
  const tj = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')) as object;
  let cfg: object = {};
  try {
    cfg = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')) as object;
  } catch {
    /* tokenizer_config.json is optional */
  }
  const tok = new Tokenizer(tj, cfg);
  const cache = new Map<string, number>();
  return {
    name: dir,
    count(text: string): number {
      const hit = cache.get(text);
      if (hit !== undefined) return hit;
      const n = tok.encode(text, { add_special_tokens: false }).ids.length;
      if (cache.size > 50_000) cache.clear();
      cache.set(text, n);
      return n;
    },
  };
}

/** Fallback when no tokenizer is given: a rough count (≈ 4 chars per token). Not the model's tokens — the CLI warns. */
export const approxCounter: TokenCounter = {
  name: 'approx-chars/4',
  count: (t: string) => Math.ceil(t.length / 4),
};
