// Training rows → token sequences for each objective (TRL / Axolotl conventions).
//
//   completion (cpt)  {"text": "..."}            → BOS + ids + EOS, long documents split into
//                                                  sequence_len pieces; with sample_packing several
//                                                  documents share a block (positions restart, no
//                                                  attention across them, the first token of each is
//                                                  not a target)
//   chat_template     {"messages": [...]}        → the model's chat template (or the engine's plain
//                      {"prompt", "completion"}     fallback + EOS for base models); loss on assistant
//                                                  tokens only unless train_on_inputs
//   pretokenized      {"input_ids", "labels"?}   → as given (labels aligned, -100 ignored)
//   preference        {"prompt","chosen","rejected","system"?} | {"chosen": [msgs], "rejected": [msgs]}
//                      | {"prompt_input_ids","chosen_input_ids","rejected_input_ids"}
//                                                → prompt + completion, labels only on the completion
//
// Every row is validated with zod; an error names the file, the row (1-based line) and the field.
import { z } from 'zod';
import type { ChatMessage } from '../../engine/model/tokenizer.ts';
import { Rng } from '../../shaders/lib/random.ts';
import { TrainConfigError, type DatasetSpec, type TrainConfig } from './config.ts';

export const IGNORE_INDEX = -100;

/** One training sequence: tokens, aligned labels, the first index of each packed document. */
export interface Sequence {
  tokens: number[];
  labels: number[];
  docStarts: number[];
}
export interface PreferencePair {
  chosen: Sequence;
  rejected: Sequence;
}

/** What the loader needs from a tokenizer (engine/model/tokenizer.ts ModelTokenizer has it). */
export interface TrainTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  encodeChat(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): number[];
  readonly chatTemplate: string | null;
  readonly special: { eos: number | null; bos: number | null };
}

export class DataRowError extends TrainConfigError {
  constructor(readonly file: string, readonly row: number, message: string) {
    super(`${file}: row ${row}: ${message}`, file);
    this.name = 'DataRowError';
  }
}

const ids = z.array(z.number().int().nonnegative());
const message = z.object({ role: z.enum(['system', 'user', 'assistant', 'tool']), content: z.string() }).passthrough();
const messagesRow = z.object({ messages: z.array(message).min(1) }).passthrough();
const promptCompletionRow = z.object({ prompt: z.string(), completion: z.string() }).passthrough();
const pretokRow = z.object({ input_ids: ids.min(1), labels: z.array(z.number().int()).optional() }).passthrough();
const prefTextRow = z.object({ prompt: z.string(), chosen: z.string(), rejected: z.string(), system: z.string().optional() }).passthrough();
const prefMsgRow = z.object({ chosen: z.array(message).min(2), rejected: z.array(message).min(2) }).passthrough();
const prefTokRow = z.object({ prompt_input_ids: ids, chosen_input_ids: ids.min(1), rejected_input_ids: ids.min(1) }).passthrough();

