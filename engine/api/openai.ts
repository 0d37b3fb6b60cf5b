// The OpenAI chat-completions facade over any generate() — the library's engine, the worker and
// the HTTP server all call these: request validation, request → generate options (structured
// output included: response_format, tools / tool_choice, vLLM's guided_*), the response object
// and the stream of chunks (with stream_options.include_usage); tool calls in the generated
// text become `tool_calls` (non-streaming and streamed deltas) with finish_reason "tool_calls".
import { chatCompletionRequestSchema, InvalidRequestError, validate, type ChatCompletionRequest } from './schema.ts';
import { drain } from './generate.ts';
import type { TokenLogprob } from './logprobs.ts';
import { parseToolCalls, ToolCallStream } from '../structured/request.ts';
import type { ChatCompletion, ChatCompletionChunk, ChatFinishReason, GenerateFn, GenerateOptions, Generation, GenerationSummary, RouteFn, RouteInfo } from './types.ts';
import { resolveRoute } from './route.ts';
import { LorafleetError } from './errors.ts';

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
    response_format: req.response_format,
    guided_json: req.guided_json,
    guided_regex: req.guided_regex,
    guided_choice: req.guided_choice,
    guided_grammar: req.guided_grammar,
    tools: req.tools,
    tool_choice: req.tool_choice,
    parallel_tool_calls: req.parallel_tool_calls,
    ...(signal ? { signal } : {}),
  };
}

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
  /** The request offered tools: parse tool calls out of the generated text. */
  tools?: boolean;
}

export function responseMeta(model: string, tools = false): ResponseMeta {
  return { id: newId('chatcmpl'), created: Math.floor(Date.now() / 1000), model, tools };
}

export function chatCompletionOf(meta: ResponseMeta, s: GenerationSummary): ChatCompletion {
  let message: ChatCompletion['choices'][0]['message'] = { role: 'assistant', content: s.text };
  let finish: ChatFinishReason = s.finishReason;
  if (meta.tools) {
    const { content, calls } = parseToolCalls(s.text);
    if (calls.length) {
      message = { role: 'assistant', content, tool_calls: calls };
      if (finish === 'stop') finish = 'tool_calls';
    }
  }
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, message, finish_reason: finish, logprobs: s.logprobs ? { content: s.logprobs } : null }],
    usage: s.usage,
  };
}

/** The chunks of a streamed completion: role, content / tool-call deltas, finish, then usage when asked. */
export async function* chatCompletionChunks(meta: ResponseMeta, g: Generation, includeUsage: boolean): AsyncGenerator<ChatCompletionChunk> {
  // logprobs of tokens whose text is still held back (partial UTF-8, possible stop string) ride on the next chunk
  let lps: TokenLogprob[] | null = null;
  const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finish: ChatFinishReason | null): ChatCompletionChunk => {
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
  const tc = meta.tools ? new ToolCallStream() : null;
  let nCalls = 0;
  for await (const t of g) {
    if (t.logprob) (lps ??= []).push(t.logprob);
    if (!t.text) continue;
    if (!tc) {
      yield chunk({ content: t.text }, null);
      continue;
    }
    const { content, calls } = tc.push(t.text);
    if (content) yield chunk({ content }, null);
    // each completed call: its id, name and arguments (OpenAI streams arguments in pieces; one piece is valid)
    for (const c of calls) yield chunk({ tool_calls: [{ index: nCalls++, id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } }] }, null);
  }
  const rest = tc?.flush();
  if (rest) yield chunk({ content: rest }, null);
  const s = await g.done;
  yield chunk({}, nCalls > 0 && s.finishReason === 'stop' ? 'tool_calls' : s.finishReason);
  if (includeUsage) yield { id: meta.id, object: 'chat.completion.chunk', created: meta.created, model: meta.model, choices: [], usage: s.usage };
}

/**
 * chat.completions.create over `generate`: validates the body (InvalidRequestError naming the
 * field), starts the generation (so a bad model / too long prompt / invalid constraint throws
 * here, before any chunk), and returns the completion or its chunk stream. `defaultModel` names
 * the response when the request leaves `model` out (the base model).
 */
export async function createChatCompletion(
  generate: GenerateFn,
  body: ChatCompletionRequest,
  defaultModel: string,
  router?: RouteFn,
  isLoaded: (adapter: string) => boolean = () => true,
): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
  const { signal, ...plain } = body as ChatCompletionRequest & { signal?: AbortSignal };
  let req = validate(chatCompletionRequestSchema, plain, 'request');
  // model "auto": the router picks the adapter from the messages (an adapter that is not loaded:
  // the router's fallback, else the base model; route.not_loaded says so)
  let route: RouteInfo | undefined;
  if (req.model === 'auto') {
    if (!router) throw new LorafleetError("model 'auto' needs a router (createEngine({ router }) / serve --router)", 'model_not_found', { param: 'model' });
    route = resolveRoute(await router(req.messages), defaultModel, isLoaded);
    req = { ...req, model: route.adapter == null || route.adapter === 'base' ? defaultModel : route.adapter };
  }
  const g = generate({ messages: req.messages, tools: req.tool_choice === 'none' ? null : req.tools }, chatGenerateOptions(req, signal));
  await g.ready; // a constraint the grammar engine rejects fails here (invalid_request), nothing queued
  const meta = responseMeta(req.model ?? defaultModel, !!req.tools?.length && req.tool_choice !== 'none');
  if (!req.stream) {
    const r = chatCompletionOf(meta, await drain(g));
    return route ? { ...r, route } : r;
  }
  const chunks = chatCompletionChunks(meta, g, req.stream_options?.include_usage === true);
  if (!route) return chunks;
  const decision = route;
  return (async function* () {
    let first = true;
    for await (const c of chunks) {
      yield first ? { ...c, route: decision } : c;
      first = false;
    }
  })();
}
