// The adapters' datasets, fitted to the model: the data engine writes rows for a chat model with a
// long system prompt (tool list as JSON, every label set, the entity types). A small base model's
// context (stories260K: 512 positions, a 512-token vocabulary, ~2.4 characters per token) cannot
// hold that prompt, and each adapter needs only its own task: so every row gets its adapter's short
// system prompt (SYSTEM below; the demo and the evaluation send the same), and tool calls are
// written exactly as the engine's tool grammar emits them, `<tool_call>{"name": "f", "arguments": {…}}</tool_call>`
// (engine/structured/constraint.ts), so training and constrained decoding agree token for token.
// DPO pairs are split by what their rejected side breaks: tool-call failures → dpo-tool, wrong facts → dpo-chat.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

export const SYSTEM = {
  chat: 'Answer the Harborline operations question.',
  tool: 'Call the Harborline tool for the request.',
  ner: 'Extract the entities as a JSON list of {"type","text","start","end"}.',
  // the label set is the decoder's guided_choice (and what the adapter learns), not prompt text: listing it cost
  // ~70 of a row's ~115 tokens, i.e. most of the classifier's training time
  classifier: (set: string, _labels?: string[]) => `Classify the ${set}.`,
} as const;

export const TOOL_FAILURES = new Set(['extra_property', 'malformed_json', 'missing_required', 'pattern_violation', 'wrong_enum', 'wrong_tool', 'wrong_type', 'wrong_value', 'unneeded_tool_call', 'missing_tool_call']);
export const CHAT_FAILURES = new Set(['hallucinated_fact', 'hallucinated_answer', 'swapped_fact', 'made_up_answer']);

const Msg = z.object({ role: z.enum(['system', 'user', 'assistant', 'tool']), content: z.string() }).passthrough();
const Row = z.object({ messages: z.array(Msg).min(2) }).passthrough();
const Dpo = z.object({ prompt: z.string(), chosen: z.string(), rejected: z.string(), system: z.string().optional() }).passthrough();
const Meta = z.object({ failure: z.string().optional(), kind: z.string().optional() }).passthrough();

export type SetRow = z.infer<typeof Row> & { label?: string; label_set?: string; text?: string; entities?: { type: string; text: string; start: number; end: number }[] };

