/**
 * Row schemas for the emitted task sets (zod), with the semantic checks that make a row trustworthy:
 * tool-call targets parse and their arguments validate against the tool's JSON Schema (ajv), labels come from the
 * declared set, NER offsets slice the text to exactly the entity text.
 */
import Ajv, { type ValidateFunction } from 'ajv';
import { z } from 'zod';
import type { Domain, LabelSet } from './domain.ts';

export const Message = z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string().min(1) });
export type Message = z.infer<typeof Message>;

export const Messages = z
  .array(Message)
  .min(2)
  .superRefine((ms, ctx) => {
    const body = ms[0]?.role === 'system' ? ms.slice(1) : ms;
    if (ms.slice(1).some((m) => m.role === 'system')) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'system message only first' });
    body.forEach((m, i) => {
      if (m.role !== (i % 2 === 0 ? 'user' : 'assistant')) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `turn ${i} should be ${i % 2 === 0 ? 'user' : 'assistant'}` });
    });
    if (ms[ms.length - 1]?.role !== 'assistant') ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'last message must be the assistant target' });
  });

export const ChatRow = z.object({ messages: Messages }).strict();
export type ChatRow = z.infer<typeof ChatRow>;

export const NerEntity = z.object({ type: z.string(), text: z.string().min(1), start: z.number().int().nonnegative(), end: z.number().int().positive() }).strict();
export type NerEntity = z.infer<typeof NerEntity>;

export const DpoRow = z
  .object({ system: z.string().min(1), prompt: z.string().min(1), chosen: z.string().min(1), rejected: z.string().min(1) })
  .strict()
  .refine((r) => r.chosen !== r.rejected, 'chosen and rejected are identical');
export type DpoRow = z.infer<typeof DpoRow>;

export const TOOL_CALL_RE = /^<tool_call>([\s\S]*)<\/tool_call>$/;

export function toolCallText(name: string, args: Record<string, unknown>): string {
  return `<tool_call>${JSON.stringify({ name, arguments: args })}</tool_call>`;
}

export type ToolCallCheck = { ok: true; name: string; args: Record<string, unknown> } | { ok: false; error: string };

export class Validators {
  private readonly ajv = new Ajv({ allErrors: true, strict: false });
  private readonly tools = new Map<string, ValidateFunction>();
  constructor(readonly domain: Domain) {
    for (const t of domain.tools) this.tools.set(t.name, this.ajv.compile(t.parameters));
  }

  /** Is `content` a tool call that names a known tool with schema-valid arguments? */
  checkToolCall(content: string): ToolCallCheck {
    const m = TOOL_CALL_RE.exec(content.trim());
    if (!m) return { ok: false, error: 'not a <tool_call> block' };
    let obj: unknown;
    try {
      obj = JSON.parse(m[1] ?? '');
    } catch (e) {
      return { ok: false, error: `invalid JSON: ${(e as Error).message}` };
    }
    const shape = z.object({ name: z.string(), arguments: z.record(z.string(), z.unknown()) }).strict().safeParse(obj);
    if (!shape.success) return { ok: false, error: `tool call shape: ${shape.error.issues.map((i) => i.message).join('; ')}` };
    const v = this.tools.get(shape.data.name);
    if (!v) return { ok: false, error: `unknown tool ${shape.data.name}` };
    if (!v(shape.data.arguments)) return { ok: false, error: `arguments fail schema: ${this.ajv.errorsText(v.errors)}` };
    return { ok: true, name: shape.data.name, args: shape.data.arguments };
  }

  validateArgs(tool: string, args: unknown): string | null {
    const v = this.tools.get(tool);
    if (!v) return `unknown tool ${tool}`;
    return v(args) ? null : this.ajv.errorsText(v.errors);
  }

  toolRow() {
    return ChatRow.superRefine((r, ctx) => {
      const target = r.messages[r.messages.length - 1]?.content ?? '';
      if (target.includes('<tool_call>')) {
        const c = this.checkToolCall(target);
        if (!c.ok) ctx.addIssue({ code: z.ZodIssueCode.custom, message: c.error });
      }
    });
  }

  classificationRow(ls: LabelSet) {
    return z
      .object({ messages: Messages, text: z.string().min(1), label: z.enum(ls.labels as [string, ...string[]]), label_set: z.literal(ls.name) })
      .strict()
      .refine((r) => r.messages[r.messages.length - 1]?.content === r.label, 'assistant target must be the label');
  }

  nerRow() {
    const types = Object.keys(this.domain.entities);
    return z
      .object({ messages: Messages, text: z.string().min(1), entities: z.array(NerEntity) })
      .strict()
      .superRefine((r, ctx) => {
        for (const e of r.entities) {
          if (!types.includes(e.type)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `unknown entity type ${e.type}` });
          if (r.text.slice(e.start, e.end) !== e.text) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `offsets ${e.start}-${e.end} do not match "${e.text}"` });
        }
        const sorted = [...r.entities].sort((a, b) => a.start - b.start);
        for (let i = 1; i < sorted.length; i++)
          if ((sorted[i]?.start ?? 0) < (sorted[i - 1]?.end ?? 0)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'overlapping entities' });
        let target: unknown;
        try {
          target = JSON.parse(r.messages[r.messages.length - 1]?.content ?? '');
        } catch {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'assistant target is not JSON' });
          return;
        }
        if (JSON.stringify(target) !== JSON.stringify(r.entities)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'assistant target differs from entities' });
      });
  }
}
