/**
 * Format: Q&A pairs + chunks + the domain spec → the task sets, each row zod-validated, split train/validation
 * with no leakage.
 *   chat            {"messages":[system,user,assistant]}                      domain Q&A and general chat
 *   tool            {"messages":[system(with tool schemas),user,assistant]}   target "<tool_call>{…}</tool_call>" or a plain answer
 *   classification-<set> {"messages":[…], "text", "label", "label_set"}
 *   ner             {"messages":[…], "text", "entities":[{type,text,start,end}]}
 *   dpo             {"system","prompt","chosen","rejected"}                   rejected = realistic failure
 * Splits: rows are clustered (shared source chunk, or near-duplicate content by MinHash-LSH at Jaccard ≥ 0.8) and
 * whole clusters go to one side, so no validation row is a near-duplicate of a training row; a final audit checks it.
 */
import type { Domain, LabelSet, ToolSpec } from './domain.ts';
import { corpusEntities, entityRegex } from './domain.ts';
import { NearDupIndex, dedupe } from './dedupe.ts';
import { ChatRow, DpoRow, type Message, type NerEntity, toolCallText, Validators } from './rows.ts';
import type { Chunk, QAPair, Rejection } from './types.ts';
import { fnv1a, normalizeForHash, pick, rng, shuffle } from './util.ts';
import type { z } from 'zod';

export type TaskName = string;
export interface Row {
  row: Record<string, unknown>;
  /** rows sharing a group never straddle the split */
  group: string;
  /** text used for near-duplicate checks */
  content: string;
  meta: { kind: string; failure?: string; label?: string };
}
export interface TaskSet {
  name: TaskName;
  train: Record<string, unknown>[];
  val: Record<string, unknown>[];
  labels?: Record<string, number>;
  failures?: Record<string, number>;
  kinds: Record<string, number>;
}
export interface FormatOptions {
  seed?: number;
  valFraction?: number;
  /** cap on rows generated per (template × entity type) for tool/classification templates */
  perTemplate?: number;
  maxPerLabel?: number;
  maxNer?: number;
}
export interface FormatResult {
  sets: TaskSet[];
  rejected: Rejection[];
  duplicatesRemoved: { task: string; exact: number; near: number }[];
  leakage: { task: string; movedToTrain: number; auditViolations: number }[];
}

/** The text a row is compared on for near-duplicates: every non-system turn (or prompt + chosen for preference rows). */
export function rowContent(row: Record<string, unknown>): string {
  if (Array.isArray(row.messages))
    return (row.messages as Message[])
      .filter((m) => m.role !== 'system')
      .map((m) => m.content)
      .join('\n');
  return `${String(row.prompt ?? '')}\n${String(row.chosen ?? '')}`;
}

function fill(tpl: string, slots: Record<string, string>): string {
  return tpl.replace(/\{([A-Z_]+)\}/g, (m, k: string) => slots[k] ?? m);
}
function fillArgs(v: unknown, slots: Record<string, string>): unknown {
  if (typeof v === 'string') return fill(v, slots);
  if (Array.isArray(v)) return v.map((x) => fillArgs(x, slots));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fillArgs(x, slots)]));
  return v;
}
function slotTypes(tpl: string): string[] {
  return [...new Set([...tpl.matchAll(/\{([A-Z_]+)\}/g)].map((m) => m[1] as string))];
}

/** Expand a template over entity values (bounded, deterministic). */
function expand(tpl: string, ents: Record<string, string[]>, r: () => number, cap: number): Record<string, string>[] {
  const types = slotTypes(tpl);
  if (!types.length) return [{}];
  if (types.some((t) => !ents[t]?.length)) return []; // no value known for a slot: no row (never a '<TYPE>' placeholder)
  const out: Record<string, string>[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < cap * 4 && out.length < cap; i++) {
    const s: Record<string, string> = {};
    for (const t of types) s[t] = pick(r, ents[t] as string[]);
    const k = JSON.stringify(s);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(s);
    }
  }
  return out;
}

