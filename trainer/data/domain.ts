import { readFile } from 'node:fs/promises';
import Ajv from 'ajv';
import { z } from 'zod';
import { zodIssues } from './util.ts';

const JsonSchema: z.ZodType<Record<string, unknown>> = z.record(z.string(), z.unknown());

export const ToolSpecSchema = z.object({
  name: z.string().regex(/^[a-zA-Z_][\w-]*$/),
  description: z.string(),
  parameters: JsonSchema,
  queries: z.array(z.object({ text: z.string(), arguments: z.record(z.string(), z.unknown()) })).min(1),
  /**
   * Question templates of the Q&A pairs this tool answers (globs over template ids, e.g. "error_code:*",
   * "table:username:*"): such a question becomes a call of this tool with the pair's subject as the argument,
   * in every set — never a direct answer.
   */
  answers: z.array(z.string()).default([]),
});
export type ToolSpec = z.infer<typeof ToolSpecSchema>;

export const LabelSetSchema = z.object({
  name: z.string(),
  description: z.string().default(''),
  labels: z.array(z.string()).min(2),
  templates: z.record(z.string(), z.array(z.string())).default({}),
  /** tool name → label: the tool queries become examples of that label */
  fromTools: z.record(z.string(), z.string()).optional(),
  /** Markdown tables in the corpus with this column supply labelled examples */
  fromTable: z.object({ labelColumn: z.string(), textColumns: z.array(z.string()).min(1) }).optional(),
  /** how a user asks for this classification, with {TEXT} for the text (defaults are generated from the name) */
  instructions: z.array(z.string().includes('{TEXT}')).default([]),
});
export type LabelSet = z.infer<typeof LabelSetSchema>;

export const DomainSchema = z
  .object({
    name: z.string(),
    description: z.string().default(''),
    systemPrompt: z.string(),
    entities: z.record(
      z.string().regex(/^[A-Z_]+$/),
      z.object({ pattern: z.string().optional(), values: z.array(z.string()).optional() }).refine((e) => e.pattern || e.values?.length, 'an entity needs a pattern or values'),
    ),
    tools: z.array(ToolSpecSchema).default([]),
    /** requests that need no tool, with the answer the assistant should give */
    noToolQueries: z.array(z.object({ question: z.string(), answer: z.string() })).default([]),
    labelSets: z.array(LabelSetSchema).default([]),
    general: z.array(z.object({ question: z.string(), answer: z.string() })).default([]),
    /** how to ask about a table column: {"Region": {"question": "Where does {SUBJECT} run?", "answer": "{SUBJECT} runs in {VALUE}."}} */
    tableQuestions: z
      .record(z.string(), z.object({ question: z.string().includes('{SUBJECT}').or(z.string().includes('{KEY}')), answer: z.string().includes('{VALUE}') }))
      .default({}),
  })
  .superRefine((d, ctx) => {
    d.labelSets.forEach((ls, i) => {
      const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['labelSets', i, ...path], message });
      for (const k of Object.keys(ls.templates)) if (!ls.labels.includes(k)) issue(['templates', k], `label set ${ls.name}: template label ${k} is not declared in labels`);
      for (const [t, v] of Object.entries(ls.fromTools ?? {})) {
        if (!ls.labels.includes(v)) issue(['fromTools', t], `label set ${ls.name}: fromTools label ${v} is not declared in labels`);
        if (!d.tools.some((x) => x.name === t)) issue(['fromTools', t], `label set ${ls.name}: fromTools names tool ${t}, which is not declared in tools`);
      }
    });
  });
export type Domain = z.infer<typeof DomainSchema>;

/**
 * Load and validate a domain spec. Every error names the file and the field: JSON syntax, the zod schema, entity
 * patterns that are not regular expressions, tool parameters that are not JSON Schemas, templates naming entity
 * types that are not declared.
 */
export async function loadDomain(path: string): Promise<Domain> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read the domain spec: ${(e as Error).message}`);
  }
  return parseDomain(text, path);
}

export function parseDomain(text: string, path = 'domain.json'): Domain {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: invalid JSON: ${(e as Error).message}`);
  }
  const res = DomainSchema.safeParse(raw);
  if (!res.success) throw new Error(`${path}: invalid domain spec: ${zodIssues(res.error)}`);
  const d = res.data;
  const problems: string[] = [];
  for (const [type, e] of Object.entries(d.entities)) {
    if (!e.pattern) continue;
    try {
      new RegExp(e.pattern, 'g');
    } catch (err) {
      problems.push(`entities.${type}.pattern: not a regular expression (${(err as Error).message})`);
    }
  }
  const ajv = new Ajv({ strict: false });
  const types = new Set(Object.keys(d.entities));
  const slots = (s: string, where: string) => {
    for (const m of s.matchAll(/\{([A-Z_]+)\}/g)) if (!types.has(m[1] as string)) problems.push(`${where}: entity type {${m[1]}} is not declared in entities`);
  };
  d.tools.forEach((t, i) => {
    try {
      ajv.compile(t.parameters);
    } catch (err) {
      problems.push(`tools[${i}].parameters: not a valid JSON Schema (${(err as Error).message})`);
    }
    t.queries.forEach((q, j) => {
      slots(q.text, `tools[${i}].queries[${j}].text`);
      slots(JSON.stringify(q.arguments), `tools[${i}].queries[${j}].arguments`);
    });
  });
  d.labelSets.forEach((ls, i) => {
    for (const [label, tpls] of Object.entries(ls.templates)) tpls.forEach((t, j) => slots(t, `labelSets[${i}].templates.${label}[${j}]`));
  });
  if (problems.length) throw new Error(`${path}: invalid domain spec: ${problems.join('; ')}`);
  return d;
}

/** Regex finding every occurrence of an entity type (patterns as given, values as whole words). */
export function entityRegex(d: Domain, type: string): RegExp {
  const e = d.entities[type];
  if (!e) throw new Error(`unknown entity type ${type}`);
  if (e.pattern) return new RegExp(e.pattern, 'g');
  const alts = [...(e.values ?? [])].sort((a, b) => b.length - a.length).map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`(?<![\\w.-])(?:${alts.join('|')})(?![\\w-]|\\.\\w)`, 'g');
}

/** Entity values that actually occur in the corpus, by type (falls back to declared values). */
export function corpusEntities(d: Domain, texts: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const type of Object.keys(d.entities)) {
    const re = entityRegex(d, type);
    const found = new Set<string>();
    for (const t of texts) for (const m of t.matchAll(re)) found.add(m[0]);
    const vals = [...found].sort();
    out[type] = vals.length ? vals : [...(d.entities[type]?.values ?? [])];
  }
  return out;
}
