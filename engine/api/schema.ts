// Request validation for the OpenAI-style facade and engine.generate (zod), with errors that
// name the field: `invalid request: messages.0.role: Invalid enum value ...`.
import { z } from 'zod';
import { LorafleetError } from '../../shaders/lib/errors.ts';

export class InvalidRequestError extends LorafleetError {
  constructor(message: string, param?: string) {
    super(message, 'invalid_request', { param });
    this.name = 'InvalidRequestError';
  }
}

const toolCallSchema = z
  .object({
    id: z.string().optional(),
    type: z.literal('function').optional(),
    function: z.object({ name: z.string().min(1), arguments: z.string() }).passthrough(),
  })
  .passthrough();

const messageSchema = z
  .object({
    role: z.enum(['system', 'user', 'assistant', 'tool', 'developer']),
    // null: an assistant message that only carries tool_calls
    content: z
      .union([z.string(), z.array(z.object({ type: z.literal('text'), text: z.string() }).passthrough())])
      .nullable()
      .optional(),
    name: z.string().optional(),
    tool_calls: z.array(toolCallSchema).optional(),
    tool_call_id: z.string().optional(),
  })
  .passthrough();

// ---- structured output (OpenAI response_format / tools, vLLM guided_*)
const jsonSchemaValue = z.union([z.record(z.unknown()), z.boolean()]);
export const responseFormatSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }).passthrough(),
  z.object({ type: z.literal('json_object') }).passthrough(),
  z
    .object({
      type: z.literal('json_schema'),
      json_schema: z
        .object({ name: z.string().min(1).max(64).optional(), description: z.string().optional(), schema: jsonSchemaValue.optional(), strict: z.boolean().nullable().optional() })
        .passthrough(),
    })
    .passthrough(),
]);

export const toolSchema = z
  .object({
    type: z.literal('function'),
    function: z
      .object({
        name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'function names are 1-64 of a-z, A-Z, 0-9, _ and -'),
        description: z.string().optional(),
        parameters: z.record(z.unknown()).optional(),
        strict: z.boolean().nullable().optional(),
      })
      .passthrough(),
  })
  .passthrough();

export const toolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z.object({ type: z.literal('function'), function: z.object({ name: z.string().min(1) }) }).passthrough(),
]);

/** Output-constraint fields shared by generate() and chat.completions.create(). */
const structuredShape = {
  response_format: responseFormatSchema.nullable().optional(),
  guided_json: z.union([jsonSchemaValue, z.string()]).nullable().optional(),
  guided_regex: z.string().nullable().optional(),
  guided_choice: z.array(z.string()).nullable().optional(),
  guided_grammar: z.string().nullable().optional(),
  tools: z.array(toolSchema).max(128).nullable().optional(),
  tool_choice: toolChoiceSchema.nullable().optional(),
  parallel_tool_calls: z.boolean().nullable().optional(),
};

const stopSchema = z.union([z.string(), z.array(z.string()).max(16)]).nullable().optional();

/** Sampling knobs shared by generate() and chat.completions.create(). */
const samplingShape = {
  max_tokens: z.number().int().positive().nullable().optional(),
  max_completion_tokens: z.number().int().positive().nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  top_k: z.number().int().min(0).nullable().optional(),
  repetition_penalty: z.number().gt(0).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  stop: stopSchema,
};

export const chatCompletionRequestSchema = z
  .object({
    /** An adapter name or the base model's name; left out (or null): the base model. */
    model: z.string().min(1).nullable().optional(),
    messages: z.array(messageSchema).min(1, 'messages must contain at least one message'),
    stream: z.boolean().nullable().optional(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
    n: z.literal(1).nullable().optional(),
    logprobs: z.boolean().nullable().optional(),
    top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
    ...samplingShape,
    ...structuredShape,
  })
  .passthrough();

export type ChatMessage = z.infer<typeof messageSchema>;
export type ToolDefinition = z.infer<typeof toolSchema>;
export type ToolChoice = z.infer<typeof toolChoiceSchema>;
export type ResponseFormat = z.infer<typeof responseFormatSchema>;
export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema> & { signal?: AbortSignal };

export const generateOptionsSchema = z
  .object({
    model: z.string().nullable().optional(),
    logprobs: z.number().int().min(0).max(20).nullable().optional(),
    ...samplingShape,
    ...structuredShape,
  })
  .passthrough();

export type GenerateOptionsInput = z.infer<typeof generateOptionsSchema>;

/** Validates with a schema; throws InvalidRequestError naming the first bad field. */
export function validate<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issues = r.error.issues.slice(0, 3).map((i) => {
    const path = i.path.join('.');
    return path ? `${path}: ${i.message}` : i.message;
  });
  const first = r.error.issues[0];
  throw new InvalidRequestError(`invalid ${what}: ${issues.join('; ')}`, first?.path.join('.') || undefined);
}

/** Message content as plain text (array content parts are concatenated). */
export function contentText(c: ChatMessage['content']): string {
  return c == null ? '' : typeof c === 'string' ? c : c.map((p) => p.text).join('');
}