export function toolSystemPrompt(domain: Domain): string {
  const tools = domain.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } }));
  return (
    `${domain.systemPrompt}\n\nYou can call tools. To call one, reply with only <tool_call>{"name": <tool name>, "arguments": <arguments object>}</tool_call>. ` +
    `If no tool is needed, answer directly.\n\nTools:\n${JSON.stringify(tools)}`
  );
}
export function classificationPrompt(ls: LabelSet): string {
  return `Classify the text by ${ls.name}${ls.description ? ` (${ls.description})` : ''}. Labels: ${ls.labels.join(', ')}. Reply with the label only.`;
}
export function nerPrompt(domain: Domain): string {
  return `Extract the entities of types ${Object.keys(domain.entities).join(', ')} from the text. Reply with a JSON list of {"type", "text", "start", "end"} where start/end are character offsets into the text (end exclusive).`;
}

/** Find non-overlapping entities (longest match wins, then earliest). */
export function findEntities(domain: Domain, text: string): NerEntity[] {
  const all: NerEntity[] = [];
  for (const type of Object.keys(domain.entities)) {
    for (const m of text.matchAll(entityRegex(domain, type))) all.push({ type, text: m[0], start: m.index ?? 0, end: (m.index ?? 0) + m[0].length });
  }
  all.sort((a, b) => b.end - b.start - (a.end - a.start) || a.start - b.start);
  const taken: NerEntity[] = [];
  for (const e of all) if (!taken.some((t) => e.start < t.end && t.start < e.end)) taken.push(e);
  return taken.sort((a, b) => a.start - b.start);
}

// ---------- realistic failures for preference pairs ----------

export function brokenJson(call: string, r: () => number): string {
  const m = /^<tool_call>([\s\S]*)<\/tool_call>$/.exec(call);
  const json = m?.[1] ?? call;
  const variants = [
    json.slice(0, -1), // truncated: missing closing brace
    json.replace(/"/g, "'"), // single quotes
    json.replace(/\}\}$/, ',}}'), // trailing comma
    json.replace(/"arguments":/, '"arguments"'), // missing colon
  ];
  return `<tool_call>${pick(r, variants)}</tool_call>`;
}

/** Valid JSON that breaks the tool's schema: a required argument missing, a wrong type, an enum/pattern violation or an unknown argument. */
export function schemaBreak(tool: ToolSpec, args: Record<string, unknown>, r: () => number): Record<string, unknown> | null {
  const props = (tool.parameters.properties ?? {}) as Record<string, { type?: string; enum?: unknown[]; pattern?: string }>;
  const required = (tool.parameters.required ?? []) as string[];
  const options: (() => Record<string, unknown>)[] = [];
  if (required.length) {
    const k = pick(r, required);
    options.push(() => Object.fromEntries(Object.entries(args).filter(([x]) => x !== k)));
  }
  for (const [k, p] of Object.entries(props)) {
    if (!(k in args)) continue;
    if (p.type === 'string') options.push(() => ({ ...args, [k]: 42 }));
    if (p.type === 'boolean') options.push(() => ({ ...args, [k]: 'yes' }));
    if (p.enum) options.push(() => ({ ...args, [k]: `${String(args[k])}-prod` }));
    if (p.pattern && typeof args[k] === 'string') options.push(() => ({ ...args, [k]: String(args[k]).toUpperCase().replace(/[.-]/g, ' ') }));
  }
  if (tool.parameters.additionalProperties === false) options.push(() => ({ ...args, force: true }));
  if (!options.length) return null;
  return pick(r, options)();
}

/** Change one fact in an answer: a number, or an entity swapped for another of the same type. */
export function hallucinate(answer: string, ents: Record<string, string[]>, domain: Domain, r: () => number): string | null {
  const cands: (() => string | null)[] = [];
  const found = findEntities(domain, answer);
  for (const e of found) {
    const others = (ents[e.type] ?? []).filter((v) => v !== e.text);
    if (others.length) cands.push(() => answer.slice(0, e.start) + pick(r, others) + answer.slice(e.end));
  }
  const nums = [...answer.matchAll(/\b\d+(?:\.\d+)?\b/g)];
  if (nums.length) {
    cands.push(() => {
      const m = pick(r, nums);
      const n = Number(m[0]);
      const alt = Number.isInteger(n) ? String(n + pick(r, [1, 2, 5, 10, 30]) * (r() < 0.5 && n > 30 ? -1 : 1)) : (n * 2).toFixed(2);
      return answer.slice(0, m.index) + alt + answer.slice((m.index ?? 0) + m[0].length);
    });
  }
  if (!cands.length) return null;
  const out = pick(r, cands)();
  return out && out !== answer ? out : null;
}