/** Rows of a .jsonl (one object a line, blank lines skipped) or .json (an array) file, with line numbers. */
export function parseRows(text: string, file: string): Array<{ row: number; value: unknown }> {
  if (file.endsWith('.json')) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new DataRowError(file, 1, `not valid JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(v)) throw new DataRowError(file, 1, 'a .json dataset must be an array of rows');
    return v.map((value, i) => ({ row: i + 1, value }));
  }
  const out: Array<{ row: number; value: unknown }> = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      out.push({ row: i + 1, value: JSON.parse(line) });
    } catch (e) {
      throw new DataRowError(file, i + 1, `not valid JSON: ${(e as Error).message}`);
    }
  });
  return out;
}

function check<T>(schema: z.ZodType<T>, v: unknown, file: string, row: number, what: string): T {
  const r = schema.safeParse(v);
  if (!r.success) throw new DataRowError(file, row, `not a ${what} row: ${r.error.issues.map((i) => `${i.path.join('.') || '(row)'}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** Longest common prefix length of two id lists. */
function lcp(a: number[], b: number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/**
 * A conversation → ids and labels. Assistant spans are found by rendering the conversation up to
 * each assistant turn (with the generation prompt) and up to its end, and taking the part of the
 * full rendering between the two (so template tokens around a turn are attributed as HF's
 * `return_assistant_tokens_mask` would: the turn's content and its end-of-turn marker).
 */
export function encodeConversation(tok: TrainTokenizer, msgs: ChatMessage[], trainOnInputs: boolean): { tokens: number[]; labels: number[] } {
  const plain = tok.chatTemplate === null;
  const eos = tok.special.eos;
  const full = tok.encodeChat(msgs);
  if (plain && eos !== null) full.push(eos);
  const labels = full.map(() => IGNORE_INDEX);
  msgs.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const pre = lcp(tok.encodeChat(msgs.slice(0, i), { addGenerationPrompt: true }), full);
    const end = i === msgs.length - 1 ? full.length : lcp(tok.encodeChat(msgs.slice(0, i + 1)), full);
    for (let t = pre; t < end; t++) labels[t] = full[t]!;
  });
  return { tokens: full, labels: trainOnInputs ? [...full] : labels };
}

export interface LoadStats {
  rows: number;
  truncated: number;
  dropped: number;
  sequences: number;
  tokens: number;
  /** non-ignored label tokens */
  targets: number;
}

/** Apply excess_length_strategy to one sequence; null = dropped. */
function fit(s: { tokens: number[]; labels: number[] }, max: number, strategy: TrainConfig['excess_length_strategy'], file: string, row: number, st: LoadStats): { tokens: number[]; labels: number[] } | null {
  if (s.tokens.length <= max) return s;
  if (strategy === 'raise') throw new DataRowError(file, row, `${s.tokens.length} tokens > sequence_len ${max} (excess_length_strategy: raise)`);
  if (strategy === 'drop') {
    st.dropped++;
    return null;
  }
  st.truncated++;
  const t = { tokens: s.tokens.slice(0, max), labels: s.labels.slice(0, max) };
  if (!t.labels.slice(1).some((l) => l !== IGNORE_INDEX)) {
    st.truncated--;
    st.dropped++;
    return null; // nothing left to learn from
  }
  return t;
}

/** Documents (cpt) or examples (sft) → training sequences, packed when asked. */
export function pack(items: Array<{ tokens: number[]; labels: number[] }>, seqLen: number, packing: boolean): Sequence[] {
  const out: Sequence[] = [];
  let cur: Sequence | null = null;
  for (const it of items) {
    if (!packing) {
      out.push({ tokens: it.tokens, labels: it.labels, docStarts: [0] });
      continue;
    }
    if (!cur || cur.tokens.length + it.tokens.length > seqLen) {
      cur = { tokens: [], labels: [], docStarts: [] };
      out.push(cur);
    }
    const start = cur.tokens.length;
    cur.docStarts.push(start);
    cur.tokens.push(...it.tokens);
    cur.labels.push(...it.labels);
    cur.labels[start] = IGNORE_INDEX; // never predicted from the previous document
  }
  return out;
}

export type Examples = { kind: 'lm'; rows: Array<{ row: number; tokens: number[]; labels: number[] }> } | { kind: 'pref'; rows: Array<{ row: number } & PreferencePair> };

/** One dataset file's rows → examples for `method` (not packed yet). */
export function encodeRows(rows: Array<{ row: number; value: unknown }>, ds: DatasetSpec, file: string, cfg: TrainConfig, tok: TrainTokenizer | null, st: LoadStats): Examples {
  const need = (): TrainTokenizer => {
    if (!tok) throw new DataRowError(file, rows[0]?.row ?? 1, 'text rows need the base model tokenizer');
    return tok;
  };
  const max = cfg.sequence_len;
  const pref = cfg.method === 'dpo' || cfg.method === 'orpo';
  if (pref) {
    const out: Array<{ row: number } & PreferencePair> = [];
    for (const { row, value } of rows) {
      st.rows++;
      const v = value as Record<string, unknown>;
      let prompt: number[], chosen: number[], rejected: number[];
      if (v && typeof v === 'object' && 'chosen_input_ids' in v) {
        const r = check(prefTokRow, v, file, row, 'pretokenized preference');
        [prompt, chosen, rejected] = [r.prompt_input_ids, r.chosen_input_ids, r.rejected_input_ids];
      } else {
        const t = need();
        let pm: ChatMessage[], c: ChatMessage[], rj: ChatMessage[];
        if (v && typeof v === 'object' && Array.isArray(v.chosen)) {
          const r = check(prefMsgRow, v, file, row, 'preference (messages)');
          pm = r.chosen.slice(0, -1) as ChatMessage[];
          c = r.chosen as ChatMessage[];
          rj = r.rejected as ChatMessage[];
          if (c.at(-1)!.role !== 'assistant' || rj.at(-1)!.role !== 'assistant') throw new DataRowError(file, row, 'chosen and rejected must end with an assistant message');
          if (JSON.stringify(rj.slice(0, -1)) !== JSON.stringify(pm)) throw new DataRowError(file, row, 'chosen and rejected must share the prompt messages');
        } else {
          const r = check(prefTextRow, v, file, row, 'preference');
          pm = [...(r.system ? [{ role: 'system' as const, content: r.system }] : []), { role: 'user', content: r.prompt }];
          c = [...pm, { role: 'assistant', content: r.chosen }];
          rj = [...pm, { role: 'assistant', content: r.rejected }];
        }
        const ce = encodeConversation(t, c, false), re = encodeConversation(t, rj, false);
        const p = Math.min(ce.labels.findIndex((l) => l !== IGNORE_INDEX), re.labels.findIndex((l) => l !== IGNORE_INDEX));
        prompt = ce.tokens.slice(0, p);
        chosen = ce.tokens.slice(p);
        rejected = re.tokens.slice(p);
      }
      const local = emptyStats();
      const mk = (comp: number[]) => fit({ tokens: [...prompt, ...comp], labels: [...prompt.map(() => IGNORE_INDEX), ...comp] }, max, cfg.excess_length_strategy, file, row, local);
      const a = mk(chosen);
      const b = mk(rejected);
      if (!a || !b) {
        st.dropped++;
        continue;
      }
      if (local.truncated) st.truncated++;
      out.push({ row, chosen: { ...a, docStarts: [0] }, rejected: { ...b, docStarts: [0] } });
    }
    return { kind: 'pref', rows: out };
  }
  const out: Array<{ row: number; tokens: number[]; labels: number[] }> = [];
  for (const { row, value } of rows) {
    st.rows++;
    const v = value as Record<string, unknown>;
    const type = ds.type ?? (v && typeof v === 'object' ? ('input_ids' in v ? 'pretokenized' : 'messages' in v || 'completion' in v ? 'chat_template' : 'completion') : 'completion');
    if (type === 'pretokenized') {
      const r = check(pretokRow, v, file, row, 'pretokenized');
      const labels = r.labels ?? [...r.input_ids];
      if (labels.length !== r.input_ids.length) throw new DataRowError(file, row, `labels has ${labels.length} entries, input_ids ${r.input_ids.length}`);
      if (labels.some((l) => l !== IGNORE_INDEX && l < 0)) throw new DataRowError(file, row, 'labels: negative id other than -100');
      const f = fit({ tokens: r.input_ids, labels }, max, cfg.excess_length_strategy, file, row, st);
      if (f) out.push({ row, ...f });
    } else if (type === 'completion') {
      const field = ds.field ?? 'text';
      const r = check(z.object({ [field]: z.string().min(1) }).passthrough(), v, file, row, `completion ("${field}")`);
      const t = need();
      const tokens = t.encode(r[field] as string);
      if (t.special.eos !== null) tokens.push(t.special.eos);
      if (cfg.method === 'cpt') {
        // split long documents into sequence_len pieces (each its own document)
        for (let s = 0; s < tokens.length; s += max) {
          const piece = tokens.slice(s, s + max);
          if (piece.length >= 2) out.push({ row, tokens: piece, labels: [...piece] });
        }
      } else {
        const f = fit({ tokens, labels: [...tokens] }, max, cfg.excess_length_strategy, file, row, st);
        if (f) out.push({ row, ...f });
      }
    } else {
      const t = need();
      let enc: { tokens: number[]; labels: number[] };
      if (v && typeof v === 'object' && 'messages' in v) {
        const r = check(messagesRow, v, file, row, 'chat (messages)');
        if (!r.messages.some((m) => m.role === 'assistant')) throw new DataRowError(file, row, 'messages: no assistant turn to learn from');
        enc = encodeConversation(t, r.messages as ChatMessage[], cfg.train_on_inputs);
      } else {
        const r = check(promptCompletionRow, v, file, row, 'prompt/completion');
        const p = t.encode(r.prompt);
        const comp = t.encode(r.completion, { addSpecialTokens: false });
        if (t.special.eos !== null) comp.push(t.special.eos);
        enc = { tokens: [...p, ...comp], labels: [...(cfg.train_on_inputs ? p : p.map(() => IGNORE_INDEX)), ...comp] };
      }
      const f = fit(enc, max, cfg.excess_length_strategy, file, row, st);
      if (f) out.push({ row, ...f });
    }
  }
  return { kind: 'lm', rows: out };
}

/** Fisher–Yates with the project's PRNG. */
export function shuffled<T>(a: T[], seed: number): T[] {
  const out = [...a];
  const rng = new Rng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export function emptyStats(): LoadStats {
  return { rows: 0, truncated: 0, dropped: 0, sequences: 0, tokens: 0, targets: 0 };
}

export type TrainItems = { kind: 'lm'; items: Sequence[] } | { kind: 'pref'; items: PreferencePair[] };

/** Examples → the items the batcher draws from (sequences for lm, packed if asked; pairs for preference). */
export function toItems(ex: Examples, cfg: TrainConfig, st: LoadStats): TrainItems {
  if (ex.kind === 'pref') {
    for (const p of ex.rows) {
      st.sequences += 2;
      st.tokens += p.chosen.tokens.length + p.rejected.tokens.length;
    }
    return { kind: 'pref', items: ex.rows.map(({ chosen, rejected }) => ({ chosen, rejected })) };
  }
  const seqs = pack(ex.rows, cfg.sequence_len, cfg.sample_packing ?? cfg.method === 'cpt');
  for (const s of seqs) {
    st.sequences++;
    st.tokens += s.tokens.length;
    st.targets += s.labels.slice(1).filter((l) => l !== IGNORE_INDEX).length;
  }
  return { kind: 'lm', items: seqs };
}
