/**
 * Format: Q&A pairs + chunks + the domain spec → the task sets, each row zod-validated, split train/validation
 * without template leakage.
 *   chat            {"messages":[system,user,assistant]}                      domain Q&A, refusals, general chat
 *   tool            {"messages":[system(with tool schemas),user,assistant]}   target "<tool_call>{…}</tool_call>" or a plain answer
 *   classification-<set> {"messages":[…], "text", "label", "label_set"}      bare text (task in the system prompt) and
 *                                                                             instruction style ("What is the sentiment of …")
 *   ner             {"messages":[…], "text", "entities":[{type,text,start,end}]}  bare and instruction style
 *   dpo             {"system","prompt","chosen","rejected"}                   rejected = a format or faithfulness failure
 * Policy for questions a tool answers (a tool's `answers` globs, or a question that is one of its query templates):
 * a tool call in every set that offers tools, never a direct answer anywhere (so they are left out of `chat`).
 * Split: every row carries its template id (or its source chunk for free text); rows sharing it, or near-duplicates
 * once entity values and numbers are masked, form one cluster, and whole clusters go to one side. An audit then looks
 * every validation row up among the training rows, unmasked and masked, and reports (and moves) what it finds.
 */
import type { Domain, LabelSet, ToolSpec } from './domain.ts';
import { corpusEntities, entityRegex } from './domain.ts';
import { NearDupIndex, dedupe } from './dedupe.ts';
import { ChatRow, DpoRow, NerEntity, type Message, toolCallText, Validators } from './rows.ts';
import { parseTables, tableQuestion, tableSubject } from './synth/extractive.ts';
import type { Chunk, QAPair, Rejection } from './types.ts';
import { fnv1a, pick, rng, shuffle } from './util.ts';
import { z } from 'zod';