// ---------- builders ----------

interface Ctx {
  domain: Domain;
  v: Validators;
  ents: Record<string, string[]>;
  r: () => number;
  o: Required<FormatOptions>;
  rejected: Rejection[];
}

function chatRows(c: Ctx, pairs: QAPair[]): Row[] {
  const rows: Row[] = [];
  for (const p of pairs) {
    rows.push({
      row: { messages: [{ role: 'system', content: c.domain.systemPrompt }, { role: 'user', content: p.question }, { role: 'assistant', content: p.answer }] },
      group: `chunk:${p.chunkId}`,
      content: `${p.question}\n${p.answer}`,
      meta: { kind: `domain:${p.kind}` },
    });
  }
  for (const g of c.domain.general) {
    rows.push({
      row: { messages: [{ role: 'system', content: c.domain.systemPrompt }, { role: 'user', content: g.question }, { role: 'assistant', content: g.answer }] },
      group: `general:${g.question}`,
      content: `${g.question}\n${g.answer}`,
      meta: { kind: 'general' },
    });
  }
  return rows;
}

interface ToolExample {
  query: string;
  tool: ToolSpec;
  args: Record<string, unknown>;
}

function toolExamples(c: Ctx): ToolExample[] {
  const out: ToolExample[] = [];
  for (const tool of c.domain.tools) {
    for (const q of tool.queries) {
      for (const slots of expand(q.text, c.ents, c.r, c.o.perTemplate)) {
        const args = fillArgs(q.arguments, slots) as Record<string, unknown>;
        const err = c.v.validateArgs(tool.name, args);
        if (err) {
          c.rejected.push({ stage: 'format:tool', reason: 'arguments fail schema', detail: `${tool.name} ${JSON.stringify(args)}: ${err}` });
          continue;
        }
        out.push({ query: fill(q.text, slots), tool, args });
      }
    }
  }
  return out;
}

function toolRows(c: Ctx, examples: ToolExample[], pairs: QAPair[]): Row[] {
  const sys = toolSystemPrompt(c.domain);
  const rows: Row[] = examples.map((e) => ({
    row: { messages: [{ role: 'system', content: sys }, { role: 'user', content: e.query }, { role: 'assistant', content: toolCallText(e.tool.name, e.args) }] },
    group: `tool:${e.query}`,
    content: e.query,
    meta: { kind: e.tool.name },
  }));
  // no tool needed: domain knowledge answered from the docs, and declared small talk
  const answerable = shuffle(c.r, pairs).slice(0, Math.max(8, Math.round(examples.length / 3)));
  for (const p of answerable) {
    rows.push({
      row: { messages: [{ role: 'system', content: sys }, { role: 'user', content: p.question }, { role: 'assistant', content: p.answer }] },
      group: `chunk:${p.chunkId}`,
      content: `${p.question}\n${p.answer}`,
      meta: { kind: 'no_tool' },
    });
  }
  for (const { question: q, answer: ans } of c.domain.noToolQueries) {
    rows.push({ row: { messages: [{ role: 'system', content: sys }, { role: 'user', content: q }, { role: 'assistant', content: ans }] }, group: `tool:${q}`, content: q, meta: { kind: 'no_tool' } });
  }
  return rows;
}

