// `lorafleet serve` through real HTTP on loopback with the official `openai` SDK: streams and
// non-streams for the base and two adapters at once (streamed greedy text = the library's
// generate), models with vLLM's root/parent, adapters loaded and unloaded at run time (paths
// confined to the adapters directory; an unload waits for the requests using it), logprobs
// against the float64 reference, /v1/completions, bearer auth, 4xx errors with OpenAI bodies,
// model "auto" through a router, /metrics with vLLM's names, and a client disconnect freeing KV pages.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { createEngine } from '../api/engine.ts';
import { drain } from '../api/generate.ts';
import { loadModelConfig } from '../model/weights.ts';
import { LocalDirSource } from '../model/source.ts';
import { savePeftAdapter, adapterSpec } from '../lora/peft.ts';
import { EngineHost } from './host.ts';
import { startServer, type RunningServer } from './node.ts';
import { STORIES_DIR } from '../../tests/fixtures/stories.ts';
import { randomLoraAdapter } from '../../tests/helpers/random-lora.ts';

const KEY = 'sk-lorafleet-test';
let dir: string;
let outside: string;
let srv: RunningServer;
let client: OpenAI;
const logs: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lorafleet-serve-'));
  outside = mkdtempSync(join(tmpdir(), 'lorafleet-outside-'));
  const config = await loadModelConfig(new LocalDirSource(STORIES_DIR));
  for (const [i, name] of ['tool_adapter', 'chat_adapter', 'late_adapter'].entries()) {
    await savePeftAdapter(join(dir, name), adapterSpec(randomLoraAdapter(config, { name, r: [4, 8, 4][i]!, seed: 300 + i, std: 0.3 })));
  }
  cpSync(join(dir, 'late_adapter'), join(outside, 'evil'), { recursive: true });
  symlinkSync(join(outside, 'evil'), join(dir, 'escape'));
  const host = await EngineHost.start({
    create: () => createEngine({ model: STORIES_DIR, adapters: { tool_adapter: join(dir, 'tool_adapter'), chat_adapter: join(dir, 'chat_adapter') }, kvBlocks: 64, kvBlockSize: 8, maxBatchTokens: 64 }),
  });
  srv = await startServer(host, {
    port: 0, apiKey: KEY, adaptersDir: dir, modelRoot: STORIES_DIR,
    adapterRoots: { tool_adapter: join(dir, 'tool_adapter'), chat_adapter: join(dir, 'chat_adapter') },
    router: (messages) => {
      const text = String(messages.at(-1)?.content);
      // 'ghost': an adapter this server never loaded, with the router's fallback / without one
      if (text.includes('ghost')) return { route: 'ghosts', adapter: 'ghost_adapter', score: 0.7, ...(text.includes('fallback') ? { fallback: 'chat_adapter' } : {}) };
      return text.includes('tool') ? { route: 'tools', adapter: 'tool_adapter', score: 0.9 } : { route: 'general', adapter: null, score: 0.5 };
    },
    log: (e) => logs.push(e),
  });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: KEY, maxRetries: 0 });
});
afterAll(async () => {
  await srv?.close(1000);
  for (const d of [dir, outside]) if (d) rmSync(d, { recursive: true, force: true });
});

