// The HTTP surface of `lorafleet serve`: the OpenAI and vLLM APIs over an EngineHost, as a hono
// app (web-standard Request → Response, so the same handlers run under Node via
// @hono/node-server — node.ts —, in a service worker or at the edge).
//
//   POST /v1/chat/completions   OpenAI chat (stream: SSE chunks, `data: [DONE]`; usage, logprobs,
//                               stop, seed, sampling knobs; model = base | adapter | "auto")
//   POST /v1/completions        OpenAI legacy text completions (as vLLM serves them)
//   GET  /v1/models             base + adapters with vLLM's `root` / `parent`
//   POST /v1/load_lora_adapter  {lora_name, lora_path}    vLLM's runtime adapter API
//   POST /v1/unload_lora_adapter {lora_name}              (waits for the requests using it)
//   GET  /health                200 while serving, 503 while the engine is recreated / shutting down
//   GET  /metrics               Prometheus text (metrics.ts: vLLM's names + lorafleet_*)
//
// Request shaping lives in engine/api (openai.ts, completions.ts) so the library and the worker
// give the same answers; this file only adds HTTP: body limit, bearer auth, JSON parsing, SSE,
// status codes and OpenAI error bodies, client-disconnect cancellation, logs and metrics.
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { bodyLimit } from 'hono/body-limit';
import { bearerAuth } from 'hono/bearer-auth';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { streamSSE } from 'hono/streaming';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { asLorafleetError, DeviceLostError, errorBody, HTTP_STATUS, InvalidRequestError, LorafleetError, ModelNotFoundError } from '../api/errors.ts';
import { createChatCompletion } from '../api/openai.ts';
import { createCompletion } from '../api/completions.ts';
import { chatCompletionRequestSchema, validate, type ChatMessage } from '../api/schema.ts';
import type { GenerateFn, Generation, GeneratedToken, GenerationSummary } from '../api/types.ts';
import type { LocalEngine as Engine } from '../api/engine.ts'; // the in-process engine, with its parts
import { EngineHost, ServiceUnavailableError, type Flight } from './host.ts';
import { ServerMetrics } from './metrics.ts';

import type { RouteDecision, RouteFn, RouteInfo } from '../api/types.ts';
import { resolveRoute } from '../api/route.ts';
/** What a router decides for a request with model "auto" (engine/api/types.ts). */
export type { RouteDecision, RouteFn };

export interface ServerAppOptions {
  /** Every /v1 route needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Largest request body in bytes (default 4 MiB). */
  maxBodyBytes?: number;
  /** Access-Control-Allow-Origin for browsers. */
  cors?: string;
  /** Model "auto" asks this (the router); the decision goes in `x-lorafleet-route` / `x-lorafleet-adapter`, the response's
   *  `route` (engine/api RouteInfo) and metrics. An adapter that is not loaded: its `fallback`, else the base model. */
  router?: RouteFn;
  /** Resolves and checks a lora_path of /v1/load_lora_adapter (node.ts: inside --adapters only); absent: runtime loading is off. */
  resolveAdapterPath?: (path: string) => Promise<string>;
  /** vLLM's `root` of the base model in /v1/models (its directory or URL). */
  modelRoot?: string;
  /** `root` of the adapters given at start (name → path). */
  adapterRoots?: Record<string, string>;
  /** vLLM's max_loras for vllm:lora_requests_info. */
  maxLoras?: number;
  /** Structured JSON request logs (default: none). */
  log?: (entry: Record<string, unknown>) => void;
  /** Seconds in Retry-After for 429 (queue full) answers (default 1). */
  retryAfterSeconds?: number;
}

export interface ServerApp {
  app: Hono;
  host: EngineHost;
  metrics: ServerMetrics;
}

const KNOWN_ROUTES = new Set(['/v1/chat/completions', '/v1/completions', '/v1/models', '/v1/load_lora_adapter', '/v1/unload_lora_adapter', '/health', '/metrics']);

type Outcome = 'stop' | 'length' | 'cancelled' | 'error' | 'rejected';