function classificationRows(c: Ctx, ls: LabelSet, examples: ToolExample[], chunks: Chunk[]): Row[] {
  const byLabel = new Map<string, { text: string; kind: string }[]>();
  const push = (label: string, text: string, kind: string) => {
    if (!ls.labels.includes(label)) {
      c.rejected.push({ stage: `format:classification-${ls.name}`, reason: 'label not in declared set', detail: `${label}: ${text}` });
      return;
    }
    const arr = byLabel.get(label) ?? [];
    arr.push({ text, kind });
    byLabel.set(label, arr);
  };
  for (const [label, tpls] of Object.entries(ls.templates)) for (const t of tpls) for (const s of expand(t, c.ents, c.r, c.o.perTemplate)) push(label, fill(t, s), 'template');
  if (ls.fromTools) for (const e of examples) if (ls.fromTools[e.tool.name]) push(ls.fromTools[e.tool.name] as string, e.query, 'tool_query');
  if (ls.fromTable) {
    const { labelColumn, textColumns } = ls.fromTable;
    for (const ch of chunks) {
      const lines = ch.text.split('\n');
      for (let i = 0; i + 1 < lines.length; i++) {
        if (!/^\s*\|/.test(lines[i] ?? '') || !/^\s*\|[\s:|-]+\|\s*$/.test(lines[i + 1] ?? '')) continue;
        const cells = (l: string) => l.trim().replace(/^\||\|$/g, '').split('|').map((x) => x.trim());
        const head = cells(lines[i] ?? '');
        const li = head.findIndex((h) => h.toLowerCase() === labelColumn.toLowerCase());
        const ti = textColumns.map((t) => head.findIndex((h) => h.toLowerCase() === t.toLowerCase()));
        if (li < 0 || ti.some((x) => x < 0)) continue;
        for (let j = i + 2; j < lines.length && /^\s*\|/.test(lines[j] ?? ''); j++) {
          const row = cells(lines[j] ?? '');
          const label = (row[li] ?? '').toLowerCase();
          const text = ti.map((x) => row[x] ?? '').join(': ').replace(/: ([^:]*)$/, ' on $1');
          push(label, text, 'corpus_table');
        }
      }
    }
  }
  const rows: Row[] = [];
  for (const [label, items] of byLabel) {
    for (const it of shuffle(c.r, items).slice(0, c.o.maxPerLabel)) {
      rows.push({
        row: { messages: [{ role: 'system', content: classificationPrompt(ls) }, { role: 'user', content: it.text }, { role: 'assistant', content: label }], text: it.text, label, label_set: ls.name },
        group: `cls:${it.text}`,
        content: it.text,
        meta: { kind: it.kind, label },
      });
    }
  }
  return rows;
}

function nerRows(c: Ctx, chunks: Chunk[], examples: ToolExample[]): Row[] {
  const sys = nerPrompt(c.domain);
  const texts: { text: string; group: string; kind: string }[] = [];
  for (const ch of chunks) {
    for (const line of ch.text.split('\n')) {
      const l = line.replace(/^\s*(?:[-*]|\d+[.)])\s+/, '').trim();
      if (!l || l.startsWith('|') || l.startsWith('```')) continue;
      for (const s of l.split(/(?<=[.!?])\s+(?=[A-Z])/)) if (s.length >= 12 && s.length <= 300) texts.push({ text: s, group: `chunk:${ch.id}`, kind: 'corpus' });
    }
  }
  for (const e of examples) texts.push({ text: e.query, group: `tool:${e.query}`, kind: 'tool_query' });
  const withEnts = texts.filter((t) => findEntities(c.domain, t.text).length);
  const without = texts.filter((t) => !findEntities(c.domain, t.text).length);
  const chosen = [...shuffle(c.r, withEnts).slice(0, c.o.maxNer), ...shuffle(c.r, without).slice(0, Math.ceil(c.o.maxNer / 10))];
  return chosen.map((t) => {
    const entities = findEntities(c.domain, t.text);
    return {
      row: { messages: [{ role: 'system', content: sys }, { role: 'user', content: t.text }, { role: 'assistant', content: JSON.stringify(entities) }], text: t.text, entities },
      group: t.group,
      content: t.text,
      meta: { kind: entities.length ? t.kind : 'no_entities' },
    };
  });
}