export type TaskName = string;
export interface Row {
  row: Record<string, unknown>;
  /** template id (or source chunk for free text): rows sharing it never straddle the split */
  template: string;
  /** text used for near-duplicate checks */
  content: string;
  meta: { kind: string; failure?: string; label?: string; style?: 'bare' | 'instruction' };
}
export interface RowMeta {
  template: string;
  kind: string;
  style?: string;
  failure?: string;
}
export interface LeakageReport {
  task: string;
  train: number;
  val: number;
  /** validation rows whose template id also occurs in train (0 by construction) */
  sharedTemplates: number;
  /** validation rows near-duplicate (Jaccard ≥ 0.8) of a training row, plain text */
  unmaskedHits: number;
  /** … after entity values and numbers are masked — template leaks */
  maskedHits: number;
  movedToTrain: number;
  examples: { val: string; train: string; jaccard: number }[];
}
export interface TaskSet {
  name: TaskName;
  train: Record<string, unknown>[];
  val: Record<string, unknown>[];
  trainMeta: RowMeta[];
  valMeta: RowMeta[];
  labels?: Record<string, number>;
  failures?: Record<string, number>;
  kinds: Record<string, number>;
  templates: Record<string, number>;
}
export interface FormatOptions {
  seed?: number;
  valFraction?: number;
  /** cap on rows generated per (template × entity type) for tool/classification templates */
  perTemplate?: number;
  /** cap on domain Q&A rows per question template in chat (balance) */
  perQaTemplate?: number;
  maxPerLabel?: number;
  maxNer?: number;
}
export interface DpoMix {
  byKind: Record<string, number>;
  byCategory: Record<string, number>;
  /** pairs whose chosen side is a tool call or a JSON entity list */
  toolJsonPairs: number;
  /** … of which the rejected side fails validation (schema, JSON, entity list) */
  toolJsonSchemaFailures: number;
}
export interface FormatResult {
  sets: TaskSet[];
  rejected: Rejection[];
  duplicatesRemoved: { task: string; exact: number; near: number }[];
  leakage: LeakageReport[];
  dpoMix: DpoMix;
  policy: { pairsRoutedToTools: Record<string, number>; refusals: number; instructionRows: Record<string, number> };
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

/** Entity values become <TYPE>, numbers <N>: what is left is the template. */
export function maskText(domain: Domain, text: string): string {
  const ents = findEntities(domain, text);
  let out = '';
  let at = 0;
  for (const e of ents) {
    out += text.slice(at, e.start) + ` ${e.type.toLowerCase()}slot `;
    at = e.end;
  }
  out += text.slice(at);
  return out.replace(/\d+(?:[.,:/-]\d+)*/g, ' numslot ');
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


// ---------- realistic failures for preference pairs, by kind ----------

export const TOOL_FAILURES = ['missing_required', 'wrong_enum', 'extra_property', 'wrong_type', 'pattern_violation', 'malformed_json', 'wrong_tool'] as const;
export type ToolFailure = (typeof TOOL_FAILURES)[number];

/** Valid JSON that breaks the tool's schema in one stated way; null when the schema gives no such handle. */
export function breakArgs(tool: ToolSpec, args: Record<string, unknown>, kind: ToolFailure, r: () => number): Record<string, unknown> | null {
  const props = (tool.parameters.properties ?? {}) as Record<string, { type?: string; enum?: unknown[]; pattern?: string }>;
  const required = ((tool.parameters.required ?? []) as string[]).filter((k) => k in args);
  const present = Object.entries(props).filter(([k]) => k in args);
  switch (kind) {
    case 'missing_required': {
      if (!required.length) return null;
      const k = pick(r, required);
      return Object.fromEntries(Object.entries(args).filter(([x]) => x !== k));
    }
    case 'wrong_enum': {
      const es = present.filter(([, p]) => Array.isArray(p.enum));
      if (!es.length) return null;
      const [k, p] = pick(r, es);
      const v = String(args[k]);
      const cands = [v.toUpperCase(), `${v}-prod`, v.replace(/-/g, '_'), `${v[0]?.toUpperCase()}${v.slice(1)}`].filter((x) => !(p.enum as unknown[]).includes(x));
      return cands.length ? { ...args, [k]: pick(r, cands) } : null;
    }
    case 'extra_property': {
      if (tool.parameters.additionalProperties !== false) return null;
      const extra = pick(r, [
        ['force', true],
        ['priority', 'high'],
        ['confirm', 'yes'],
        ['region', 'us-east-1'],
      ] as const);
      if (extra[0] in props) return { ...args, dry_run: true };
      return { ...args, [extra[0]]: extra[1] };
    }
    case 'wrong_type': {
      const ts = present.filter(([, p]) => p.type === 'string' || p.type === 'boolean' || p.type === 'integer' || p.type === 'number');
      if (!ts.length) return null;
      const [k, p] = pick(r, ts);
      if (p.type === 'boolean') return { ...args, [k]: args[k] ? 'yes' : 'no' };
      if (p.type === 'string') return { ...args, [k]: [args[k]] };
      return { ...args, [k]: String(args[k]) };
    }
    case 'pattern_violation': {
      const ps = present.filter(([k, p]) => p.pattern && typeof args[k] === 'string');
      if (!ps.length) return null;
      const [k] = pick(r, ps);
      const v = String(args[k]);
      const bad = pick(r, [v.toLowerCase().replace(/[.-]/g, ''), v.replace(/[.-]/g, ' ').toUpperCase(), `${v} `]);
      return bad === v ? null : { ...args, [k]: bad };
    }
    default:
      return null;
  }
}

/**
 * The call's arguments with one string value that the query names (copied from it) swapped for another value the same
 * tool's field takes in other examples, not named in the query; null when no argument is copied from the query or the
 * field has no other value.
 */
export function wrongValue(e: { query: string; tool: ToolSpec; args: Record<string, unknown> }, all: { tool: ToolSpec; args: Record<string, unknown> }[], r: () => number): Record<string, unknown> | null {
  const copied = Object.entries(e.args).filter(([, v]) => typeof v === 'string' && v.length > 1 && e.query.includes(v));
  for (const [k] of shuffle(r, copied)) {
    const others = [...new Set(all.filter((x) => x.tool.name === e.tool.name).map((x) => x.args[k]))].filter((v): v is string => typeof v === 'string' && v !== e.args[k] && !e.query.includes(v));
    if (others.length) return { ...e.args, [k]: pick(r, others) };
  }
  return null;
}

/** Valid JSON that breaks the tool's schema: any applicable kind (kept for callers of the first version). */
export function schemaBreak(tool: ToolSpec, args: Record<string, unknown>, r: () => number): Record<string, unknown> | null {
  for (const k of shuffle(r, ['missing_required', 'wrong_enum', 'extra_property', 'wrong_type', 'pattern_violation'] as ToolFailure[])) {
    const b = breakArgs(tool, args, k, r);
    if (b) return b;
  }
  return null;
}

/** A label outside the declared set: verbose, re-cased with punctuation, wrapped in JSON, or from another label set. */
export function labelOutsideSet(ls: LabelSet, label: string, others: string[], r: () => number): string | null {
  const cands = [`The ${ls.name} is ${label}.`, `${label[0]?.toUpperCase()}${label.slice(1)}.`, `{"label": "${label}"}`, `${label} (confidence: high)`, ...others.filter((o) => !ls.labels.includes(o))];
  const ok = cands.filter((x) => !ls.labels.includes(x));
  return ok.length ? pick(r, ok) : null;
}

/** An entity list that does not parse as the required JSON: truncated, single quotes, prose, fenced, wrong keys, no offsets. */
export function brokenEntities(ents: NerEntity[], r: () => number): string {
  const json = JSON.stringify(ents);
  const variants = [
    json.slice(0, -2),
    json.replace(/"/g, "'"),
    ents.length ? `The entities are ${ents.map((e) => `${e.text} (${e.type})`).join(', ')}.` : 'There are no entities.',
    `\`\`\`json\n${json}\n\`\`\``,
    JSON.stringify(ents.map((e) => ({ entity: e.text, label: e.type }))),
    JSON.stringify(ents.map((e) => ({ type: e.type, text: e.text }))),
  ].filter((v) => v !== json);
  return pick(r, ents.length ? variants : variants.slice(0, 4));
}

/** Does `s` parse as the NER target for `text` (JSON list of {type,text,start,end} whose offsets slice the text)? */
export function parsesAsEntities(s: string, text: string, types: string[]): boolean {
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch {
    return false;
  }
  const res = z.array(NerEntity).safeParse(v);
  return res.success && res.data.every((e) => types.includes(e.type) && text.slice(e.start, e.end) === e.text);
}

// ---------- prompts for instruction-style rows ----------

function plural(type: string): string {
  const w = type.toLowerCase().replace(/_/g, ' ');
  return /y$/.test(w) ? `${w.slice(0, -1)}ies` : /s$/.test(w) ? w : `${w}s`;
}
function listPhrase(xs: string[]): string {
  return xs.length <= 1 ? (xs[0] ?? '') : `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`;
}

/** One system prompt for every instruction-style classification/NER row: the label sets and the NER format. */
export function instructionSystemPrompt(domain: Domain): string {
  const sets = domain.labelSets.map((ls) => `${ls.name}: ${ls.labels.join(', ')}`).join('; ');
  return (
    `${domain.systemPrompt}\n\n` +
    (sets ? `When asked to classify a text, reply with the label only. Label sets — ${sets}.\n` : '') +
    `When asked to extract entities (${Object.keys(domain.entities).join(', ')}), reply with only a JSON list of {"type", "text", "start", "end"}, where start/end are character offsets into the quoted text (end exclusive).`
  );
}

/**
 * Instruction wordings for a label set (the domain's own `instructions` when it has them). The text
 * always sits after a colon or in quotes, so an instruction that quotes a request ("what is the intent
 * of: restart notifier") is told apart from the request itself — by the router (router/features.ts
 * reads the quoted part as the payload) and by the adapter. Varied on purpose: users word the task in
 * many ways, and a router trained on four wordings learns the wordings instead of the task.
 */
function classificationInstructions(ls: LabelSet): string[] {
  if (ls.instructions.length) return ls.instructions;
  const n = ls.name;
  const labels = ls.labels.length <= 5 ? `${ls.labels.slice(0, -1).join(', ')} or ${ls.labels[ls.labels.length - 1]}` : null;
  return [
    `What is the ${n} of this message: "{TEXT}"?`,
    `Classify the ${n} of the following text: {TEXT}`,
    `"{TEXT}" — which ${n} is that?`,
    `Tell me the ${n} of: {TEXT}`,
    `Which ${n} label fits this message? "{TEXT}"`,
    `Label the ${n} of this text: {TEXT}`,
    `Give me the ${n} for: {TEXT}`,
    `Determine the ${n} of the message below: {TEXT}`,
    `${n[0]!.toUpperCase()}${n.slice(1)} of this, please: "{TEXT}"`,
    ...(labels ? [`Is this ${labels}? "{TEXT}"`, `${labels[0]!.toUpperCase()}${labels.slice(1)}: {TEXT}`] : []),
  ];
}
const NER_INSTRUCTIONS = [
  'Extract the {TYPES} in: "{TEXT}"',
  'Which {TYPES} are mentioned in "{TEXT}"?',
  'List the {TYPES} in this message: {TEXT}',
  'Find every mention of {TYPES} in the following text: {TEXT}',
  'Pull out the {TYPES} from: {TEXT}',
  'Tag the {TYPES} in this line: {TEXT}',
  'What {TYPES} does this text name? "{TEXT}"',
  'Mark each of the {TYPES} in: {TEXT}',
  'Return the {TYPES} with their offsets for: {TEXT}',
  'Named entities ({TYPES}) in: "{TEXT}"',
];

// ---------- builders ----------

interface Ctx {
  domain: Domain;
  v: Validators;
  ents: Record<string, string[]>;
  r: () => number;
  o: Required<FormatOptions>;
  rejected: Rejection[];
}

const msgs = (system: string, user: string, assistant: string): Message[] => [
  { role: 'system', content: system },
  { role: 'user', content: user },
  { role: 'assistant', content: assistant },
];
const tplOf = (p: QAPair) => p.template ?? `chunk:${p.chunkId}`;

interface ToolExample {
  query: string;
  tool: ToolSpec;
  args: Record<string, unknown>;
  template: string;
}

function toolExamples(c: Ctx): ToolExample[] {
  const out: ToolExample[] = [];
  for (const tool of c.domain.tools) {
    tool.queries.forEach((q, qi) => {
      for (const slots of expand(q.text, c.ents, c.r, c.o.perTemplate)) {
        const args = fillArgs(q.arguments, slots) as Record<string, unknown>;
        const err = c.v.validateArgs(tool.name, args);
        if (err) {
          c.rejected.push({ stage: 'format:tool', reason: 'arguments fail schema', detail: `${tool.name} ${JSON.stringify(args)}: ${err}` });
          continue;
        }
        out.push({ query: fill(q.text, slots), tool, args, template: `tool:${tool.name}:${qi}` });
      }
    });
  }
  return out;
}

function globMatch(glob: string, s: string): boolean {
  return new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`).test(s);
}

/**
 * Which tool answers this Q&A pair, if any: a tool whose `answers` globs match the pair's template (the subject is
 * the argument), or a question that is one of a tool's query templates with entity values filled in.
 */
export function routeToTool(domain: Domain, v: Validators, p: QAPair): { tool: ToolSpec; args: Record<string, unknown> } | null {
  for (const tool of domain.tools) {
    if (!p.template || !p.subject || !tool.answers.some((g) => globMatch(g, p.template as string))) continue;
    // the argument that an entity slot fills in the tool's own queries
    for (const q of tool.queries) {
      const slot = Object.entries(q.arguments).find(([, x]) => typeof x === 'string' && /^\{[A-Z_]+\}$/.test(x));
      if (!slot) continue;
      const args = { [slot[0]]: p.subject };
      if (!v.validateArgs(tool.name, args)) return { tool, args };
    }
  }
  const norm = (s: string) => s.trim().replace(/[.?!\s]+$/, '').toLowerCase();
  for (const tool of domain.tools) {
    for (const q of tool.queries) {
      const types: string[] = [];
      const src = q.text
        .trim()
        .replace(/[.?!\s]+$/, '')
        .split(/(\{[A-Z_]+\})/)
        .map((part) => {
          const m = /^\{([A-Z_]+)\}$/.exec(part);
          if (!m) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          types.push(m[1] as string);
          return `(${entityRegex(domain, m[1] as string).source})`;
        })
        .join('');
      const m = new RegExp(`^${src}$`, 'i').exec(norm(p.question));
      if (!m) continue;
      const slots: Record<string, string> = {};
      types.forEach((t, i) => {
        const val = m[i + 1] as string;
        // recover the value's original case from the question
        const at = p.question.toLowerCase().indexOf(val.toLowerCase());
        slots[t] = at >= 0 ? p.question.slice(at, at + val.length) : val;
      });
      const args = fillArgs(q.arguments, slots) as Record<string, unknown>;
      if (!v.validateArgs(tool.name, args)) return { tool, args };
    }
  }
  return null;
}

interface Refusal {
  question: string;
  answer: string;
  template: string;
  /** a made-up answer in the shape of a real one: the rejected side of a preference pair */
  hallucinated: string;
}

/** Names that look like the table's keys but occur nowhere in the corpus: recombined parts of real keys. */
function fakeKeys(keys: string[], corpus: string, taken: Set<string>, max: number): string[] {
  const out: string[] = [];
  const lc = corpus.toLowerCase();
  const ok = (k: string) => k.length > 3 && !lc.includes(k.toLowerCase()) && !taken.has(k) && !out.includes(k);
  const hyph = keys.filter((k) => /^[a-z]+(-[a-z]+)+$/.test(k));
  for (let i = 0; i < hyph.length && out.length < max; i++)
    for (let j = hyph.length - 1; j >= 0 && out.length < max; j--) {
      if (i === j) continue;
      const k = `${(hyph[i] as string).split('-')[0]}-${(hyph[j] as string).split('-').slice(1).join('-')}`;
      if (ok(k)) out.push(k);
    }
  const camel = keys.filter((k) => /^[A-Z][a-z]+(?:[A-Z][a-z]+)+$/.test(k));
  for (let i = 0; i < camel.length && out.length < max; i++)
    for (let j = camel.length - 1; j >= 0 && out.length < max; j--) {
      if (i === j) continue;
      const a = (camel[i] as string).split(/(?=[A-Z])/);
      const b = (camel[j] as string).split(/(?=[A-Z])/);
      const k = `${a[0]}${b.slice(1).join('')}`;
      if (ok(k)) out.push(k);
    }
  return out;
}

/** Questions shaped like the documents' own table questions, about things the documents never mention. */
function refusals(c: Ctx, chunks: Chunk[]): Refusal[] {
  const out: Refusal[] = [];
  const corpus = chunks.map((ch) => ch.text).join('\n');
  const taken = new Set(Object.values(c.domain.entities).flatMap((e) => e.values ?? []));
  const name = c.domain.name ? `${c.domain.name[0]?.toUpperCase()}${c.domain.name.slice(1)} ` : '';
  // a table split over several chunks (row groups repeat the header) is put back together
  const tables = new Map<string, { header: string[]; rows: string[][] }>();
  for (const ch of chunks)
    for (const t of parseTables(ch.text)) {
      const sig = `${ch.source}|${t.header.join('|')}`;
      const e = tables.get(sig) ?? { header: t.header, rows: [] };
      for (const r of t.rows) if (!e.rows.some((x) => x[0] === r[0])) e.rows.push(r);
      tables.set(sig, e);
    }
  for (const t of tables.values()) {
    const keyCol = t.header[0] ?? '';
    const keys = t.rows.map((r) => r[0] ?? '').filter(Boolean);
    if (!keyCol || keys.length < 3 || keys.some((k) => /^[A-Z]{2,5}-\d{3,5}$/.test(k))) continue;
    // a question a tool answers is a tool call, not a refusal
    const probe = tableQuestion(keyCol, t.header[1] ?? '', keys[0] as string, 'x', c.domain.tableQuestions);
    if (c.domain.tools.some((tool) => tool.answers.some((g) => globMatch(g, probe.template)))) continue;
    fakeKeys(keys, corpus, taken, 4).forEach((fake, fi) => {
      for (let ci = 1; ci < t.header.length; ci++) {
        if ((ci + fi) % 2) continue; // about half the columns per fake key
        const col = t.header[ci] as string;
        const real = t.rows.map((r) => r[ci] ?? '').filter((x) => x && !/^(none|n\/a|-)$/i.test(x));
        if (!real.length) continue;
        const q = tableQuestion(keyCol, col, fake, pick(c.r, real), c.domain.tableQuestions);
        const subj = tableSubject(keyCol, fake);
        const answers = [
          `I don't know: the ${name}documentation does not mention ${subj}.`,
          `The ${name}documentation has nothing on ${subj}, so I can't tell you.`,
          `I couldn't find ${subj} in the ${name}documentation, so I don't know.`,
        ];
        out.push({
          question: q.question,
          answer: answers[out.length % answers.length] as string,
          template: `refusal:${q.template}`,
          hallucinated: q.answer,
        });
      }
    });
  }
  return out;
}

