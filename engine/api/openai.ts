// The OpenAI chat-completions facade over any generate() — the library's engine, the worker and
// the HTTP server all call these: request validation, request → generate options, the response
// object and the stream of chunks (with stream_options.include_usage).
import { chatCompletionRequestSchema, InvalidRequestError, validate, type ChatCompletionRequest } from './schema.ts';
import { drain } from './generate.ts';
import type { TokenLogprob } from './logprobs.ts';
import type { ChatCompletion, ChatCompletionChunk, FinishReason, GenerateFn, GenerateOptions, Generation, GenerationSummary } from './types.ts';

let idCounter = 0;
export const newId = (prefix: string): string => `${prefix}-${Date.now().toString(36)}${(idCounter++).toString(36)}`;

/** A validated chat request's generate() options. */
export function chatGenerateOptions(req: ChatCompletionRequest, signal?: AbortSignal): GenerateOptions {
  if (req.top_logprobs != null && req.logprobs !== true) throw new InvalidRequestError('top_logprobs needs logprobs: true', 'top_logprobs');
  return {
    logprobs: req.logprobs === true ? (req.top_logprobs ?? 0) : null,
    model: req.model,
    max_tokens: req.max_tokens ?? req.max_completion_tokens,
    temperature: req.temperature,
    top_p: req.top_p,
    top_k: req.top_k,
    repetition_penalty: req.repetition_penalty,
    seed: req.seed,
    stop: req.stop,
    ...(signal ? { signal } : {}),
  };
}

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
}

export function responseMeta(model: string): ResponseMeta {
  return { id: newId('chatcmpl'), created: Math.floor(Date.now() / 1000), model };
}

export function chatCompletionOf(meta: ResponseMeta, s: GenerationSummary): ChatCompletion {
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, message: { role: 'assistant', content: s.text }, finish_reason: s.finishReason, logprobs: s.logprobs ? { content: s.logprobs } : null }],
    usage: s.usage,
  };
}

/** The chunks of a streamed completion: role, content deltas, finish, then usage when asked. */
export async function* chatCompletionChunks(meta: ResponseMeta, g: Generation, includeUsage: boolean): AsyncGenerator<ChatCompletionChunk> {
  // logprobs of tokens whose text is still held back (partial UTF-8, possible stop string) ride on the next chunk
  let lps: TokenLogprob[] | null = null;
  const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finish: FinishReason | null): ChatCompletionChunk => {
    const logprobs = lps && lps.length ? { content: lps } : null;
    if (lps) lps = [];
    return {
      id: meta.id,
      object: 'chat.completion.chunk',
      created: meta.created,
      model: meta.model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs }],
      ...(includeUsage ? { usage: null } : {}),
    };
  };
  yield chunk({ role: 'assistant', content: '' }, null);
  for await (const t of g) {
    if (t.logprob) (lps ??= []).push(t.logprob);
    if (t.text) yield chunk({ content: t.text }, null);
  }
  const s = await g.done;
  yield chunk({}, s.finishReason);
  if (includeUsage) yield { id: meta.id, object: 'chat.completion.chunk', created: meta.created, model: meta.model, choices: [], usage: s.usage };
}

/**
 * chat.completions.create over `generate`: validates the body (InvalidRequestError naming the
 * field), starts the generation (so a bad model / too long prompt throws here, before any chunk),
 * and returns the completion or its chunk stream. `defaultModel` names the response when the
 * request leaves `model` out (the base model).
 */
export async function createChatCompletion(
  generate: GenerateFn,
  body: ChatCompletionRequest,
  defaultModel: string,
): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
  const { signal, ...plain } = body as ChatCompletionRequest & { signal?: AbortSignal };
  const req = validate(chatCompletionRequestSchema, plain, 'request');
  const g = generate({ messages: req.messages }, chatGenerateOptions(req, signal));
  const meta = responseMeta(req.model ?? defaultModel);
  if (!req.stream) return chatCompletionOf(meta, await drain(g));
  return chatCompletionChunks(meta, g, req.stream_options?.include_usage === true);
}