const engine = () => srv.host.engine!;
const msgs = (s: string) => [{ role: 'user' as const, content: s }];
const post = (path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`${srv.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body), signal });

describe('lorafleet serve (openai SDK on loopback)', () => {
  it('lists the base and the adapters with vLLM root / parent', async () => {
    const list = await client.models.list();
    const byId = Object.fromEntries(list.data.map((m) => [m.id, m as unknown as Record<string, unknown>]));
    expect(Object.keys(byId).sort()).toEqual(['chat_adapter', 'stories260K', 'tool_adapter']);
    expect(byId.stories260K).toMatchObject({ object: 'model', root: STORIES_DIR, parent: null });
    expect(byId.tool_adapter).toMatchObject({ root: join(dir, 'tool_adapter'), parent: 'stories260K' });
  });

  it('streams and non-streams for the base and two adapters concurrently; streamed greedy text = library generate', async () => {
    const models = ['stories260K', 'tool_adapter', 'chat_adapter'];
    const prompt = msgs('Once upon a time');
    const runs = models.flatMap((model) => [
      (async () => {
        const s = await client.chat.completions.create({ model, messages: prompt, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
        let text = '';
        let usage = null;
        let finish = null;
        for await (const ch of s) {
          text += ch.choices[0]?.delta.content ?? '';
          finish = ch.choices[0]?.finish_reason ?? finish;
          if (ch.usage) usage = ch.usage;
        }
        return { model, stream: true, text, usage, finish };
      })(),
      (async () => {
        const r = await client.chat.completions.create({ model, messages: prompt, max_tokens: 12, temperature: 0 });
        return { model, stream: false, text: r.choices[0]!.message.content ?? '', usage: r.usage, finish: r.choices[0]!.finish_reason };
      })(),
    ]);
    const results = await Promise.all(runs);
    for (const model of models) {
      const lib = await drain(engine().generate({ messages: prompt }, { model, max_tokens: 12, temperature: 0 }));
      for (const r of results.filter((x) => x.model === model)) {
        expect(r.text, `${model} stream=${r.stream}`).toBe(lib.text);
        expect(r.finish).toBe(lib.finishReason);
        expect(r.usage).toMatchObject({ prompt_tokens: lib.usage.prompt_tokens, completion_tokens: lib.usage.completion_tokens });
      }
    }
    // adapters change the output (random adapters are strong enough on stories260K)
    expect(new Set(results.filter((r) => r.stream).map((r) => r.text)).size).toBeGreaterThan(1);
  });

  it('stop strings, seed and sampling knobs behave like the library', async () => {
    const lib = await drain(engine().generate({ messages: msgs('Once upon a time') }, { max_tokens: 20, temperature: 0.8, top_p: 0.9, top_k: 40, seed: 7, repetition_penalty: 1.1 }));
    const r = await client.chat.completions.create({ model: 'stories260K', messages: msgs('Once upon a time'), max_tokens: 20, temperature: 0.8, top_p: 0.9, seed: 7, top_k: 40, repetition_penalty: 1.1 } as never);
    expect((r as OpenAI.ChatCompletion).choices[0]!.message.content).toBe(lib.text);
    const stopAt = lib.text.slice(3, 6);
    const s = await client.chat.completions.create({ messages: msgs('Once upon a time'), model: 'stories260K', max_tokens: 20, temperature: 0.8, top_p: 0.9, seed: 7, top_k: 40, repetition_penalty: 1.1, stop: [stopAt] } as never);
    const c = (s as OpenAI.ChatCompletion).choices[0]!;
    expect(c.message.content).toBe(lib.text.slice(0, lib.text.indexOf(stopAt)));
    expect(c.finish_reason).toBe('stop');
  });

  it('logprobs / top_logprobs = log-softmax of the float64 reference logits', async () => {
    const { loadReferenceModel } = await import('../../reference/load.ts');
    const { forward } = await import('../../reference/llama.ts');
    const { config, weights } = await loadReferenceModel(STORIES_DIR);
    const prompt = engine().tokenizer.encodeChat(msgs('Once upon a time'), { addGenerationPrompt: true });
    const r = await client.chat.completions.create({ model: 'stories260K', messages: msgs('Once upon a time'), max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3 });
    const lp = r.choices[0]!.logprobs!.content!;
    expect(lp.length).toBe(5);
    const lib = await drain(engine().generate({ messages: msgs('Once upon a time') }, { max_tokens: 5, temperature: 0 }));
    const logits = forward(weights, config, [...prompt, ...lib.completionIds.slice(0, 4)]).data;
    const V = config.vocabSize;
    for (let i = 0; i < 5; i++) {
      const row = logits.subarray((prompt.length - 1 + i) * V, (prompt.length + i) * V);
      const max = Math.max(...row);
      const lz = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
      const order = [...row.keys()].sort((a, b) => row[b]! - row[a]!);
      expect(lp[i]!.logprob).toBeCloseTo(row[lib.completionIds[i]!]! - lz, 3);
      expect(lp[i]!.token).toBe(engine().tokenizer.decode([lib.completionIds[i]!]));
      expect(lp[i]!.top_logprobs.map((t) => t.token)).toEqual(order.slice(0, 3).map((id) => engine().tokenizer.decode([id])));
      lp[i]!.top_logprobs.forEach((t, k) => expect(t.logprob).toBeCloseTo(row[order[k]!]! - lz, 3));
    }
    // streamed: the same entries, spread over the chunks
    const s = await client.chat.completions.create({ model: 'stories260K', messages: msgs('Once upon a time'), max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3, stream: true });
    const streamed = [];
    for await (const ch of s) streamed.push(...(ch.choices[0]?.logprobs?.content ?? []));
    expect(streamed.map((e) => e.logprob)).toEqual(lp.map((e) => e.logprob));
    await expect(client.chat.completions.create({ model: 'stories260K', messages: msgs('x'), top_logprobs: 2 })).rejects.toMatchObject({ status: 400 });
  });

  it('/v1/completions: text, ids, stream, legacy logprobs, echo', async () => {
    const lib = await drain(engine().generate('Once upon a time', { max_tokens: 8, temperature: 0 }));
    const r = await client.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 8, temperature: 0, logprobs: 2 });
    expect(r.object).toBe('text_completion');
    expect(r.choices[0]!.text).toBe(lib.text);
    expect(r.choices[0]!.logprobs!.tokens!.length).toBe(8);
    expect(Object.keys(r.choices[0]!.logprobs!.top_logprobs![0]!).length).toBe(2);
    expect(r.usage).toMatchObject({ prompt_tokens: lib.usage.prompt_tokens, completion_tokens: 8 });
    const ids = await client.completions.create({ model: 'tool_adapter', prompt: lib.promptIds, max_tokens: 8, temperature: 0 });
    const libA = await drain(engine().generate({ prompt_ids: lib.promptIds }, { model: 'tool_adapter', max_tokens: 8, temperature: 0 }));
    expect(ids.choices[0]!.text).toBe(libA.text);
    const s = await client.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 8, temperature: 0, stream: true });
    let text = '';
    for await (const ch of s) text += ch.choices[0]?.text ?? '';
    expect(text).toBe(lib.text);
    const e = await client.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 8, temperature: 0, echo: true });
    expect(e.choices[0]!.text).toBe('Once upon a time' + lib.text);
  });

  it('structured output passes through: response_format json_schema and tools (streamed tool_calls) = the library', async () => {
    const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 4 }, age: { type: 'integer', minimum: 1, maximum: 9 } }, required: ['name', 'age'], additionalProperties: false };
    const body = { model: 'tool_adapter', messages: msgs('Once upon a time'), temperature: 1, seed: 3, max_tokens: 60, response_format: { type: 'json_schema' as const, json_schema: { name: 'kid', schema, strict: true } } };
    const r = await client.chat.completions.create(body);
    const lib = (await engine().chat.completions.create(body as never)) as unknown as { choices: Array<{ message: { content: string } }> };
    expect(r.choices[0]!.message.content).toBe(lib.choices[0]!.message.content);
    const v = JSON.parse(r.choices[0]!.message.content!);
    expect(Object.keys(v).sort()).toEqual(['age', 'name']);
    expect(Number.isInteger(v.age) && v.age >= 1 && v.age <= 9).toBe(true);
    // short names: stories260K's vocabulary spells JSON nearly a character per token
    const tools = [{ type: 'function' as const, function: { name: 'rs', parameters: { type: 'object', properties: { s: { enum: ['b', 'a'] } }, required: ['s'] } } }];
    const s = await client.chat.completions.create({ model: 'stories260K', messages: msgs('Restart billing'), tools, tool_choice: 'required', parallel_tool_calls: false, temperature: 1, seed: 2, max_tokens: 120, stream: true });
    let args = '';
    let name = '';
    let finish = null;
    for await (const ch of s) {
      const tc = ch.choices[0]?.delta.tool_calls?.[0];
      if (tc?.function?.name) name = tc.function.name;
      args += tc?.function?.arguments ?? '';
      finish = ch.choices[0]?.finish_reason ?? finish;
    }
    expect(name).toBe('rs');
    expect(['b', 'a']).toContain(JSON.parse(args).s);
    expect(finish).toBe('tool_calls');
    await expect(client.chat.completions.create({ model: 'stories260K', messages: msgs('x'), response_format: { type: 'json_schema', json_schema: { name: 'x', schema: false as never } } })).rejects.toMatchObject({ status: 400 });
  });

  it('bad requests get OpenAI APIErrors with the right 4xx and the field named', async () => {
    const bad = async (p: Promise<unknown>, status: number, param?: string) => {
      const e = await p.then(() => null, (x) => x);
      expect(e, `expected ${status}`).toBeInstanceOf(OpenAI.APIError);
      expect(e.status).toBe(status);
      if (param) expect(e.param ?? e.error?.param).toBe(param);
      return e;
    };
    await bad(client.chat.completions.create({ model: 'nope', messages: msgs('x') }), 404, 'model');
    await bad(client.chat.completions.create({ model: 'stories260K', messages: msgs('x'), temperature: 5 }), 400, 'temperature');
    await bad(client.chat.completions.create({ model: 'stories260K', messages: [] }), 400, 'messages');
    await bad(client.chat.completions.create({ model: 'stories260K', messages: msgs('x'), n: 2 }), 400, 'n');
    await bad(client.chat.completions.create({ model: 'stories260K', messages: msgs('once '.repeat(600)) }), 400);
    await bad(client.completions.create({ model: 'stories260K', prompt: [1, 99999] }), 400);
    await bad(new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'wrong', maxRetries: 0 }).models.list(), 401);
    // raw HTTP: invalid JSON, no key, body over the limit, unknown route
    const j = await post('/v1/chat/completions', '{"model": ');
    expect(j.status).toBe(400);
    expect((await j.json()).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request' });
    expect((await fetch(`${srv.url}/v1/models`)).status).toBe(401);
    const big = await post('/v1/chat/completions', { model: 'stories260K', messages: msgs('x'.repeat(5 << 20)) });
    expect(big.status).toBe(413);
    expect((await big.json()).error.code).toBe('request_too_large');
    expect((await post('/v1/nothing', {})).status).toBe(404);
    // /health and /metrics need no key (as in vLLM)
    expect((await fetch(`${srv.url}/health`)).status).toBe(200);
  });

  it('loads and unloads an adapter at run time (inside --adapters only); an unload waits for its running requests', async () => {
    const rejects = [join(outside, 'evil'), '../' + outside.split('/').pop() + '/evil', 'escape', 'missing'];
    for (const p of rejects) {
      const r = await post('/v1/load_lora_adapter', { lora_name: 'x', lora_path: p });
      expect(r.status, p).toBe(400);
      expect((await r.json()).error.param).toBe('lora_path');
    }
    const ok = await post('/v1/load_lora_adapter', { lora_name: 'late', lora_path: 'late_adapter' });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("'late'");
    expect((await post('/v1/load_lora_adapter', { lora_name: 'late', lora_path: 'late_adapter' })).status).toBe(400);
    expect((await client.models.list()).data.map((m) => m.id)).toContain('late');
    const lib = await drain(engine().generate({ messages: msgs('Hi') }, { model: 'late', max_tokens: 30, temperature: 0 }));
    // a stream in flight, then the unload: it answers only after the stream ends, and the stream completes
    const s = await client.chat.completions.create({ model: 'late', messages: msgs('Hi'), max_tokens: 30, temperature: 0, stream: true });
    const it = s[Symbol.asyncIterator]();
    let text = '';
    const first = await it.next();
    text += first.value?.choices[0]?.delta.content ?? '';
    let unloaded = false;
    const un = post('/v1/unload_lora_adapter', { lora_name: 'late' }).then((r) => ((unloaded = true), r));
    await new Promise((r) => setTimeout(r, 50));
    // a new request for it is refused at once
    await expect(client.chat.completions.create({ model: 'late', messages: msgs('Hi'), max_tokens: 2 })).rejects.toMatchObject({ status: 404 });
    expect(unloaded).toBe(false);
    for (let r = await it.next(); !r.done; r = await it.next()) text += r.value.choices[0]?.delta.content ?? '';
    expect(text).toBe(lib.text);
    expect((await un).status).toBe(200);
    expect(engine().lora!.pool.has('late')).toBe(false);
    expect((await post('/v1/unload_lora_adapter', { lora_name: 'late' })).status).toBe(404);
  });

  it('model "auto" asks the router; the decision is in headers and metrics', async () => {
    const r = await client.chat.completions.create({ model: 'auto', messages: msgs('use a tool'), max_tokens: 4, temperature: 0 }).withResponse();
    expect(r.response.headers.get('x-lorafleet-route')).toBe('tools');
    expect(r.response.headers.get('x-lorafleet-adapter')).toBe('tool_adapter');
    expect(r.data.model).toBe('tool_adapter');
    const lib = await drain(engine().generate({ messages: msgs('use a tool') }, { model: 'tool_adapter', max_tokens: 4, temperature: 0 }));
    expect(r.data.choices[0]!.message.content).toBe(lib.text);
    const m = await (await fetch(`${srv.url}/metrics`)).text();
    expect(m).toMatch(/lorafleet_router_decisions_total\{route="tools",adapter="tool_adapter"\} 1/);
  });

  it("model \"auto\" naming an adapter that is not loaded: the router's fallback (else the base) serves, and the route info says so", async () => {
    const r = await client.chat.completions.create({ model: 'auto', messages: msgs('ghost request, with fallback'), max_tokens: 4, temperature: 0 }).withResponse();
    expect(r.response.status).toBe(200);
    expect(r.response.headers.get('x-lorafleet-adapter')).toBe('chat_adapter');
    expect(r.response.headers.get('x-lorafleet-route-not-loaded')).toBe('ghost_adapter');
    expect(r.data.model).toBe('chat_adapter');
    expect((r.data as unknown as { route: unknown }).route).toEqual({ route: 'ghosts', adapter: 'chat_adapter', score: 0.7, fallback: 'chat_adapter', not_loaded: 'ghost_adapter' });
    const lib = await drain(engine().generate({ messages: msgs('ghost request, with fallback') }, { model: 'chat_adapter', max_tokens: 4, temperature: 0 }));
    expect(r.data.choices[0]!.message.content).toBe(lib.text);
    // no fallback: the base model; streamed, the route info is on the first chunk
    const res = await post('/v1/chat/completions', { model: 'auto', messages: msgs('ghost request'), max_tokens: 3, temperature: 0, stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-lorafleet-adapter')).toBe(engine().modelName);
    const events = (await res.text()).split('\n').filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]').map((l) => JSON.parse(l.slice(6)) as { model: string; route?: unknown });
    expect(events[0]!.route).toEqual({ route: 'ghosts', adapter: null, score: 0.7, not_loaded: 'ghost_adapter' });
    expect(events.slice(1).every((e) => e.route === undefined)).toBe(true);
    expect(events[0]!.model).toBe(engine().modelName);
    const m = await (await fetch(`${srv.url}/metrics`)).text();
    expect(m).toMatch(/lorafleet_router_decisions_total\{route="ghosts",adapter="chat_adapter"\} 1/);
    // a request naming the missing adapter itself is still an unknown model
    expect((await post('/v1/chat/completions', { model: 'ghost_adapter', messages: msgs('hi'), max_tokens: 1 })).status).toBe(404);
  });

  it('a client disconnect mid-stream cancels the generation and frees its KV pages', async () => {
    const free0 = engine().cache.freeBlocks();
    const ac = new AbortController();
    const res = await post('/v1/chat/completions', { model: 'chat_adapter', messages: msgs('Once upon a time'), max_tokens: 200, temperature: 0, stream: true }, {});
    const reader = res.body!.getReader();
    await reader.read();
    expect(engine().cache.freeBlocks()).toBeLessThan(free0);
    await reader.cancel();
    ac.abort();
    for (let i = 0; i < 100 && engine().cache.freeBlocks() !== free0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(engine().cache.freeBlocks()).toBe(free0);
    expect(engine().metrics().running).toBe(0);
    // a non-streamed request whose client goes away is cancelled too
    const ac2 = new AbortController();
    const gone = post('/v1/completions', { model: 'chat_adapter', prompt: 'Once upon a time', max_tokens: 300, temperature: 0 }, {}, ac2.signal).catch(() => null);
    for (let i = 0; i < 100 && engine().metrics().running === 0; i++) await new Promise((r) => setTimeout(r, 10));
    ac2.abort();
    await gone;
    for (let i = 0; i < 100 && engine().cache.freeBlocks() !== free0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(engine().cache.freeBlocks()).toBe(free0);
    // a stream whose client leaves before its first token: cancelled as well, counted as 499, never 5xx
    const ac3 = new AbortController();
    const early = post('/v1/chat/completions', { model: 'chat_adapter', messages: msgs('Once upon a time'), max_tokens: 300, temperature: 0, stream: true }, {}, ac3.signal).catch(() => null);
    for (let i = 0; i < 100 && engine().metrics().running + engine().metrics().queueDepth === 0; i++) await new Promise((r) => setTimeout(r, 2));
    ac3.abort();
    await early;
    for (let i = 0; i < 100 && (engine().cache.freeBlocks() !== free0 || srv.host.inflight > 0); i++) await new Promise((r) => setTimeout(r, 20));
    expect(engine().cache.freeBlocks()).toBe(free0);
    const m = await (await fetch(`${srv.url}/metrics`)).text();
    expect(m).not.toMatch(/lorafleet_http_requests_total\{[^}]*status="5\d\d"/);
    expect(m).toMatch(/lorafleet_requests_total\{endpoint="chat",model="chat_adapter",outcome="cancelled"\} 2/);
    expect(m).toMatch(/lorafleet_requests_total\{endpoint="completions",model="chat_adapter",outcome="cancelled"\} 1/);
  });

  it('/metrics speaks vLLM names (Model Server Protocol) and lorafleet counters; logs are JSON objects', async () => {
    const m = await (await fetch(`${srv.url}/metrics`)).text();
    for (const name of ['vllm:num_requests_waiting', 'vllm:num_requests_running', 'vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc', 'vllm:prompt_tokens_total', 'vllm:generation_tokens_total', 'vllm:time_to_first_token_seconds_bucket', 'vllm:inter_token_latency_seconds_bucket', 'lorafleet_kv_pages_used', 'lorafleet_batch_running', 'lorafleet_queue_depth']) {
      expect(m, name).toContain(name);
    }
    expect(m).toMatch(/# TYPE vllm:lora_requests_info gauge/);
    expect(m).toMatch(/vllm:lora_requests_info\{running_lora_adapters="",max_lora="\d+",waiting_lora_adapters=""\} \d+/);
    expect(m).toMatch(/lorafleet_adapter_pool_events_total\{tier="gpu",kind="miss"\} [1-9]/);
    expect(m).toMatch(/vllm:kv_cache_usage_perc\{model_name="stories260K"\} 0\n/);
    expect(logs.some((l) => l.msg === 'http' && l.status === 404)).toBe(true);
    expect(logs.filter((l) => l.msg === 'generation').every((l) => typeof l.outcome === 'string' && typeof l.ms === 'number')).toBe(true);
  });
});