function chatRows(c: Ctx, pairs: QAPair[], refs: Refusal[]): Row[] {
  const rows: Row[] = [];
  const perTpl = new Map<string, number>();
  for (const p of pairs) {
    const t = tplOf(p);
    const n = perTpl.get(t) ?? 0;
    if (p.template && n >= c.o.perQaTemplate) continue;
    perTpl.set(t, n + 1);
    rows.push({ row: { messages: msgs(c.domain.systemPrompt, p.question, p.answer) }, template: t, content: '', meta: { kind: `domain:${p.kind}` } });
  }
  for (const f of refs) rows.push({ row: { messages: msgs(c.domain.systemPrompt, f.question, f.answer) }, template: f.template, content: '', meta: { kind: 'refusal' } });
  c.domain.general.forEach((g, i) => rows.push({ row: { messages: msgs(c.domain.systemPrompt, g.question, g.answer) }, template: `general:${i}`, content: '', meta: { kind: 'general' } }));
  return rows;
}

function toolRows(c: Ctx, examples: ToolExample[], routed: ToolExample[], answerable: QAPair[], refs: Refusal[]): Row[] {
  const sys = toolSystemPrompt(c.domain);
  const rows: Row[] = [...examples, ...routed].map((e) => ({
    row: { messages: msgs(sys, e.query, toolCallText(e.tool.name, e.args)) },
    template: e.template,
    content: '',
    meta: { kind: e.template.startsWith('tool:') ? e.tool.name : `qa:${e.tool.name}` },
  }));
  // no tool needed: documentation questions no tool answers (answered from the docs), refusals, declared small talk
  const n = Math.max(8, Math.round((examples.length + routed.length) / 3));
  for (const p of shuffle(c.r, answerable).slice(0, n)) rows.push({ row: { messages: msgs(sys, p.question, p.answer) }, template: tplOf(p), content: '', meta: { kind: 'no_tool' } });
  for (const f of shuffle(c.r, refs).slice(0, Math.ceil(n / 4))) rows.push({ row: { messages: msgs(sys, f.question, f.answer) }, template: f.template, content: '', meta: { kind: 'no_tool_refusal' } });
  c.domain.noToolQueries.forEach(({ question: q, answer: a }, i) => rows.push({ row: { messages: msgs(sys, q, a) }, template: `notool:${i}`, content: '', meta: { kind: 'no_tool' } }));
  return rows;
}

