// The OpenAI (legacy) text-completions facade over any generate(), as vLLM serves it at
// /v1/completions: request validation (zod, errors name the field), request → generate options,
// the `text_completion` response and its stream of chunks, and the legacy logprobs format
// ({tokens, token_logprobs, top_logprobs, text_offset}). The server and the worker both call it.
import { z } from 'zod';
import { InvalidRequestError, validate } from './schema.ts';
import { drain } from './generate.ts';
import { newId, type ResponseMeta } from './openai.ts';
import type { TokenLogprob } from './types.ts';
import type { FinishReason, GenerateFn, GenerateInput, GenerateOptions, Generation, Usage } from './types.ts';

const ids = z.array(z.number().int().min(0)).min(1);
export const completionRequestSchema = z
  .object({
    model: z.string().min(1).nullable().optional(),
    /** A string, token ids, or a one-element list of either (n = 1, one prompt per request). */
    prompt: z.union([z.string(), ids, z.array(z.string()).length(1), z.array(ids).length(1)]),
    stream: z.boolean().nullable().optional(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
    n: z.literal(1).nullable().optional(),
    best_of: z.literal(1).nullable().optional(),
    echo: z.boolean().nullable().optional(),
    /** Legacy logprobs: how many top alternatives per token (0..20); null: none. */
    logprobs: z.number().int().min(0).max(20).nullable().optional(),
    suffix: z.null().optional(),
    max_tokens: z.number().int().positive().nullable().optional(),
    temperature: z.number().min(0).max(2).nullable().optional(),
    top_p: z.number().gt(0).max(1).nullable().optional(),
    top_k: z.number().int().min(0).nullable().optional(),
    repetition_penalty: z.number().gt(0).nullable().optional(),
    seed: z.number().int().nullable().optional(),
    stop: z.union([z.string(), z.array(z.string()).max(16)]).nullable().optional(),
  })
  .passthrough();

export type CompletionRequest = z.infer<typeof completionRequestSchema>;

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Array<Record<string, number>>;
  text_offset: number[];
}

export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: Array<{ index: number; text: string; finish_reason: FinishReason; logprobs: CompletionLogprobs | null }>;
  usage: Usage;
}

export interface CompletionChunk {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: Array<{ index: number; text: string; finish_reason: FinishReason | null; logprobs: CompletionLogprobs | null }>;
  usage?: Usage | null;
}

/** The prompt of a validated completions request as a generate() input. */
export function completionInput(req: CompletionRequest): GenerateInput {
  const p = req.prompt;
  if (typeof p === 'string') return p;
  const first = p[0];
  if (typeof first === 'string') return first;
  if (Array.isArray(first)) return { prompt_ids: first };
  return { prompt_ids: p as number[] };
}

export function completionGenerateOptions(req: CompletionRequest, signal?: AbortSignal): GenerateOptions {
  if (req.echo && req.stream) throw new InvalidRequestError('echo is not supported with stream', 'echo');
  return {
    model: req.model,
    max_tokens: req.max_tokens ?? 16, // OpenAI's and vLLM's default for completions
    temperature: req.temperature,
    top_p: req.top_p,
    top_k: req.top_k,
    repetition_penalty: req.repetition_penalty,
    seed: req.seed,
    stop: req.stop,
    logprobs: req.logprobs ?? null,
    ...(signal ? { signal } : {}),
  };
}

/** Legacy logprobs of a run of tokens; offsets count from `offset0` characters into the returned text. */
export function legacyLogprobs(lps: TokenLogprob[], offset0: number): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let off = offset0;
  for (const lp of lps) {
    out.tokens.push(lp.token);
    out.token_logprobs.push(lp.logprob);
    out.top_logprobs.push(Object.fromEntries(lp.top_logprobs.map((t) => [t.token, t.logprob])));
    out.text_offset.push(off);
    off += lp.token.length;
  }
  return out;
}

export function completionMeta(model: string): ResponseMeta {
  return { id: newId('cmpl'), created: Math.floor(Date.now() / 1000), model };
}

/** The chunks of a streamed completion: text deltas, the finish, then usage when asked. */
export async function* completionChunks(meta: ResponseMeta, g: Generation, includeUsage: boolean): AsyncGenerator<CompletionChunk> {
  let lps: TokenLogprob[] = [];
  let offset = 0;
  const chunk = (text: string, finish: FinishReason | null): CompletionChunk => {
    const logprobs = lps.length ? legacyLogprobs(lps, offset) : null;
    if (logprobs) offset = logprobs.text_offset[logprobs.text_offset.length - 1]! + lps[lps.length - 1]!.token.length;
    lps = [];
    return { id: meta.id, object: 'text_completion', created: meta.created, model: meta.model, choices: [{ index: 0, text, finish_reason: finish, logprobs }], ...(includeUsage ? { usage: null } : {}) };
  };
  for await (const t of g) {
    if (t.logprob) lps.push(t.logprob);
    if (t.text) yield chunk(t.text, null);
  }
  const s = await g.done;
  yield chunk('', s.finishReason);
  if (includeUsage) yield { id: meta.id, object: 'text_completion', created: meta.created, model: meta.model, choices: [], usage: s.usage };
}

/**
 * completions.create over `generate`: validates, starts the generation (a bad model / too long
 * prompt throws here, before any chunk) and returns the completion or its chunk stream.
 */
export async function createCompletion(
  generate: GenerateFn,
  body: CompletionRequest & { signal?: AbortSignal },
  defaultModel: string,
  decodePrompt?: (ids: number[]) => string,
): Promise<Completion | AsyncIterable<CompletionChunk>> {
  const { signal, ...plain } = body;
  const req = validate(completionRequestSchema, plain, 'request');
  const input = completionInput(req);
  const g = generate(input, completionGenerateOptions(req, signal));
  const meta = completionMeta(req.model ?? defaultModel);
  if (req.stream) return completionChunks(meta, g, req.stream_options?.include_usage === true);
  const s = await drain(g);
  const echo = !req.echo ? '' : typeof input === 'string' ? input : (decodePrompt?.((input as { prompt_ids: number[] }).prompt_ids) ?? '');
  return {
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, text: echo + s.text, finish_reason: s.finishReason, logprobs: s.logprobs ? legacyLogprobs(s.logprobs, echo.length) : null }],
    usage: s.usage,
  };
}