async function readRows<T>(path: string, schema: z.ZodType<T>): Promise<T[]> {
  const text = await readFile(path, 'utf8');
  const out: T[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${path}: row ${i + 1}: not JSON: ${(e as Error).message}`);
    }
    const r = schema.safeParse(v);
    if (!r.success) throw new Error(`${path}: row ${i + 1}: ${r.error.issues[0]?.path.join('.') || '(row)'}: ${r.error.issues[0]?.message}`);
    out.push(r.data);
  });
  return out;
}
const writeRows = (path: string, rows: unknown[]) => writeFile(path, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));

const CALL = /^\s*<tool_call>([\s\S]*)<\/tool_call>\s*$/;
/**
 * JSON as the engine's grammar generates it (XGrammar's defaults: no newlines, separators ", " and ": " —
 * Python's json.dumps spelling, as Hermes/Qwen tool calls are written), so SFT targets and constrained
 * decoding agree token for token.
 */
export function grammarJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(grammarJson).join(', ')}]`;
  if (v && typeof v === 'object') return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${JSON.stringify(k)}: ${grammarJson(x)}`).join(', ')}}`;
  return JSON.stringify(v);
}
/** A tool call in the tool grammar's exact spelling; null if `s` is not one well-formed call. */
export function canonicalToolCall(s: string): string | null {
  const m = CALL.exec(s);
  if (!m) return null;
  try {
    const v = JSON.parse(m[1]!) as { name?: unknown; arguments?: unknown };
    if (typeof v.name !== 'string' || !v.arguments || typeof v.arguments !== 'object') return null;
    return `<tool_call>{"name": ${JSON.stringify(v.name)}, "arguments": ${grammarJson(v.arguments)}}</tool_call>`;
  } catch {
    return null;
  }
}
export function parseToolCall(s: string): { name: string; arguments: Record<string, unknown> } | null {
  const c = canonicalToolCall(s);
  if (!c) return null;
  return JSON.parse(CALL.exec(c)![1]!) as { name: string; arguments: Record<string, unknown> };
}

function withSystem(r: SetRow, system: string): SetRow {
  return { ...r, messages: [{ role: 'system', content: system }, ...r.messages.filter((m) => m.role !== 'system')] };
}

export interface LabelSets {
  [set: string]: string[];
}

export interface BuildSetsResult {
  counts: Record<string, { train: number; val: number }>;
  labelSets: LabelSets;
}

/**
 * Write <out>/{chat,tool,classifier,ner}.{train,val}.jsonl, dpo-tool / dpo-chat .{train,val}.jsonl and
 * cpt.jsonl from the data engine's sets dir (with meta/), its de-duplicated chunks and domain.json.
 */
export async function buildAdapterSets(sets: string, chunksPath: string, domainPath: string, out: string): Promise<BuildSetsResult> {
  await mkdir(out, { recursive: true });
  const domain = JSON.parse(await readFile(domainPath, 'utf8')) as { labelSets?: { name: string; labels: string[] }[] };
  const labelSets: LabelSets = Object.fromEntries((domain.labelSets ?? []).map((l) => [l.name, l.labels]));
  const counts: BuildSetsResult['counts'] = {};
  const both = async (name: string, f: (split: 'train' | 'val') => Promise<unknown[]>) => {
    const c = { train: 0, val: 0 };
    for (const split of ['train', 'val'] as const) {
      const rows = await f(split);
      await writeRows(join(out, `${name}.${split}.jsonl`), rows);
      c[split] = rows.length;
    }
    counts[name] = c;
  };
  const read = (set: string, split: string) => readRows(join(sets, `${set}.${split}.jsonl`), Row) as Promise<SetRow[]>;

  await both('chat', async (s) => (await read('chat', s)).map((r) => withSystem(r, SYSTEM.chat)));
  await both('tool', async (s) =>
    (await read('tool', s)).map((r) => {
      const msgs = r.messages.map((m) => (m.role === 'assistant' ? { ...m, content: canonicalToolCall(m.content) ?? m.content } : m));
      return withSystem({ ...r, messages: msgs }, SYSTEM.tool);
    }),
  );
  await both('ner', async (s) => (await read('ner', s)).map((r) => withSystem(r, SYSTEM.ner)));
  await both('classifier', async (s) => {
    const rows: SetRow[] = [];
    for (const set of Object.keys(labelSets)) {
      const p = join(sets, `classification-${set}.${s}.jsonl`);
      if (!existsSync(p)) continue;
      for (const r of await read(`classification-${set}`, s)) rows.push(withSystem({ ...r, label_set: r.label_set ?? set }, SYSTEM.classifier(set, labelSets[set]!)));
    }
    return rows;
  });
  for (const split of ['train', 'val'] as const) {
    const rows = await readRows(join(sets, `dpo.${split}.jsonl`), Dpo);
    const meta = existsSync(join(sets, 'meta', `dpo.${split}.jsonl`)) ? await readRows(join(sets, 'meta', `dpo.${split}.jsonl`), Meta) : [];
    const tool: unknown[] = [];
    const chat: unknown[] = [];
    rows.forEach((r, i) => {
      const failure = meta[i]?.failure ?? meta[i]?.kind ?? '';
      const isTool = TOOL_FAILURES.has(failure) && (r.system ?? '').includes('tool');
      if (isTool) {
        const chosen = canonicalToolCall(r.chosen);
        if (!chosen) return; // a pair whose chosen side is not a call teaches nothing about calls
        tool.push({ system: SYSTEM.tool, prompt: r.prompt, chosen, rejected: canonicalToolCall(r.rejected) ?? r.rejected });
      } else if (CHAT_FAILURES.has(failure)) chat.push({ system: SYSTEM.chat, prompt: r.prompt, chosen: r.chosen, rejected: r.rejected });
    });
    await writeRows(join(out, `dpo-tool.${split}.jsonl`), tool);
    await writeRows(join(out, `dpo-chat.${split}.jsonl`), chat);
    counts['dpo-tool'] = { ...(counts['dpo-tool'] ?? { train: 0, val: 0 }), [split]: tool.length };
    counts['dpo-chat'] = { ...(counts['dpo-chat'] ?? { train: 0, val: 0 }), [split]: chat.length };
  }
  // CPT: the de-duplicated domain text, one document per chunk (section path as its heading)
  const chunks = (await readFile(chunksPath, 'utf8')).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { text: string; sectionPath?: string[] });
  const cpt = chunks.map((c) => ({ text: `${c.sectionPath?.length ? `# ${c.sectionPath.join(' / ')}\n` : ''}${c.text}` }));
  await writeRows(join(out, 'cpt.jsonl'), cpt);
  counts.cpt = { train: cpt.length, val: 0 };
  return { counts, labelSets };
}