interface ClsItem {
  text: string;
  kind: string;
  template: string;
  label: string;
}

function classificationItems(c: Ctx, ls: LabelSet, examples: ToolExample[], chunks: Chunk[]): ClsItem[] {
  const byLabel = new Map<string, ClsItem[]>();
  const push = (label: string, text: string, kind: string, template: string) => {
    if (!ls.labels.includes(label)) {
      c.rejected.push({ stage: `format:classification-${ls.name}`, reason: 'label not in declared set', detail: `${label}: ${text}` });
      return;
    }
    const arr = byLabel.get(label) ?? [];
    arr.push({ text, kind, template, label });
    byLabel.set(label, arr);
  };
  for (const [label, tpls] of Object.entries(ls.templates)) tpls.forEach((t, ti) => expand(t, c.ents, c.r, c.o.perTemplate).forEach((s) => push(label, fill(t, s), 'template', `cls:${ls.name}:${label}:${ti}`)));
  if (ls.fromTools) for (const e of examples) if (ls.fromTools[e.tool.name]) push(ls.fromTools[e.tool.name] as string, e.query, 'tool_query', e.template);
  if (ls.fromTable) {
    const { labelColumn, textColumns } = ls.fromTable;
    for (const ch of chunks) {
      for (const t of parseTables(ch.text)) {
        const head = t.header.map((h) => h.toLowerCase());
        const li = head.indexOf(labelColumn.toLowerCase());
        const ti = textColumns.map((x) => head.indexOf(x.toLowerCase()));
        if (li < 0 || ti.some((x) => x < 0)) continue;
        for (const row of t.rows) {
          const text = ti.map((x) => row[x] ?? '').join(': ').replace(/: ([^:]*)$/, ' on $1');
          push((row[li] ?? '').toLowerCase(), text, 'corpus_table', `table:${ch.id}`);
        }
      }
    }
  }
  const out: ClsItem[] = [];
  for (const items of byLabel.values()) for (const it of shuffle(c.r, items).slice(0, c.o.maxPerLabel)) out.push(it);
  return out;
}