function dpoRows(c: Ctx, pairs: QAPair[], examples: ToolExample[], clsRows: Map<string, Row[]>, ner: Row[]): Row[] {
  const rows: Row[] = [];
  const toolSys = toolSystemPrompt(c.domain);
  const add = (system: string, prompt: string, chosen: string, rejected: string, failure: string, group: string) =>
    rows.push({ row: { system, prompt, chosen, rejected }, group, content: `${prompt}\n${chosen}`, meta: { kind: failure, failure } });
  // hallucinated facts
  for (const p of pairs) {
    const bad = hallucinate(p.answer, c.ents, c.domain, c.r);
    if (bad) add(c.domain.systemPrompt, p.question, p.answer, bad, 'hallucinated_fact', `chunk:${p.chunkId}`);
  }
  // tool calls: invalid JSON, schema-breaking JSON, wrong tool (rotating)
  examples.forEach((e, i) => {
    const chosen = toolCallText(e.tool.name, e.args);
    const kind = ['invalid_json', 'schema_violation', 'wrong_tool'][i % 3] as string;
    let rejected: string | null = null;
    if (kind === 'invalid_json') rejected = brokenJson(chosen, c.r);
    else if (kind === 'schema_violation') {
      const b = schemaBreak(e.tool, e.args, c.r);
      rejected = b ? toolCallText(e.tool.name, b) : null;
    } else {
      const other = c.domain.tools.filter((t) => t.name !== e.tool.name);
      if (other.length) {
        const t = pick(c.r, other);
        const q = pick(c.r, t.queries);
        const slots = expand(JSON.stringify(q.arguments), c.ents, c.r, 1)[0];
        if (slots) rejected = toolCallText(t.name, fillArgs(q.arguments, slots) as Record<string, unknown>);
      }
    }
    if (rejected) add(toolSys, e.query, chosen, rejected, kind, `tool:${e.query}`);
  });
  // no tool needed, but the model calls one anyway
  for (const { question: q, answer: ans } of c.domain.noToolQueries) {
    if (!examples.length) continue;
    const e = pick(c.r, examples);
    add(toolSys, q, ans, toolCallText(e.tool.name, e.args), 'unneeded_tool_call', `tool:${q}`);
  }
  // wrong label
  for (const [name, rs] of clsRows) {
    const ls = c.domain.labelSets.find((l) => l.name === name);
    if (!ls) continue;
    for (const r of rs) {
      const label = r.meta.label as string;
      const wrong = pick(
        c.r,
        ls.labels.filter((l) => l !== label),
      );
      add(classificationPrompt(ls), String(r.row.text), label, wrong, 'wrong_label', r.group);
    }
  }
  // NER: offsets that do not match the text
  for (const r of ner) {
    const ents = r.row.entities as NerEntity[];
    if (!ents.length) continue;
    const bad = ents.map((e, i) => (i === 0 ? { ...e, start: e.start + 1, end: e.end + 1 } : e));
    add(nerPrompt(c.domain), String(r.row.text), JSON.stringify(ents), JSON.stringify(bad), 'wrong_offsets', r.group);
  }
  return rows;
}

// ---------- validation, dedupe, split ----------

function validateRows(rows: Row[], schema: z.ZodTypeAny, task: string, rejected: Rejection[]): Row[] {
  return rows.filter((r) => {
    const res = schema.safeParse(r.row);
    if (res.success) return true;
    rejected.push({ stage: `format:${task}`, reason: 'row fails validation', detail: `${res.error.issues.map((i) => i.message).join('; ')} :: ${r.content.slice(0, 120)}` });
    return false;
  });
}

export function splitRows(rows: Row[], valFraction: number, seed: number): { train: Row[]; val: Row[]; movedToTrain: number; auditViolations: number } {
  // union rows that share a group or are near-duplicates, then assign whole clusters
  const parent = rows.map((_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x] as number] as number;
      x = parent[x] as number;
    }
    return x;
  };
  const union = (a: number, b: number) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  const byGroup = new Map<string, number>();
  rows.forEach((r, i) => {
    const g = byGroup.get(r.group);
    if (g === undefined) byGroup.set(r.group, i);
    else union(g, i);
  });
  const idx = new NearDupIndex();
  rows.forEach((r) => idx.add(r.content));
  for (const p of idx.pairs()) union(p.a, p.b);
  const isVal = (i: number) => (fnv1a(`${seed}:${rows[find(i)]?.group}`) % 10_000) / 10_000 < valFraction;
  const train: Row[] = [];
  let val: Row[] = [];
  rows.forEach((r, i) => (isVal(i) ? val : train).push(r));
  // audit: no validation row may be a near-duplicate of a training row
  const trainIdx = new NearDupIndex();
  train.forEach((r) => trainIdx.add(r.content));
  let moved = 0;
  const violations = val.filter((r) => trainIdx.query(r.content).length > 0);
  if (violations.length) {
    moved = violations.length;
    const bad = new Set(violations);
    val = val.filter((r) => !bad.has(r));
    train.push(...violations);
  }
  return { train, val, movedToTrain: moved, auditViolations: violations.length };
}

