// float64 reference for shaders/sample.wgsl: the same procedure with a sort. The only float32
// steps mirrored from the kernel are the ones that decide the ORDER of tokens: the penalized
// logit lp is rounded to float32 (the kernel stores it as f32), temperature/top_p are the f32
// values the params buffer holds. Probabilities, masses and cumulative sums are float64.
// mask (optional): the row's grammar bitmask; disallowed tokens read as -inf logits first
// (shaders/lib/token-mask.ts), so they are never chosen.
import { sampleUniform, type SampleParams } from './sample.ts';
import { maskAllows } from '../lib/token-mask.ts';

const f = Math.fround;

export interface SampleRefResult {
  token: number;
  /** Relative distance of the draw target / top-p target to the nearest cumulative boundary (smaller = more fragile). */
  margin: number;
  kept: number;
}

export function sampleRef(logits: ArrayLike<number>, vocab: number, prm: SampleParams, history: ArrayLike<number> = [], mask?: Uint32Array | null): SampleRefResult {
  const sanitize = (v: number) => (Number.isNaN(v) ? -Infinity : v);
  const san = mask ? (v: number, i: number) => (maskAllows(mask, i) ? sanitize(v) : -Infinity) : (v: number) => sanitize(v);
  const lp = new Float64Array(vocab);
  for (let i = 0; i < vocab; i++) lp[i] = san(logits[i], i);
  const pen = f(prm.repetitionPenalty ?? 1);
  const off = prm.historyOffset ?? 0, len = prm.historyLength ?? 0;
  if (pen !== 1) {
    for (let j = 0; j < len; j++) {
      const t = history[off + j];
      if (t < vocab) { const v = san(logits[t], t); lp[t] = v < 0 ? f(v * pen) : f(v / pen); }
    }
  }
  let am = 0;
  for (let i = 1; i < vocab; i++) if (lp[i] > lp[am]) am = i;
  const T = f(prm.temperature);
  if (!(T > 0) || lp[am] === -Infinity) return { token: am, margin: Infinity, kept: 1 };
  const order = Array.from({ length: vocab }, (_, i) => i).sort((a, b) => lp[b] - lp[a] || a - b);
  const m = lp[order[0]];
  const e = new Float64Array(vocab);
  for (let i = 0; i < vocab; i++) e[i] = Math.exp((lp[i] - m) / T);
  let S = order;
  const k = prm.topK ?? 0;
  if (k > 0 && k < vocab) S = S.slice(0, k);
  let margin = Infinity;
  const topP = f(prm.topP ?? 1);
  if (topP < 1) {
    let zk = 0;
    for (const i of S) zk += e[i];
    const target = topP * zk;
    let cum = 0, n = 0;
    for (const i of S) {
      const before = cum;
      cum += e[i]; n++;
      margin = Math.min(margin, Math.abs(before - target) / zk);
      if (cum >= target) break;
    }
    margin = Math.min(margin, Math.abs(cum - target) / zk);
    S = S.slice(0, Math.max(1, n));
  }
  let zs = 0;
  for (const i of S) zs += e[i];
  const target = sampleUniform(prm.seed ?? 0, prm.step ?? 0) * zs;
  let cum = 0, pick = S[S.length - 1];
  for (const i of S) {
    cum += e[i];
    margin = Math.min(margin, Math.abs(cum - target) / zs);
    if (cum > target) { pick = i; break; }
  }
  return { token: pick, margin, kept: S.length };
}