function classificationRows(c: Ctx, ls: LabelSet, items: ClsItem[]): Row[] {
  const wrappers = classificationInstructions(ls);
  const isys = instructionSystemPrompt(c.domain);
  const rows: Row[] = [];
  items.forEach((it, i) => {
    rows.push({ row: { messages: msgs(classificationPrompt(ls), it.text, it.label), text: it.text, label: it.label, label_set: ls.name }, template: it.template, content: '', meta: { kind: it.kind, label: it.label, style: 'bare' } });
    const w = wrappers[(fnv1a(it.text) + i) % wrappers.length] as string;
    rows.push({
      row: { messages: msgs(isys, w.replace('{TEXT}', it.text), it.label), text: it.text, label: it.label, label_set: ls.name },
      template: it.template,
      content: '',
      meta: { kind: `instruction:${it.kind}`, label: it.label, style: 'instruction' },
    });
  });
  return rows;
}

function nerRows(c: Ctx, chunks: Chunk[], examples: ToolExample[]): Row[] {
  const sys = nerPrompt(c.domain);
  const isys = instructionSystemPrompt(c.domain);
  const types = Object.keys(c.domain.entities);
  const texts: { text: string; template: string; kind: string }[] = [];
  for (const ch of chunks) {
    for (const line of ch.text.split('\n')) {
      const l = line.replace(/^\s*(?:[-*]|\d+[.)])\s+/, '').trim();
      if (!l || l.startsWith('|') || l.startsWith('```')) continue;
      for (const s of l.split(/(?<=[.!?])\s+(?=[A-Z])/)) if (s.length >= 12 && s.length <= 300) texts.push({ text: s, template: `chunk:${ch.id}`, kind: 'corpus' });
    }
  }
  for (const e of examples) texts.push({ text: e.query, template: e.template, kind: 'tool_query' });
  const withEnts = texts.filter((t) => findEntities(c.domain, t.text).length);
  const without = texts.filter((t) => !findEntities(c.domain, t.text).length);
  const chosen = [...shuffle(c.r, withEnts).slice(0, c.o.maxNer), ...shuffle(c.r, without).slice(0, Math.ceil(c.o.maxNer / 10))];
  const rows: Row[] = [];
  chosen.forEach((t, i) => {
    const entities = findEntities(c.domain, t.text);
    rows.push({ row: { messages: msgs(sys, t.text, JSON.stringify(entities)), text: t.text, entities }, template: t.template, content: '', meta: { kind: entities.length ? t.kind : 'no_entities', style: 'bare' } });
    // instruction style: the user names the types wanted (those present, sometimes one more that is absent)
    const present = types.filter((ty) => entities.some((e) => e.type === ty));
    const absent = types.filter((ty) => !present.includes(ty));
    if (!types.length) return;
    const asked = present.length ? [...present] : [pick(c.r, types)];
    if (absent.length && c.r() < 0.3) asked.push(pick(c.r, absent));
    const sel = entities.filter((e) => asked.includes(e.type));
    const w = NER_INSTRUCTIONS[(fnv1a(t.text) + i) % NER_INSTRUCTIONS.length] as string;
    const user = w.replace('{TYPES}', listPhrase(asked.map(plural))).replace('{TEXT}', t.text);
    rows.push({ row: { messages: msgs(isys, user, JSON.stringify(sel)), text: t.text, entities: sel }, template: t.template, content: '', meta: { kind: `instruction:${sel.length ? t.kind : 'no_entities'}`, style: 'instruction' } });
  });
  return rows;
}