export function createServerApp(host: EngineHost, o: ServerAppOptions = {}): ServerApp {
  const app = new Hono();
  const roots = new Map(Object.entries(o.adapterRoots ?? {}));
  const metrics = new ServerMetrics({
    engine: () => host.engine,
    maxLoras: () => o.maxLoras ?? host.engine?.lora?.pool.slots ?? 0,
    recoveries: () => host.recoveries,
    inflight: () => host.inflight,
  });
  const log = (e: Record<string, unknown>) => o.log?.({ ts: new Date().toISOString(), ...e });
  let reqCounter = 0;

  // ---------------------------------------------------------------- errors

  const statusOf = (err: LorafleetError): number => (err instanceof ServiceUnavailableError ? 503 : (HTTP_STATUS[err.code] ?? 500));
  const errorResponse = (c: Context, e: unknown): Response => {
    const err = asLorafleetError(e);
    const status = statusOf(err);
    if (err.code === 'queue_full') c.header('Retry-After', String(o.retryAfterSeconds ?? 1));
    if (err instanceof ServiceUnavailableError || err.code === 'device_lost') c.header('Retry-After', String(host.retryAfter));
    if (status >= 500) log({ level: 'error', msg: 'request failed', path: c.req.path, code: err.code, error: err.message });
    return c.json(errorBody(err), status as ContentfulStatusCode);
  };
  const openAIError = (c: Context, status: ContentfulStatusCode, message: string, type: string, code: string, param: string | null = null) =>
    c.json({ error: { message, type, param, code } }, status);

  app.onError((e, c) => {
    if (e instanceof HTTPException) return e.getResponse();
    return errorResponse(c, e);
  });
  app.notFound((c) => openAIError(c, 404, `no route ${c.req.method} ${c.req.path}`, 'invalid_request_error', 'not_found'));

  // ---------------------------------------------------------------- middleware: logs + HTTP metrics, CORS, body limit, auth

  app.use('*', async (c, next) => {
    const t0 = performance.now();
    const id = `req-${Date.now().toString(36)}-${(reqCounter++).toString(36)}`;
    c.header('x-request-id', id);
    await next();
    const route = KNOWN_ROUTES.has(c.req.path) ? c.req.path : 'other';
    metrics.http.inc({ method: c.req.method, route, status: String(c.res.status) });
    log({ level: 'info', msg: 'http', id, method: c.req.method, path: c.req.path, status: c.res.status, ms: +(performance.now() - t0).toFixed(1), stream: c.res.headers.get('content-type')?.startsWith('text/event-stream') ?? false });
  });
  if (o.cors) app.use('*', cors({ origin: o.cors, allowHeaders: ['Authorization', 'Content-Type'], exposeHeaders: ['x-request-id', 'x-lorafleet-route', 'x-lorafleet-adapter', 'x-lorafleet-route-score', 'x-lorafleet-route-not-loaded'] }));
  const maxBody = o.maxBodyBytes ?? 4 << 20;
  app.use('/v1/*', bodyLimit({ maxSize: maxBody, onError: (c) => openAIError(c, 413, `the request body is over the limit of ${maxBody} bytes`, 'invalid_request_error', 'request_too_large') }));
  if (o.apiKey) {
    const unauthorized = (why: string) => (c: Context) => openAIError(c, 401, why, 'invalid_request_error', 'invalid_api_key');
    app.use(
      '/v1/*',
      bearerAuth({
        token: o.apiKey, // compared in constant time (SHA-256 of both, then timingSafeEqual)
        noAuthenticationHeader: { message: unauthorized('missing Authorization: Bearer <api key> header') },
        invalidAuthenticationHeader: { message: unauthorized('malformed Authorization header: expected Bearer <api key>') },
        invalidToken: { message: unauthorized('incorrect API key') },
      }),
    );
  }

  // ---------------------------------------------------------------- operations

  app.get('/health', (c) => {
    const ok = host.state === 'ready';
    if (!ok) c.header('Retry-After', String(host.retryAfter));
    return c.json({ status: ok ? 'ok' : host.state }, ok ? 200 : 503);
  });
  app.get('/metrics', async (c) => c.body(await metrics.text(), 200, { 'Content-Type': metrics.contentType }));

  // ---------------------------------------------------------------- models and adapters

  const serving = (): Engine => {
    const e = host.engine;
    if (host.state !== 'ready' || !e) throw new ServiceUnavailableError(host.state === 'recovering' ? 'the engine is being recreated' : 'not serving', host.retryAfter);
    return e;
  };

  app.get('/v1/models', (c) => {
    const e = serving();
    const created = Math.floor(Date.now() / 1000);
    const card = (id: string, root: string, parent: string | null) => ({
      id, object: 'model', created, owned_by: 'lorafleet', root, parent, max_model_len: e.config.maxPositions,
      permission: [{ id: `modelperm-${id}`, object: 'model_permission', created, allow_create_engine: false, allow_sampling: true, allow_logprobs: true, allow_search_indices: false, allow_view: true, allow_fine_tuning: false, organization: '*', group: null, is_blocking: false }],
    });
    const adapters = (e.lora?.pool.names() ?? []).filter((n) => !host.isUnloading(n));
    return c.json({ object: 'list', data: [card(e.modelName, o.modelRoot ?? e.modelName, null), ...adapters.map((n) => card(n, roots.get(n) ?? n, e.modelName))] });
  });

  app.post('/v1/load_lora_adapter', async (c) => {
    const body = validate(loadSchema, await jsonBody(c), 'request');
    if (!o.resolveAdapterPath) throw new InvalidRequestError('loading adapters at run time is off: start the server with --adapters <dir>', 'lora_path');
    const path = await o.resolveAdapterPath(body.lora_path);
    try {
      await host.loadAdapter(body.lora_name, path);
    } catch (e) {
      const err = asLorafleetError(e);
      throw statusOf(err) < 500 || err instanceof ServiceUnavailableError ? err : new InvalidRequestError(`failed to load adapter '${body.lora_name}' from ${body.lora_path}: ${err.message}`, 'lora_path');
    }
    roots.set(body.lora_name, body.lora_path);
    return c.text(`Success: LoRA adapter '${body.lora_name}' added successfully.`);
  });

  app.post('/v1/unload_lora_adapter', async (c) => {
    const body = validate(unloadSchema, await jsonBody(c), 'request');
    await host.unloadAdapter(body.lora_name);
    roots.delete(body.lora_name);
    return c.text(`Success: LoRA adapter '${body.lora_name}' removed successfully.`);
  });

  // ---------------------------------------------------------------- generation

  /** generate() of the flight's engine, timed for TTFT / ITL, tied to the flight's signal. */
  const timedGenerate = (flight: Flight, t0: number, stats: { tokens: number; first: number; model: string }): GenerateFn => (input, opts) => {
    const g = flight.engine.generate(input, { ...opts, signal: flight.signal });
    let last = 0;
    const it = g[Symbol.asyncIterator]();
    const wrapped: AsyncIterator<GeneratedToken> = {
      async next() {
        // a step that never returns (device lost mid-readback) must not hold the request: race the abort
        const r = await Promise.race([it.next(), flight.aborted]);
        if (!r.done && r.value.token >= 0) {
          const now = performance.now();
          if (stats.tokens === 0) {
            stats.first = now;
            metrics.ttft.observe({ model_name: stats.model }, (now - t0) / 1000);
          } else metrics.itl.observe({ model_name: stats.model }, (now - last) / 1000);
          last = now;
          stats.tokens++;
        }
        return r;
      },
      async return(v?: unknown) {
        void it.return?.(v as never); // cancels the request (pages freed at the next step boundary)
        return { done: true, value: undefined };
      },
    };
    // every other field of the generation (e.g. a constraint's `ready`) passes through unchanged
    const out: Generation = { ...g, done: Promise.race([g.done, flight.aborted]), [Symbol.asyncIterator]: () => wrapped };
    out.done.catch(() => {});
    return out;
  };

  /** The error a failed generation reports: the flight's abort reason wins (device loss → 503). */
  const failure = (flight: Flight, e: unknown): unknown => {
    const r = flight.signal.aborted ? flight.signal.reason : undefined;
    if (r instanceof LorafleetError) return r;
    if (flight.engine !== host.engine && host.state === 'recovering') return new DeviceLostError('the GPU device was lost during the request');
    return e;
  };

  type Endpoint = 'chat' | 'completions';
  const generation = (endpoint: Endpoint) => async (c: Context) => {
    try {
      return await generate(endpoint, c);
    } catch (e) {
      // refused before a flight began (bad JSON, bad "auto" request, not serving, unknown model)
      metrics.requests.inc({ endpoint, model: 'unknown', outcome: 'rejected' });
      throw e;
    }
  };
  const generate = async (endpoint: Endpoint, c: Context): Promise<Response> => {
    const t0 = performance.now();
    let body = await jsonBody(c);
    let routeInfo: RouteInfo | undefined;
    const reqModel = typeof body.model === 'string' ? body.model : null;
    // model "auto": the router picks the adapter (chat messages, or the prompt as one user message)
    if (reqModel === 'auto') {
      if (!o.router) throw new ModelNotFoundError('auto', host.engine?.models() ?? []);
      const messages: ChatMessage[] =
        endpoint === 'chat'
          ? validate(chatCompletionRequestSchema.shape.messages, body.messages, 'messages')
          : [{ role: 'user', content: typeof body.prompt === 'string' ? body.prompt : Array.isArray(body.prompt) && typeof body.prompt[0] === 'string' ? body.prompt[0] : '' }];
      const d = await o.router(messages);
      const e = serving();
      // an adapter that is not loaded (or is unloading): the router's fallback, else the base model
      const loaded = (name: string) => {
        try {
          return host.adapterFor(e, name) !== null;
        } catch {
          return false;
        }
      };
      routeInfo = resolveRoute(d, e.modelName, loaded);
      const model = routeInfo.adapter == null || routeInfo.adapter === 'base' ? e.modelName : routeInfo.adapter;
      const route = d.route ?? '(none)';
      body = { ...body, model };
      c.header('x-lorafleet-route', route);
      c.header('x-lorafleet-adapter', model);
      if (routeInfo.not_loaded) c.header('x-lorafleet-route-not-loaded', routeInfo.not_loaded);
      if (d.score !== undefined) c.header('x-lorafleet-route-score', String(d.score));
      metrics.routes.inc({ route, adapter: model });
    }
    const modelLabel = typeof body.model === 'string' ? body.model : (host.engine?.modelName ?? 'base');
    const flight = host.begin(typeof body.model === 'string' ? body.model : null, c.req.raw.signal);
    const engine = flight.engine;
    const stats = { tokens: 0, first: 0, model: engine.modelName };
    const gen = timedGenerate(flight, t0, stats);
    let ended = false;
    const end = (outcome: Outcome, s?: GenerationSummary, error?: unknown) => {
      if (ended) return;
      ended = true;
      flight.end();
      metrics.requests.inc({ endpoint, model: modelLabel, outcome });
      if (outcome === 'stop' || outcome === 'length') metrics.success.inc({ model_name: engine.modelName, finished_reason: outcome });
      else if (outcome === 'cancelled') metrics.success.inc({ model_name: engine.modelName, finished_reason: 'abort' });
      if (s) metrics.promptTokens.inc({ model_name: engine.modelName }, s.usage.prompt_tokens);
      metrics.generationTokens.inc({ model_name: engine.modelName }, s ? s.usage.completion_tokens : stats.tokens);
      metrics.e2e.observe({ model_name: engine.modelName }, (performance.now() - t0) / 1000);
      log({
        level: outcome === 'error' ? 'error' : 'info', msg: 'generation', endpoint, model: modelLabel, outcome,
        prompt_tokens: s?.usage.prompt_tokens, completion_tokens: s?.usage.completion_tokens ?? stats.tokens,
        ttft_ms: stats.tokens ? +(stats.first - t0).toFixed(1) : undefined, ms: +(performance.now() - t0).toFixed(1),
        ...(error ? { error: asLorafleetError(error).message, code: asLorafleetError(error).code } : {}),
      });
    };
    const outcomeOf = (e: unknown): Outcome => (c.req.raw.signal.aborted && !(flight.signal.reason instanceof LorafleetError) ? 'cancelled' : 'error');

    // a generate whose summary we keep (for usage in metrics)
    let summary: GenerationSummary | undefined;
    const keep: GenerateFn = (input, opts) => {
      const g = gen(input, opts);
      g.done.then((s) => (summary = s), () => {});
      return g;
    };
    let result: unknown;
    try {
      result =
        endpoint === 'chat'
          ? await createChatCompletion(keep, body as never, engine.modelName)
          : await createCompletion(keep, body as never, engine.modelName, (ids) => engine.tokenizer.decode(ids));
    } catch (e) {
      const err = failure(flight, e);
      end(outcomeOf(e) === 'cancelled' ? 'cancelled' : asLorafleetError(err).code === 'invalid_request' || statusOf(asLorafleetError(err)) < 500 ? 'rejected' : 'error', undefined, err);
      return errorResponse(c, err);
    }
    if (!isAsyncIterable(result)) {
      await Promise.resolve(); // let done's then() record the summary
      end((result as { choices: Array<{ finish_reason: Outcome }> }).choices[0]!.finish_reason, summary);
      return c.json(routeInfo ? { ...(result as object), route: routeInfo } : result);
    }

    // Streaming: pull until the first token (or the end) before answering, so a full queue (429),
    // a lost device (503) or a failing request still gets its HTTP status instead of a 200 stream.
    const it = (result as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    const buffered: unknown[] = [];
    let finished = false;
    try {
      // chat: the role chunk comes before the request is queued, so wait for one more
      while (buffered.length < (endpoint === 'chat' ? 2 : 1)) {
        const r = await it.next();
        if (r.done) {
          finished = true;
          break;
        }
        buffered.push(r.value);
      }
    } catch (e) {
      const err = failure(flight, e);
      end(outcomeOf(e) === 'cancelled' ? 'cancelled' : statusOf(asLorafleetError(err)) < 500 ? 'rejected' : 'error', undefined, err);
      return errorResponse(c, err);
    }
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => flight.abort(new DOMException('the client disconnected', 'AbortError')));
      try {
        // model "auto": the route info rides on the first chunk (as in the library)
        for (const [i, chunk] of buffered.entries()) await stream.writeSSE({ data: JSON.stringify(i === 0 && routeInfo ? { ...(chunk as object), route: routeInfo } : chunk) });
        while (!finished) {
          const r = await it.next();
          if (r.done) break;
          if (stream.aborted) break;
          await stream.writeSSE({ data: JSON.stringify(r.value) });
        }
        if (stream.aborted || flight.signal.aborted) {
          void it.return?.();
          end(flight.signal.reason instanceof LorafleetError ? 'error' : 'cancelled', undefined, flight.signal.reason);
          return;
        }
        await stream.writeSSE({ data: '[DONE]' });
        await Promise.resolve();
        end(summary?.finishReason ?? 'stop', summary);
      } catch (e) {
        const err = failure(flight, e);
        const cancelled = stream.aborted || (flight.signal.aborted && !(flight.signal.reason instanceof LorafleetError));
        end(cancelled ? 'cancelled' : 'error', undefined, err);
        if (!stream.aborted) {
          // after a 200 the error travels in the stream, as vLLM does: an error object, then [DONE]
          await stream.writeSSE({ data: JSON.stringify(errorBody(err)) }).catch(() => {});
          await stream.writeSSE({ data: '[DONE]' }).catch(() => {});
        }
      } finally {
        void it.return?.();
      }
    });
  };

  app.post('/v1/chat/completions', generation('chat'));
  app.post('/v1/completions', generation('completions'));

  return { app, host, metrics };
}

// ---------------------------------------------------------------- helpers

const adapterName = z.string().min(1).max(128).regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" and "-" only');
const loadSchema = z.object({ lora_name: adapterName, lora_path: z.string().min(1), load_inplace: z.boolean().optional() }).passthrough();
const unloadSchema = z.object({ lora_name: z.string().min(1), lora_int_id: z.number().optional() }).passthrough();

/** The body as a JSON object (InvalidRequestError for anything else). */
async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  const text = await c.req.text();
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new InvalidRequestError(`the body is not valid JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new InvalidRequestError('the body must be a JSON object');
  return v as Record<string, unknown>;
}

function isAsyncIterable(v: unknown): v is AsyncIterable<unknown> {
  return !!v && typeof (v as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}
