import { readFile } from 'node:fs/promises';
import { z } from 'zod';

const JsonSchema: z.ZodType<Record<string, unknown>> = z.record(z.string(), z.unknown());

export const ToolSpecSchema = z.object({
  name: z.string().regex(/^[a-zA-Z_][\w-]*$/),
  description: z.string(),
  parameters: JsonSchema,
  queries: z.array(z.object({ text: z.string(), arguments: z.record(z.string(), z.unknown()) })).min(1),
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
  })
  .superRefine((d, ctx) => {
    for (const ls of d.labelSets) {
      for (const k of Object.keys(ls.templates))
        if (!ls.labels.includes(k)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `label set ${ls.name}: template label ${k} is not declared` });
      for (const v of Object.values(ls.fromTools ?? {}))
        if (!ls.labels.includes(v)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `label set ${ls.name}: fromTools label ${v} is not declared` });
    }
  });
export type Domain = z.infer<typeof DomainSchema>;

export async function loadDomain(path: string): Promise<Domain> {
  return DomainSchema.parse(JSON.parse(await readFile(path, 'utf8')));
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