function dpoRows(c: Ctx, answerable: QAPair[], examples: ToolExample[], routed: ToolExample[], refs: Refusal[], cls: Map<string, ClsItem[]>, ner: Row[]): Row[] {
  const rows: Row[] = [];
  const toolSys = toolSystemPrompt(c.domain);
  const add = (system: string, prompt: string, chosen: string, rejected: string, failure: string, template: string) =>
    rows.push({ row: { system, prompt, chosen, rejected }, template, content: '', meta: { kind: failure, failure } });
  // faithfulness: a fact swapped (numbers, entities) in a grounded answer; a made-up answer where the docs are silent
  for (const p of answerable) {
    const bad = hallucinate(p.answer, c.ents, c.domain, c.r);
    if (bad) add(c.domain.systemPrompt, p.question, p.answer, bad, 'hallucinated_fact', tplOf(p));
  }
  for (const f of refs) add(c.domain.systemPrompt, f.question, f.answer, f.hallucinated, 'hallucinated_answer', f.template);
  // format: tool calls that break their schema in one stated way, malformed JSON, or call the wrong tool
  const kinds = TOOL_FAILURES;
  [...examples, ...routed].forEach((e, i) => {
    const chosen = toolCallText(e.tool.name, e.args);
    for (let k = 0; k < kinds.length; k++) {
      const kind = kinds[(i + k) % kinds.length] as ToolFailure;
      let rejected: string | null = null;
      if (kind === 'malformed_json') rejected = brokenJson(chosen, c.r);
      else if (kind === 'wrong_tool') {
        const other = c.domain.tools.filter((t) => t.name !== e.tool.name);
        if (other.length) {
          const t = pick(c.r, other);
          const q = pick(c.r, t.queries);
          const slots = expand(JSON.stringify(q.arguments), c.ents, c.r, 1)[0];
          if (slots) rejected = toolCallText(t.name, fillArgs(q.arguments, slots) as Record<string, unknown>);
        }
      } else {
        const b = breakArgs(e.tool, e.args, kind, c.r);
        rejected = b ? toolCallText(e.tool.name, b) : null;
      }
      if (rejected) {
        add(toolSys, e.query, chosen, rejected, kind, e.template);
        break;
      }
    }
  });
  // content: a schema-valid call of the right tool whose argument is another value of the same field than the one the
  // request names (another user, another service): the copying error of a small model, which writes the field's most
  // frequent value; no schema check catches it. Every second example, so most tool pairs still fail validation.
  const all = [...examples, ...routed];
  all.forEach((e, i) => {
    if (i % 2) return;
    const bad = wrongValue(e, all, c.r);
    if (bad) add(toolSys, e.query, toolCallText(e.tool.name, e.args), toolCallText(e.tool.name, bad), 'wrong_value', e.template);
  });
  // no tool needed, but the model calls one anyway
  c.domain.noToolQueries.forEach(({ question: q, answer: a }, i) => {
    if (!examples.length) return;
    const e = pick(c.r, examples);
    add(toolSys, q, a, toolCallText(e.tool.name, e.args), 'unneeded_tool_call', `notool:${i}`);
  });
  // labels outside the declared set (format adherence), a few per set
  for (const [name, items] of cls) {
    const ls = c.domain.labelSets.find((l) => l.name === name);
    if (!ls) continue;
    const others = c.domain.labelSets.filter((l) => l !== ls).flatMap((l) => l.labels);
    for (const it of shuffle(c.r, items).slice(0, 12)) {
      const bad = labelOutsideSet(ls, it.label, others, c.r);
      if (bad) add(classificationPrompt(ls), it.text, it.label, bad, 'label_outside_set', it.template);
    }
  }
  // entity lists that do not parse
  for (const r of shuffle(
    c.r,
    ner.filter((x) => x.meta.style === 'bare' && (x.row.entities as NerEntity[]).length),
  ).slice(0, 30)) {
    const ents = r.row.entities as NerEntity[];
    add(nerPrompt(c.domain), String(r.row.text), JSON.stringify(ents), brokenEntities(ents, c.r), 'unparseable_entities', r.template);
  }
  return rows;
}

const CATEGORY: Record<string, string> = {
  hallucinated_fact: 'faithfulness',
  hallucinated_answer: 'faithfulness',
  unneeded_tool_call: 'tool policy',
  label_outside_set: 'label format',
  unparseable_entities: 'entity-list format',
  wrong_tool: 'tool call',
  wrong_value: 'tool arguments (schema-valid, wrong value)',
  malformed_json: 'tool call',
};
const categoryOf = (k: string) => CATEGORY[k] ?? 'tool call';

// ---------- validation, dedupe, split, audit ----------

function validateRows(rows: Row[], schema: z.ZodTypeAny, task: string, rejected: Rejection[]): Row[] {
  return rows.filter((r) => {
    const res = schema.safeParse(r.row);
    if (res.success) return true;
    rejected.push({ stage: `format:${task}`, reason: 'row fails validation', detail: `${res.error.issues.map((i) => i.message).join('; ')} :: ${r.content.slice(0, 120)}` });
    return false;
  });
}

/** Validation contents that are near-duplicates (Jaccard ≥ threshold) of some training content, with the closest match. */
export function auditLeakage(train: string[], val: string[], threshold = 0.8): { hits: number[]; examples: { val: string; train: string; jaccard: number }[] } {
  const idx = new NearDupIndex({ threshold });
  for (const t of train) idx.add(t);
  const hits: number[] = [];
  const examples: { val: string; train: string; jaccard: number }[] = [];
  val.forEach((v, i) => {
    const q = idx.query(v);
    if (!q.length) return;
    hits.push(i);
    const best = q.reduce((a, b) => (b.jaccard > a.jaccard ? b : a));
    examples.push({ val: v, train: train[best.id] as string, jaccard: best.jaccard });
  });
  return { hits, examples };
}