export function formatAll(domain: Domain, pairs: QAPair[], chunks: Chunk[], opts: FormatOptions = {}): FormatResult {
  const o: Required<FormatOptions> = { seed: 7, valFraction: 0.15, perTemplate: 4, maxPerLabel: 40, maxNer: 150, ...opts };
  const c: Ctx = { domain, v: new Validators(domain), ents: corpusEntities(domain, chunks.map((ch) => ch.text)), r: rng(o.seed), o, rejected: [] };
  const duplicatesRemoved: FormatResult['duplicatesRemoved'] = [];
  const leakage: FormatResult['leakage'] = [];

  // Q&A pairs: exact + near duplicate questions/answers removed before anything is built from them
  const dq = dedupe(pairs, (p) => `${p.question}\n${p.answer}`);
  duplicatesRemoved.push({ task: 'qa-pairs', exact: dq.exactDuplicates.length, near: dq.nearDuplicates.length });
  const qa = dq.kept;

  const examples = toolExamples(c);
  const tasks: { name: string; rows: Row[]; schema: z.ZodTypeAny; near: boolean }[] = [];
  tasks.push({ name: 'chat', rows: chatRows(c, qa), schema: ChatRow, near: true });
  tasks.push({ name: 'tool', rows: toolRows(c, examples, qa), schema: c.v.toolRow(), near: false });
  const cls = new Map<string, Row[]>();
  for (const ls of domain.labelSets) {
    const rows = classificationRows(c, ls, examples, chunks);
    cls.set(ls.name, rows);
    tasks.push({ name: `classification-${ls.name}`, rows, schema: c.v.classificationRow(ls), near: false });
  }
  const ner = nerRows(c, chunks, examples);
  tasks.push({ name: 'ner', rows: ner, schema: c.v.nerRow(), near: false });
  tasks.push({ name: 'dpo', rows: dpoRows(c, qa, examples, cls, ner), schema: DpoRow, near: false });

  const sets: TaskSet[] = [];
  for (const t of tasks) {
    for (const r of t.rows) r.content = rowContent(r.row);
    let rows = validateRows(t.rows, t.schema, t.name, c.rejected);
    // DPO: the rejected side must really fail — a tool-call "failure" that validates is not a failure
    if (t.name === 'dpo')
      rows = rows.filter((r) => {
        const rej = String(r.row.rejected);
        if (r.meta.failure === 'invalid_json' || r.meta.failure === 'schema_violation') {
          if (c.v.checkToolCall(rej).ok) {
            c.rejected.push({ stage: 'format:dpo', reason: 'rejected answer is not a failure', detail: rej });
            return false;
          }
        }
        return true;
      });
    // exact duplicates everywhere; near duplicates removed in chat (templated sets legitimately share wording)
    const d = dedupe(rows, (r) => (t.name === 'dpo' ? `${String(r.row.system)}\n${r.content}\n${String(r.row.rejected)}` : JSON.stringify(r.row)), t.near ? {} : { threshold: 1.01 });
    duplicatesRemoved.push({ task: t.name, exact: d.exactDuplicates.length, near: d.nearDuplicates.length });
    const s = splitRows(d.kept, o.valFraction, o.seed);
    leakage.push({ task: t.name, movedToTrain: s.movedToTrain, auditViolations: s.auditViolations });
    const count = (f: (r: Row) => string | undefined) => {
      const m: Record<string, number> = {};
      for (const r of d.kept) {
        const k = f(r);
        if (k) m[k] = (m[k] ?? 0) + 1;
      }
      return m;
    };
    sets.push({
      name: t.name,
      train: s.train.map((r) => r.row),
      val: s.val.map((r) => r.row),
      kinds: count((r) => r.meta.kind),
      labels: t.name.startsWith('classification-') ? count((r) => r.meta.label) : undefined,
      failures: t.name === 'dpo' ? count((r) => r.meta.failure) : undefined,
    });
  }
  return { sets, rejected: c.rejected, duplicatesRemoved, leakage };
}

export type { Message };
