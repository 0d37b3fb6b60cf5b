// Log-probabilities of sampled tokens (OpenAI `logprobs` / `top_logprobs`, vLLM's default
// "raw_logprobs": log-softmax of the model's logits before temperature, top-p/k or penalties).
// Only requests that ask for them pay: the scheduler returns the row's float32 logits for those
// requests (wantLogits), and the log-softmax and top-k run here on the CPU in float64.
import type { ModelTokenizer } from '../model/tokenizer.ts';

/** One entry of OpenAI's chat `logprobs.content` (also the source of the legacy completions format). */
// TokenLogprob lives in types.ts (public, plain); re-exported here.
import type { TokenLogprob } from './types.ts';
export type { TokenLogprob };

const utf8 = new TextEncoder();

/** log_softmax(logits)[token] and the `top` most likely tokens (ties: lower id first). */
export function logprobsOf(logits: Float32Array, token: number, top: number): { logprob: number; top: Array<[id: number, logprob: number]> } {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const logZ = max + Math.log(sum);
  const best: Array<[number, number]> = [];
  if (top > 0) {
    // a bounded insertion list: top is small (≤ 20)
    for (let i = 0; i < logits.length; i++) {
      const v = logits[i]!;
      if (best.length === top && v <= best[best.length - 1]![1]) continue;
      let j = best.length;
      while (j > 0 && best[j - 1]![1] < v) j--;
      best.splice(j, 0, [i, v]);
      if (best.length > top) best.pop();
    }
  }
  return { logprob: logits[token]! - logZ, top: best.map(([i, v]) => [i, v - logZ]) };
}

/** The OpenAI logprob entry of a sampled token (token strings decoded one id at a time, as vLLM does). */
export function tokenLogprob(tokenizer: ModelTokenizer, logits: Float32Array, token: number, top: number): TokenLogprob {
  const r = logprobsOf(logits, token, top);
  const entry = (id: number, lp: number) => {
    const s = tokenizer.decode([id]);
    return { token: s, logprob: lp, bytes: [...utf8.encode(s)] };
  };
  return { ...entry(token, r.logprob), top_logprobs: r.top.map(([id, lp]) => entry(id, lp)) };
}