/**
 * Split by clusters: rows sharing a template id, or near-duplicates once masked, are one cluster; clusters are taken
 * in a seeded order into validation while they fit the target size. The audit then checks every validation row
 * against the training rows, plain and masked; a masked hit moves its whole cluster to train.
 */
export function splitRows(
  rows: Row[],
  valFraction: number,
  seed: number,
  mask: (s: string) => string = (s) => s,
  stratum: (r: Row) => string = () => '',
): { train: Row[]; val: Row[]; report: Omit<LeakageReport, 'task'> } {
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
  const byTemplate = new Map<string, number>();
  rows.forEach((r, i) => {
    const g = byTemplate.get(r.template);
    if (g === undefined) byTemplate.set(r.template, i);
    else union(g, i);
  });
  const masked = rows.map((r) => mask(r.content));
  const idx = new NearDupIndex();
  for (const m of masked) idx.add(m);
  for (const p of idx.pairs()) union(p.a, p.b);
  const clusters = new Map<number, number[]>();
  rows.forEach((_, i) => {
    const r = find(i);
    const a = clusters.get(r);
    if (a) a.push(i);
    else clusters.set(r, [i]);
  });
  const order = [...clusters.entries()].sort((a, b) => fnv1a(`${seed}:${rows[a[0]]?.template}`) - fnv1a(`${seed}:${rows[b[0]]?.template}`));
  // Stratified by group (scikit-learn's StratifiedGroupKFold idea): each stratum (a label, a tool) gets its own
  // share of validation rows, and at least half of a stratum's rows stay in train — a plain group split put whole
  // classes into validation (16 service_status rows in val, 8 in train; no severity "low" in train).
  const clusterStratum = (members: number[]) => {
    const c = new Map<string, number>();
    for (const i of members) {
      const k = stratum(rows[i] as Row);
      c.set(k, (c.get(k) ?? 0) + 1);
    }
    return [...c.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
  };
  const sizeOf = new Map<string, number>();
  const strata = new Map<number, string>();
  for (const [root, members] of order) {
    const k = clusterStratum(members);
    strata.set(root, k);
    sizeOf.set(k, (sizeOf.get(k) ?? 0) + members.length);
  }
  const inVal = new Set<number>();
  const taken = new Map<string, number>();
  for (const [root, members] of order) {
    const k = strata.get(root)!;
    const size = sizeOf.get(k)!;
    const n = taken.get(k) ?? 0;
    const target = valFraction * size;
    // take a cluster when it brings the stratum nearer its share (whole clusters only), keeping ≥ half in train
    if (Math.abs(n + members.length - target) >= Math.abs(n - target) || 2 * (n + members.length) > size) continue;
    inVal.add(root);
    taken.set(k, n + members.length);
  }
  const split = () => {
    const train: number[] = [];
    const val: number[] = [];
    rows.forEach((_, i) => (inVal.has(find(i)) ? val : train).push(i));
    return { train, val };
  };
  let { train, val } = split();
  const plain = auditLeakage(
    train.map((i) => rows[i]?.content ?? ''),
    val.map((i) => rows[i]?.content ?? ''),
  );
  const audit = auditLeakage(
    train.map((i) => masked[i] ?? ''),
    val.map((i) => masked[i] ?? ''),
  );
  let moved = 0;
  if (audit.hits.length) {
    for (const h of audit.hits) inVal.delete(find(val[h] as number));
    const before = val.length;
    ({ train, val } = split());
    moved = before - val.length;
  }
  const trainTemplates = new Set(train.map((i) => rows[i]?.template));
  return {
    train: train.map((i) => rows[i] as Row),
    val: val.map((i) => rows[i] as Row),
    report: {
      train: train.length,
      val: val.length,
      sharedTemplates: val.filter((i) => trainTemplates.has(rows[i]?.template)).length,
      unmaskedHits: plain.hits.length,
      maskedHits: audit.hits.length,
      movedToTrain: moved,
      examples: audit.examples.slice(0, 3).map((e) => ({ ...e, val: e.val.slice(0, 160), train: e.train.slice(0, 160) })),
    },
  };
}

/** What a split keeps in proportion: a classification row's label, a tool row's tool (or "no tool"), else the task's kind. */
const stratumOf = (r: Row): string => String(r.meta.label ?? r.meta.kind ?? '');

export function formatAll(domain: Domain, pairs: QAPair[], chunks: Chunk[], opts: FormatOptions = {}): FormatResult {
  const o: Required<FormatOptions> = { seed: 7, valFraction: 0.15, perTemplate: 4, perQaTemplate: 12, maxPerLabel: 40, maxNer: 150, ...opts };
  const c: Ctx = { domain, v: new Validators(domain), ents: corpusEntities(domain, chunks.map((ch) => ch.text)), r: rng(o.seed), o, rejected: [] };
  const duplicatesRemoved: FormatResult['duplicatesRemoved'] = [];
  const leakage: LeakageReport[] = [];

  // Q&A pairs: exact + near duplicate questions/answers removed before anything is built from them
  const dq = dedupe(pairs, (p) => `${p.question}\n${p.answer}`);
  duplicatesRemoved.push({ task: 'qa-pairs', exact: dq.exactDuplicates.length, near: dq.nearDuplicates.length });

  // one policy for questions a tool answers: a tool call wherever tools are offered, never a direct answer
  const examples = toolExamples(c);
  const routed: ToolExample[] = [];
  const answerable: QAPair[] = [];
  const pairsRoutedToTools: Record<string, number> = {};
  for (const p of dq.kept) {
    const r = routeToTool(domain, c.v, p);
    if (!r) {
      answerable.push(p);
      continue;
    }
    routed.push({ query: p.question, tool: r.tool, args: r.args, template: tplOf(p) });
    pairsRoutedToTools[r.tool.name] = (pairsRoutedToTools[r.tool.name] ?? 0) + 1;
  }
  const refs = refusals(c, chunks);

  const tasks: { name: string; rows: Row[]; schema: z.ZodTypeAny; near?: boolean }[] = [];
  // near duplicates are removed in chat too (templated sets legitimately share wording)
  tasks.push({ name: 'chat', rows: chatRows(c, answerable, refs), schema: ChatRow, near: true });
  tasks.push({ name: 'tool', rows: toolRows(c, examples, routed, answerable, refs), schema: c.v.toolRow() });
  const cls = new Map<string, ClsItem[]>();
  for (const ls of domain.labelSets) {
    const items = classificationItems(c, ls, examples, chunks);
    cls.set(ls.name, items);
    tasks.push({ name: `classification-${ls.name}`, rows: classificationRows(c, ls, items), schema: c.v.classificationRow(ls) });
  }
  const ner = nerRows(c, chunks, examples);
  tasks.push({ name: 'ner', rows: ner, schema: c.v.nerRow() });
  tasks.push({ name: 'dpo', rows: dpoRows(c, answerable, examples, routed, refs, cls, ner), schema: DpoRow });

  const types = Object.keys(domain.entities);
  const labelSetBySystem = new Map(domain.labelSets.map((ls) => [classificationPrompt(ls), ls]));
  const rejectedIsFailure = (r: Row): boolean => {
    const rej = String(r.row.rejected);
    const f = r.meta.failure ?? '';
    if (f === 'wrong_value') {
      // valid, the right tool, other arguments
      const chk = c.v.checkToolCall(rej);
      const chosen = c.v.checkToolCall(String(r.row.chosen));
      return chk.ok && chosen.ok && chk.name === chosen.name && rej !== String(r.row.chosen);
    }
    if ((TOOL_FAILURES as readonly string[]).includes(f)) {
      const chk = c.v.checkToolCall(rej);
      if (f === 'wrong_tool') {
        const chosen = c.v.checkToolCall(String(r.row.chosen));
        return chk.ok && chosen.ok && chk.name !== chosen.name;
      }
      return !chk.ok;
    }
    if (f === 'label_outside_set') return !(labelSetBySystem.get(String(r.row.system))?.labels.includes(rej) ?? true);
    if (f === 'unparseable_entities') return !parsesAsEntities(rej, String(r.row.prompt), types);
    return true;
  };

  const sets: TaskSet[] = [];
  const mask = (s: string) => maskText(domain, s);
  let dpoKept: Row[] = [];
  for (const t of tasks) {
    for (const r of t.rows) r.content = rowContent(r.row);
    let rows = validateRows(t.rows, t.schema, t.name, c.rejected);
    // DPO: the rejected side must really be the failure it claims to be
    if (t.name === 'dpo')
      rows = rows.filter((r) => {
        if (rejectedIsFailure(r)) return true;
        c.rejected.push({ stage: 'format:dpo', reason: `rejected answer is not a ${r.meta.failure}`, detail: String(r.row.rejected) });
        return false;
      });
    const d = dedupe(rows, (r) => (t.name === 'dpo' ? `${String(r.row.system)}\n${r.content}\n${String(r.row.rejected)}` : JSON.stringify(r.row)), t.near ? {} : { threshold: 1.01 });
    duplicatesRemoved.push({ task: t.name, exact: d.exactDuplicates.length, near: d.nearDuplicates.length });
    if (t.name === 'dpo') dpoKept = d.kept;
    const s = splitRows(d.kept, o.valFraction, o.seed, mask, stratumOf);
    leakage.push({ task: t.name, ...s.report });
    const count = (f: (r: Row) => string | undefined) => {
      const m: Record<string, number> = {};
      for (const r of d.kept) {
        const k = f(r);
        if (k) m[k] = (m[k] ?? 0) + 1;
      }
      return m;
    };
    const meta = (r: Row): RowMeta => ({ template: r.template, kind: r.meta.kind, ...(r.meta.style ? { style: r.meta.style } : {}), ...(r.meta.failure ? { failure: r.meta.failure } : {}) });
    sets.push({
      name: t.name,
      train: s.train.map((r) => r.row),
      val: s.val.map((r) => r.row),
      trainMeta: s.train.map(meta),
      valMeta: s.val.map(meta),
      kinds: count((r) => r.meta.kind),
      templates: count((r) => r.template),
      labels: t.name.startsWith('classification-') ? count((r) => r.meta.label) : undefined,
      failures: t.name === 'dpo' ? count((r) => r.meta.failure) : undefined,
    });
  }

  const byKind: Record<string, number> = {};
  const byCategory: Record<string, number> = {};
  let toolJsonPairs = 0;
  let toolJsonSchemaFailures = 0;
  for (const r of dpoKept) {
    const k = r.meta.failure ?? '?';
    byKind[k] = (byKind[k] ?? 0) + 1;
    byCategory[categoryOf(k)] = (byCategory[categoryOf(k)] ?? 0) + 1;
    const chosen = String(r.row.chosen);
    const isTool = chosen.startsWith('<tool_call>');
    const isEnts = !isTool && parsesAsEntities(chosen, String(r.row.prompt), types);
    if (!isTool && !isEnts) continue;
    toolJsonPairs++;
    const rej = String(r.row.rejected);
    if (isTool ? !c.v.checkToolCall(rej).ok : !parsesAsEntities(rej, String(r.row.prompt), types)) toolJsonSchemaFailures++;
  }
  const instructionRows: Record<string, number> = {};
  for (const s of sets) {
    const n = [...s.trainMeta, ...s.valMeta].filter((m) => m.style === 'instruction').length;
    if (n) instructionRows[s.name] = n;
  }
  return {
    sets,
    rejected: c.rejected,
    duplicatesRemoved,
    leakage,
    dpoMix: { byKind, byCategory, toolJsonPairs, toolJsonSchemaFailures },
    policy: { pairsRoutedToTools, refusals: refs.length, instructionRows },
  };
}

export type { Message };
