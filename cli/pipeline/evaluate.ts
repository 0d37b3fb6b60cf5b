// Held-out evaluation of every adapter against the un-adapted Domain-Base, through the engine's
// public chat API (the same path `lorafleet serve` answers on), with constrained decoding where
// the task has a fixed form:
//   classifier  guided_choice = the row's label set             → accuracy
//   tool        tools + tool_choice "required" (one call)         → validity (name known + arguments
//               validate against the tool's JSON Schema, ajv), name exact, arguments exact
//   ner         guided_regex of the entity list (nerRegex)        → entity F1 on (type, text, start, end)
//               and on (type, text)
//   chat        greedy answer, unconstrained                     → exact / substring match of the
//               reference answer (perplexity comes from the trainer's held-out eval, step 0 vs last)
// Requests of one model are sent together, so the scheduler batches them as a server would.
import Ajv from 'ajv';
import type { Engine } from '../../engine/api/types.ts';
import { SYSTEM, parseToolCall, type SetRow, type LabelSets } from './sets.ts';

export interface ToolDef {
  name: string;
  description?: string;
  parameters?: Record<string, unknown>;
}

export interface TaskScores {
  n: number;
  [metric: string]: number;
}

export interface Example {
  input: string;
  expected: string;
  got: string;
}

const norm = (s: string) => s.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim();
const lastUser = (r: SetRow) => [...r.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
const reference = (r: SetRow) => [...r.messages].reverse().find((m) => m.role === 'assistant')?.content ?? '';
const prompt = (r: SetRow) => r.messages.filter((m) => m.role === 'system' || m.role === 'user').map((m) => ({ role: m.role as 'system' | 'user', content: m.content }));

async function all<T, R>(xs: T[], f: (x: T) => Promise<R>): Promise<R[]> {
  return Promise.all(xs.map(f));
}

export async function evalClassifier(engine: Engine, model: string, rows: SetRow[], labelSets: LabelSets, examples?: Example[]): Promise<TaskScores> {
  const res = await all(rows, async (r) => {
    const labels = labelSets[r.label_set ?? ''] ?? [];
    const c = await engine.chat.completions.create({ model, messages: prompt(r), guided_choice: labels, temperature: 0, max_tokens: 16 });
    return { got: (c.choices[0]!.message.content ?? '').trim(), want: r.label ?? reference(r).trim(), inSet: labels.includes((c.choices[0]!.message.content ?? '').trim()), r };
  });
  res.slice(0, 4).forEach((x) => examples?.push({ input: lastUser(x.r), expected: x.want, got: x.got }));
  return { n: res.length, accuracy: res.filter((x) => x.got === x.want).length / Math.max(1, res.length), in_label_set: res.filter((x) => x.inSet).length / Math.max(1, res.length) };
}

export async function evalTool(engine: Engine, model: string, rows: SetRow[], tools: ToolDef[], opts: { constrained?: boolean } = {}, examples?: Example[]): Promise<TaskScores> {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validators = new Map(tools.map((t) => [t.name, ajv.compile(t.parameters ?? { type: 'object' })]));
  const callRows = rows.filter((r) => parseToolCall(reference(r)));
  const constrained = opts.constrained !== false;
  const res = await all(callRows, async (r) => {
    const want = parseToolCall(reference(r))!;
    const body = {
      model, messages: prompt(r), temperature: 0, max_tokens: 96,
      ...(constrained ? { tools: tools.map((t) => ({ type: 'function' as const, function: t })), tool_choice: 'required' as const, parallel_tool_calls: false } : {}),
    };
    const c = await engine.chat.completions.create(body as Parameters<Engine['chat']['completions']['create']>[0] & { stream?: false });
    const msg = c.choices[0]!.message;
    let call: { name: string; arguments: Record<string, unknown> } | null = null;
    if (msg.tool_calls?.length) {
      try {
        call = { name: msg.tool_calls[0]!.function.name, arguments: JSON.parse(msg.tool_calls[0]!.function.arguments) as Record<string, unknown> };
      } catch {
        call = null;
      }
    } else call = parseToolCall(msg.content ?? '');
    const v = call ? validators.get(call.name) : undefined;
    const valid = !!call && !!v && (v(call.arguments) as boolean);
    return { r, want, call, valid, complete: c.choices[0]!.finish_reason !== 'length', name: call?.name === want.name, args: !!call && call.name === want.name && JSON.stringify(sortKeys(call.arguments)) === JSON.stringify(sortKeys(want.arguments)) };
  });
  res.slice(0, 4).forEach((x) => examples?.push({ input: lastUser(x.r), expected: JSON.stringify(x.want), got: x.call ? JSON.stringify(x.call) : '(no call)' }));
  const n = Math.max(1, res.length);
  return { n: res.length, validity: res.filter((x) => x.valid).length / n, complete: res.filter((x) => x.complete).length / n, name_exact: res.filter((x) => x.name).length / n, args_exact: res.filter((x) => x.args).length / n, skipped_no_tool_rows: rows.length - callRows.length };
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  return v;
}

type Ent = { type: string; text: string; start: number; end: number };
export function entityF1(pred: Ent[][], gold: Ent[][], key: (e: Ent) => string): { precision: number; recall: number; f1: number } {
  let tp = 0, np = 0, ng = 0;
  pred.forEach((p, i) => {
    const g = new Map<string, number>();
    for (const e of gold[i]!) g.set(key(e), (g.get(key(e)) ?? 0) + 1);
    ng += gold[i]!.length;
    np += p.length;
    for (const e of p) {
      const k = key(e);
      const c = g.get(k) ?? 0;
      if (c > 0) {
        tp++;
        g.set(k, c - 1);
      }
    }
  });
  const precision = np ? tp / np : 0;
  const recall = ng ? tp / ng : 0;
  return { precision, recall, f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0 };
}

/**
 * The entity list as a regex, spelled as the data engine writes it (compact JSON, keys in order):
 * [{"type":"SERVICE","text":"scheduler","start":10,"end":19}, …]. A regex rather than a JSON schema:
 * the schema grammar writes XGrammar's `", "` / `": "` separators, the regex pins the training spelling.
 */
export function nerRegex(types: string[], maxItems = 6): string {
  const item = `\\{"type":"(${types.join('|')})","text":"[^"\\\\]{1,48}","start":[0-9]{1,4},"end":[0-9]{1,4}\\}`;
  return `\\[(${item}(,${item}){0,${maxItems - 1}})?\\]`;
}

export async function evalNer(engine: Engine, model: string, rows: SetRow[], types: string[], examples?: Example[]): Promise<TaskScores> {
  const regex = nerRegex(types);
  const res = await all(rows, async (r) => {
    const c = await engine.chat.completions.create({ model, messages: prompt(r), temperature: 0, max_tokens: 200, guided_regex: regex });
    const text = c.choices[0]!.message.content ?? '';
    let ents: Ent[] = [];
    let parsed = false;
    try {
      const v = JSON.parse(text) as unknown;
      if (Array.isArray(v)) {
        ents = v.filter((e): e is Ent => !!e && typeof e === 'object' && typeof (e as Ent).type === 'string' && typeof (e as Ent).text === 'string');
        parsed = true;
      }
    } catch {
      /* unparsed: no entities (counted in parse_rate) */
    }
    let gold: Ent[] = r.entities ?? [];
    if (!r.entities) {
      try {
        gold = JSON.parse(reference(r)) as Ent[];
      } catch {
        gold = [];
      }
    }
    return { r, ents, gold, parsed, text };
  });
  res.slice(0, 4).forEach((x) => examples?.push({ input: lastUser(x.r), expected: JSON.stringify(x.gold), got: x.text }));
  const strict = entityF1(res.map((x) => x.ents), res.map((x) => x.gold), (e) => `${e.type}\0${e.text}\0${e.start}\0${e.end}`);
  const loose = entityF1(res.map((x) => x.ents), res.map((x) => x.gold), (e) => `${e.type}\0${e.text}`);
  return { n: res.length, f1: strict.f1, precision: strict.precision, recall: strict.recall, f1_type_text: loose.f1, parse_rate: res.filter((x) => x.parsed).length / Math.max(1, res.length) };
}

export async function evalChat(engine: Engine, model: string, rows: SetRow[], examples?: Example[]): Promise<TaskScores> {
  const res = await all(rows, async (r) => {
    const c = await engine.chat.completions.create({ model, messages: prompt(r), temperature: 0, max_tokens: 64 });
    const got = c.choices[0]!.message.content ?? '';
    const want = reference(r);
    return { r, got, want, exact: norm(got) === norm(want), sub: norm(got).includes(norm(want)) || (norm(got).length > 8 && norm(want).includes(norm(got))) };
  });
  res.slice(0, 4).forEach((x) => examples?.push({ input: lastUser(x.r), expected: x.want, got: x.got }));
  const n = Math.max(1, res.length);
  return { n: res.length, exact: res.filter((x) => x.exact).length / n, substring: res.filter((x) => x.sub).length / n };
}

export { SYSTEM };
