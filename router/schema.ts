/**
 * The router file (router.json), validated with zod. Paths inside it (the encoder's model or
 * directory) are relative to the router file.
 */
import { z } from 'zod';
import { FeatureSpecSchema } from './features.ts';
import { RouterError } from './encoder.ts';

export const RouteSchema = z
  .object({
    name: z.string().regex(/^[\w.-]+$/, 'route names are letters, digits, _ . -'),
    adapter: z.string().min(1),
    description: z.string().optional(),
    utterances: z.array(z.string().refine((s) => s.trim() !== '', 'utterance is empty')).min(1, 'a route needs at least one utterance'),
    /** Score (cosine, -1..1) below which this route is not taken. Default: scoring.threshold. */
    threshold: z.number().min(-1).max(1).optional(),
  })
  .strict();
export type Route = z.infer<typeof RouteSchema>;

export const HashedEncoderSpecSchema = z
  .object({
    type: z.literal('hashed'),
    /** The .onnx file written by `route build` (router/hashed.ts). */
    model: z.string().min(1),
    dim: z.number().int().positive(),
    features: FeatureSpecSchema,
  })
  .strict();

export const HfEncoderSpecSchema = z
  .object({
    type: z.literal('hf'),
    /** Directory with model.onnx (or onnx/model.onnx), tokenizer.json, optional tokenizer_config.json and 1_Pooling/config.json. */
    dir: z.string().min(1),
    /** Overrides 1_Pooling/config.json; mean when neither says. */
    pooling: z.enum(['mean', 'cls']).optional(),
    maxLength: z.number().int().min(2).max(8192).default(256),
  })
  .strict();

export const EncoderSpecSchema = z.discriminatedUnion('type', [HashedEncoderSpecSchema, HfEncoderSpecSchema]);
export type EncoderSpec = z.infer<typeof EncoderSpecSchema>;

export const RouterFileSchema = z
  .object({
    version: z.literal(1),
    encoder: EncoderSpecSchema,
    /** What is embedded for a chat request: the last user message, optionally after the system prompt. */
    embed: z.object({ system: z.boolean().default(false) }).strict().default({}),
    scoring: z
      .object({
        aggregate: z.enum(['mean', 'max']).default('mean'),
        /** A route's score aggregates its top-k utterance similarities. */
        topK: z.number().int().min(1).default(3),
        /** Default per-route threshold. */
        threshold: z.number().min(-1).max(1).default(0),
        /** Two routes whose scores differ by at most this are a tie. */
        tieEpsilon: z.number().min(0).default(1e-6),
      })
      .strict()
      .default({}),
    /** Taken when no route passes its threshold. */
    fallback: z.object({ adapter: z.string().min(1).default('chat_adapter') }).strict().default({}),
    routes: z.array(RouteSchema).min(1, 'a router needs at least one route'),
  })
  .strict()
  .superRefine((f, ctx) => {
    const seen = new Set<string>();
    f.routes.forEach((r, i) => {
      if (seen.has(r.name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['routes', i, 'name'], message: `duplicate route name '${r.name}'` });
      seen.add(r.name);
    });
  });
export type RouterFile = z.infer<typeof RouterFileSchema>;
export type RouterFileInput = z.input<typeof RouterFileSchema>;

/** zod issues as "file: path.to.field: message" lines. */
export function formatZodError(what: string, err: z.ZodError): string {
  return err.issues.map((i) => `${what}: ${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('\n');
}

export function parseRouterFile(json: unknown, what = 'router file'): RouterFile {
  const r = RouterFileSchema.safeParse(json);
  if (!r.success) throw new RouterError(`invalid router file\n${formatZodError(what, r.error)}`);
  return r.data;
}

// ---------------------------------------------------------------- requests

const ContentSchema = z.union([
  z.string(),
  z.array(z.object({ type: z.string(), text: z.string().optional() }).passthrough()),
  z.null(),
]);
export const ChatMessageSchema = z.object({ role: z.string(), content: ContentSchema.optional() }).passthrough();
export type ChatMessage = { role: string; content?: string | null | Array<{ type: string; text?: string }> };

export function contentText(c: ChatMessage['content']): string {
  if (c == null) return '';
  if (typeof c === 'string') return c;
  return c.filter((p) => p.type === 'text' && typeof p.text === 'string').map((p) => p.text).join('\n');
}

/** The text a router embeds for a request. Throws on empty text or a chat without a user message. */
export function requestText(input: string | ChatMessage[], embed: { system: boolean }): string {
  if (typeof input === 'string') {
    if (input.trim() === '') throw new RouterError('route: the text is empty');
    return input;
  }
  const parsed = z.array(ChatMessageSchema).min(1).safeParse(input);
  if (!parsed.success) throw new RouterError(`route: invalid messages\n${formatZodError('messages', parsed.error)}`);
  const msgs = parsed.data as ChatMessage[];
  let user: string | undefined;
  for (let i = msgs.length - 1; i >= 0; i--) if (msgs[i].role === 'user') {
    user = contentText(msgs[i].content);
    break;
  }
  if (user === undefined) throw new RouterError('route: the messages have no user message');
  if (user.trim() === '') throw new RouterError('route: the last user message is empty');
  if (embed.system) {
    const sys = msgs.find((m) => m.role === 'system');
    const s = sys ? contentText(sys.content).trim() : '';
    if (s) return `${s}\n${user}`;
  }
  return user;
}
