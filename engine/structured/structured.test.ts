// Structured output end to end on stories260K (a story model that never writes JSON by itself):
// nested JSON schemas at temperature 1 validate (ajv), choices are always a label, a mixed batch
// (adapters, schemas, unconstrained, greedy) gives each request the tokens it gets alone,
// matchers are freed after cancellations and preemptions, bad constraints are invalid_request
// errors before anything is queued, and tool calls round-trip through the official openai SDK.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import OpenAI from 'openai';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { createEngine, type LocalEngine as Engine } from '../api/engine.ts';
import { drain } from '../api/generate.ts';
import { createChatCompletion } from '../api/openai.ts';
import { errorBody } from '../api/errors.ts';
import type { ChatCompletionChunk } from '../api/types.ts';
import { savePeftAdapter, adapterSpec } from '../lora/index.ts';
import { randomLoraAdapter } from '../../tests/helpers/random-lora.ts';
import { STORIES_DIR } from '../../tests/fixtures/stories.ts';
import { generateCli } from '../../cli/generate.ts';
import { writeFileSync } from 'node:fs';
import { vi } from 'vitest';
import { liveMatchers, parseToolCalls, ToolCallStream } from './index.ts';
import { promptIds } from '../api/generate.ts';
import { ModelTokenizer } from '../model/tokenizer.ts';
import type { ConstraintSpec } from './constraint.ts';

const NESTED = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 10 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    mood: { enum: ['happy', 'sad', 'angry'] },
    pet: {
      anyOf: [
        { type: 'null' },
        { type: 'object', properties: { kind: { enum: ['cat', 'dog', 'bird'] }, legs: { type: 'integer', minimum: 0, maximum: 4 } }, required: ['kind', 'legs'] },
      ],
    },
    tags: { type: 'array', items: { type: 'string', maxLength: 5 }, minItems: 1, maxItems: 3 },
    nick: { type: ['string', 'null'], maxLength: 6 },
  },
  required: ['name', 'age', 'mood', 'pet', 'tags', 'nick'],
  additionalProperties: false,
};
const SMALL = { type: 'object', properties: { ok: { type: 'boolean' }, n: { type: 'integer', minimum: -5, maximum: 5 } }, required: ['ok', 'n'] };
const TOOLS = [
  { type: 'function' as const, function: { name: 'get_weather', description: 'weather in a city', parameters: { type: 'object', properties: { city: { type: 'string', minLength: 1, maxLength: 8 }, unit: { enum: ['c', 'f'] } }, required: ['city', 'unit'] } } },
  { type: 'function' as const, function: { name: 'restart_service', parameters: { type: 'object', properties: { service: { enum: ['billing', 'auth'] }, force: { type: 'boolean' } }, required: ['service', 'force'] } } },
];

const ajv = new Ajv({ strict: false });
const prompt = 'Once upon a time';

let rt: Runtime;
let engine: Engine;
let adapterDir: string;
beforeAll(async () => {
  rt = await Runtime.create();
  adapterDir = mkdtempSync(join(tmpdir(), 'lorafleet-structured-'));
  const { loadReferenceModel } = await import('../../reference/load.ts');
  const { config } = await loadReferenceModel(STORIES_DIR);
  for (const [name, seed] of [['a1', 3], ['a2', 4]] as const) {
    await savePeftAdapter(join(adapterDir, name), adapterSpec(randomLoraAdapter(config, { name, r: 4, seed, std: 0.15 })));
  }
  engine = await createEngine({ model: STORIES_DIR, device: rt, kvBlocks: 64, adapters: { a1: join(adapterDir, 'a1'), a2: join(adapterDir, 'a2') } });
});
afterAll(async () => {
  await engine?.destroy();
  rt?.destroyAll();
  if (adapterDir) rmSync(adapterDir, { recursive: true, force: true });
});

describe('structured output on stories260K', () => {
  it('a nested schema at temperature 1 always gives JSON that validates (ajv), 6 seeds in one batch', async () => {
    const validate = ajv.compile(NESTED);
    const seeds = [1, 2, 3, 4, 5, 6];
    const gens = seeds.map((seed) => engine.generate(prompt, { temperature: 1, seed, max_tokens: 400, response_format: { type: 'json_schema', json_schema: { name: 'kid', schema: NESTED, strict: true } } }));
    const outs = await Promise.all(gens.map(drain));
    for (const [i, o] of outs.entries()) {
      expect(o.finishReason, `seed ${seeds[i]}: ${o.text}`).toBe('stop');
      const v = JSON.parse(o.text);
      expect(validate(v), `seed ${seeds[i]}: ${o.text} ${JSON.stringify(validate.errors)}`).toBe(true);
      // compact JSON: outside strings, only the single spaces of ", " and ": " (whitespace is bounded)
      expect(o.text.replace(/"(?:[^"\\]|\\.)*"/g, '""')).not.toMatch(/\s{2}|\n|\s[,}\]]|[{\[]\s/);
    }
    // sampled, not one fixed answer
    expect(new Set(outs.map((o) => o.text)).size).toBeGreaterThan(3);
    expect(liveMatchers()).toBe(0);
  });

  it('unconstrained, the model does not write JSON (the constraint is what makes it valid)', async () => {
    const o = await drain(engine.generate(prompt, { temperature: 1, seed: 1, max_tokens: 40 }));
    expect(() => JSON.parse(o.text)).toThrow();
  });

  it('guided_choice / constraint choice always returns one of the labels', async () => {
    const labels = ['positive', 'negative', 'neutral', 'mixed feelings'];
    const outs = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((seed) => drain(engine.generate(prompt, { temperature: 1.5, seed, max_tokens: 30, guided_choice: labels }))));
    for (const o of outs) {
      expect(labels).toContain(o.text);
      expect(o.finishReason).toBe('stop');
    }
    expect(new Set(outs.map((o) => o.text)).size).toBeGreaterThan(1);
  });

  it('regex, EBNF and json_object constraints', async () => {
    const r = await drain(engine.generate(prompt, { temperature: 1, seed: 2, max_tokens: 40, guided_regex: '[A-Z][a-z]{2,5}-[0-9]{3}' }));
    expect(r.text).toMatch(/^[A-Z][a-z]{2,5}-[0-9]{3}$/);
    const g = await drain(engine.generate(prompt, { temperature: 1, seed: 3, max_tokens: 40, guided_grammar: 'root ::= "(" num ("+" num)* ")"\nnum ::= [1-9] [0-9]?' }));
    expect(g.text).toMatch(/^\([1-9][0-9]?(\+[1-9][0-9]?)*\)$/);
    const j = await drain(engine.generate(prompt, { temperature: 1, seed: 4, max_tokens: 60, response_format: { type: 'json_object' } }));
    if (j.finishReason === 'stop') expect(typeof JSON.parse(j.text)).toBe('object');
    else expect(j.finishReason).toBe('length'); // any JSON may run out of tokens: finish_reason says so
  });

  it('max_tokens before the constraint completes: finish_reason length', async () => {
    const o = await drain(engine.generate(prompt, { temperature: 1, seed: 5, max_tokens: 5, guided_json: NESTED }));
    expect(o.finishReason).toBe('length');
    expect(o.completionIds).toHaveLength(5);
    expect(liveMatchers()).toBe(0);
  });

  it('a mixed batch (adapters, schemas, unconstrained, greedy) gives each request exactly its tokens alone', async () => {
    const reqs: Array<{ model: string | null; temperature: number; seed: number; constraint?: ConstraintSpec }> = [
      { model: 'a1', temperature: 1, seed: 11, constraint: { kind: 'json_schema', schema: NESTED, strict: true } },
      { model: 'a2', temperature: 0, seed: 0, constraint: { kind: 'json_schema', schema: SMALL, strict: true } },
      { model: null, temperature: 1, seed: 13 },
      { model: null, temperature: 0, seed: 0 },
      { model: null, temperature: 1, seed: 15, constraint: { kind: 'choice', choices: ['yes', 'no', 'maybe'] } },
      { model: 'a1', temperature: 0, seed: 0, constraint: { kind: 'regex', pattern: '[a-z]{3,8}[0-9]' } },
      { model: 'a2', temperature: 0.8, seed: 17 },
      { model: null, temperature: 1, seed: 18, constraint: { kind: 'json_schema', schema: SMALL, strict: true } },
    ];
    const run = (r: (typeof reqs)[number]) => drain(engine.generate(prompt, { model: r.model, temperature: r.temperature, seed: r.seed, max_tokens: 24, constraint: r.constraint }));
    const alone = [];
    for (const r of reqs) alone.push((await run(r)).completionIds);
    const stepsBefore = engine.metrics().steps;
    const together = (await Promise.all(reqs.map(run))).map((o) => o.completionIds);
    expect(together).toEqual(alone);
    // they really shared steps: far fewer steps than their tokens
    const tokens = alone.reduce((n, a) => n + a.length, 0);
    expect(engine.metrics().steps - stepsBefore).toBeLessThan(tokens / 2);
    // the constrained ones did change the output (vs the same request unconstrained)
    const free = await run({ ...reqs[0]!, constraint: undefined });
    expect(free.completionIds).not.toEqual(alone[0]);
    expect(liveMatchers()).toBe(0);
  });

  it('matchers are freed after cancellations, early breaks, errors and preemptions (counts back to zero)', async () => {
    const small = await createEngine({ model: STORIES_DIR, device: rt, kvBlocks: 4, kvBlockSize: 16 }); // 64 slots for 6 requests: preemptions
    try {
      const validate = ajv.compile(SMALL);
      const ac = new AbortController();
      const gens = [1, 2, 3, 4, 5, 6].map((seed) => small.generate(prompt, { temperature: 1, seed, max_tokens: 60, guided_json: seed % 2 ? SMALL : NESTED, ...(seed === 2 ? { signal: ac.signal } : {}) }));
      const results = gens.map(async (g, i) => {
        let n = 0;
        try {
          for await (const _ of g) {
            void _;
            if (i === 1 && ++n === 3) ac.abort();
            if (i === 3 && ++n === 4) break; // early break cancels
          }
          return await g.done;
        } catch (e) {
          return e as Error;
        }
      });
      const outs = await Promise.all(results);
      expect(small.metrics().preemptions).toBeGreaterThan(0);
      for (const [i, o] of outs.entries()) {
        if (i === 1 || i === 3) continue;
        const s = o as Awaited<ReturnType<typeof drain>>;
        if (i % 2 === 0 && s.finishReason === 'stop') expect(validate(JSON.parse(s.text))).toBe(true);
      }
      expect(liveMatchers()).toBe(0);
    } finally {
      await small.destroy();
    }
    expect(liveMatchers()).toBe(0);
  });

  it('invalid or unsupported constraints: invalid_request naming the problem, nothing queued', async () => {
    const before = engine.metrics().submitted;
    const bad: Array<[Record<string, unknown>, RegExp, string]> = [
      [{ guided_json: { type: 'bogus' } }, /unsupported type "bogus"|not a valid JSON schema/i, 'guided_json'],
      [{ guided_json: '{not json' }, /not valid JSON/, 'guided_json'],
      [{ guided_json: { type: 'integer', minimum: 5, maximum: 1 } }, /minimum 5 is greater than maximum 1/, 'guided_json'],
      [{ guided_json: { properties: { a: { $ref: '#/$defs/nope' } } } }, /does not resolve/, 'guided_json'],
      [{ guided_regex: '(ab' }, /not a valid regular expression/, 'guided_regex'],
      [{ guided_regex: 'a(?=b)' }, /lookahead/, 'guided_regex'],
      [{ guided_choice: [] }, /non-empty/, 'guided_choice'],
      [{ guided_grammar: 'start ::= "a"' }, /root/, 'guided_grammar'],
      [{ guided_regex: 'a', guided_choice: ['x'] }, /at most one/, 'guided_choice'],
      [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: false } } }, /false/, 'response_format'],
    ];
    for (const [opts, re, param] of bad) {
      let err: unknown;
      try {
        const g = engine.generate(prompt, opts);
        await g.ready;
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(opts)).toBeTruthy();
      const b = errorBody(err);
      expect(b.error.code).toBe('invalid_request');
      expect(b.error.message).toMatch(re);
      expect(b.error.param ?? '').toContain(param.split('.')[0]);
    }
    // a grammar only XGrammar can reject (undefined rule): its abort is contained, invalid_request,
    // and the next request works (a fresh grammar-engine instance)
    await expect(engine.generate(prompt, { guided_grammar: 'root ::= "a" undefined_rule' }).ready).rejects.toMatchObject({ code: 'invalid_request', message: expect.stringMatching(/undefined_rule/) });
    await expect(engine.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], guided_grammar: 'root ::= "a" nope' } as never)).rejects.toMatchObject({ code: 'invalid_request' });
    const ok = await drain(engine.generate(prompt, { temperature: 1, seed: 9, max_tokens: 20, guided_choice: ['alpha', 'beta'] }));
    expect(['alpha', 'beta']).toContain(ok.text);
    expect(engine.metrics().submitted).toBe(before + 1); // only the good one was queued
    expect(liveMatchers()).toBe(0);
  });

  it('compiled grammars are cached by (constraint, tokenizer)', async () => {
    const st = engine.grammar().stats;
    const compiles = st.compiles;
    const schema = { type: 'object', properties: { z: { type: 'integer' } }, required: ['z'] };
    await drain(engine.generate(prompt, { max_tokens: 20, guided_json: schema }));
    await drain(engine.generate(prompt, { max_tokens: 20, guided_json: { required: ['z'], properties: { z: { type: 'integer' } }, type: 'object' } })); // same schema, other key order
    expect(st.compiles).toBe(compiles + 1);
  });
});

describe('lorafleet generate --choice / --json-schema', () => {
  const cli = async (args: string[]) => {
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => ((out += typeof c === 'string' ? c : new TextDecoder().decode(c)), true));
    try {
      expect(await generateCli(['--model', STORIES_DIR, '--prompt', prompt, '--json', ...args])).toBe(0);
    } finally {
      spy.mockRestore();
    }
    return JSON.parse(out) as { text: string; finish_reason: string };
  };
  it('--choice returns one of the labels; --json-schema output validates', async () => {
    const labels = ['cat', 'dog', 'big bird'];
    const c = await cli(['--temperature', '1', '--seed', '7', '--choice', labels.join(',')]);
    expect(labels).toContain(c.text);
    const f = join(adapterDir, 'schema.json');
    writeFileSync(f, JSON.stringify(SMALL));
    const j = await cli(['--temperature', '1', '--seed', '8', '--max-tokens', '60', '--json-schema', f]);
    expect(ajv.validate(SMALL, JSON.parse(j.text))).toBe(true);
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await generateCli(['--prompt', 'x', '--regex', 'a', '--choice', 'b'])).toBe(2);
      expect(await generateCli(['--prompt', 'x', '--json-schema', '/nonexistent.json'])).toBe(2);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('tool calls', () => {
  let server: Server;
  let client: OpenAI;
  beforeAll(async () => {
    // a loopback OpenAI-compatible shim over createChatCompletion (the HTTP server proper lives in engine/server)
    server = createServer(async (req, res) => {
      let body = '';
      for await (const c of req) body += c;
      try {
        const r = await createChatCompletion(engine.generate, JSON.parse(body), engine.modelName);
        if (Symbol.asyncIterator in r) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          for await (const chunk of r as AsyncIterable<ChatCompletionChunk>) res.write(`data: ${JSON.stringify(chunk)}\n\n`);
          res.end('data: [DONE]\n\n');
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(r));
        }
      } catch (e) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify(errorBody(e)));
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'none', maxRetries: 0 });
  });
  afterAll(() => new Promise<void>((r) => server?.close(() => r())));

  const argsValid = (name: string, args: string) => {
    const t = TOOLS.find((x) => x.function.name === name)!;
    return ajv.validate(t.function.parameters, JSON.parse(args));
  };

  it('tool_choice required: parsed tool_calls whose arguments validate, finish_reason tool_calls (SDK, non-streaming)', async () => {
    for (const seed of [1, 3]) {
      const r = await client.chat.completions.create({ model: engine.modelName, messages: [{ role: 'user', content: 'Restart billing' }], tools: TOOLS, tool_choice: 'required', parallel_tool_calls: seed !== 3, temperature: 1, seed, max_tokens: 160 });
      const c = r.choices[0]!;
      const calls = c.message.tool_calls!;
      expect(calls.length).toBeGreaterThan(0);
      // parallel calls may run to max_tokens (a story model likes to go on); a single call ends
      if (seed === 3) expect(calls).toHaveLength(1);
      expect(c.finish_reason).toBe(seed === 3 ? 'tool_calls' : c.finish_reason === 'length' ? 'length' : 'tool_calls');
      for (const call of calls) {
        expect(call.type).toBe('function');
        expect(call.id).toMatch(/^call_/);
        const fn = (call as { function: { name: string; arguments: string } }).function;
        expect(TOOLS.map((t) => t.function.name)).toContain(fn.name);
        expect(argsValid(fn.name, fn.arguments)).toBe(true);
      }
    }
  });

  it('a named function, streamed: the SDK accumulates the tool-call deltas', async () => {
    const stream = client.chat.completions.stream({ model: engine.modelName, messages: [{ role: 'user', content: 'weather?' }], tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } }, parallel_tool_calls: false, temperature: 1, seed: 4, max_tokens: 200 });
    const final = await stream.finalChatCompletion();
    const c = final.choices[0]!;
    expect(c.finish_reason).toBe('tool_calls');
    const calls = c.message.tool_calls!;
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      const fn = (call as { function: { name: string; arguments: string } }).function;
      expect(fn.name).toBe('get_weather');
      expect(argsValid(fn.name, fn.arguments)).toBe(true);
    }
  });

  it('tool_choice auto: free text or calls; none: no calls', async () => {
    const r = await client.chat.completions.create({ model: engine.modelName, messages: [{ role: 'user', content: 'hi' }], tools: TOOLS, temperature: 1, seed: 5, max_tokens: 40 });
    const c = r.choices[0]!;
    if (c.message.tool_calls?.length) expect(c.finish_reason).toBe('tool_calls');
    else expect(typeof c.message.content).toBe('string');
    const n = await client.chat.completions.create({ model: engine.modelName, messages: [{ role: 'user', content: 'hi' }], tools: TOOLS, tool_choice: 'none', temperature: 0, max_tokens: 12 });
    expect(n.choices[0]!.message.tool_calls ?? []).toHaveLength(0);
    // a bad tool_choice: 400 invalid_request through the SDK
    await expect(client.chat.completions.create({ model: engine.modelName, messages: [{ role: 'user', content: 'hi' }], tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } })).rejects.toMatchObject({ status: 400 });
    expect(liveMatchers()).toBe(0);
  });

  it('chat templates that know tools receive them (and tool_calls / tool messages)', async () => {
    const { readFileSync } = await import('node:fs');
    const tj = JSON.parse(readFileSync(join(STORIES_DIR, 'tokenizer.json'), 'utf8'));
    const template =
      '{% if tools %}TOOLS{% for t in tools %} {{ t.function.name }}{% endfor %}.{% endif %}' +
      '{% for m in messages %}{{ m.role }}:{% if m.tool_calls %}{% for c in m.tool_calls %}call {{ c.function.name }} {% endfor %}{% endif %}{{ m.content }};{% endfor %}';
    const tok = new ModelTokenizer(tj, { bos_token: '<s>' }, { chatTemplate: template });
    const messages = [
      { role: 'user' as const, content: 'restart billing' },
      { role: 'assistant' as const, content: null, tool_calls: [{ id: 'call_1', type: 'function' as const, function: { name: 'restart_service', arguments: '{"service": "billing", "force": true}' } }] },
      { role: 'tool' as const, content: 'ok', tool_call_id: 'call_1' },
    ];
    const ids = promptIds({ config: engine.config, tokenizer: tok }, { messages, tools: TOOLS });
    expect(tok.decode(ids)).toBe('TOOLS get_weather restart_service.user:restart billing;assistant:call restart_service ;tool:ok;');
    expect(tok.decode(promptIds({ config: engine.config, tokenizer: tok }, { messages: messages.slice(0, 1) }))).toBe('user:restart billing;');
  });

  it('parsing helpers: text around calls, streamed split', () => {
    const text = 'Sure.<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>\n<tool_call>{"name": "g", "arguments": {}}</tool_call>';
    const p = parseToolCalls(text);
    expect(p.content).toBe('Sure.');
    expect(p.calls.map((c) => [c.function.name, c.function.arguments])).toEqual([['f', '{"a":1}'], ['g', '{}']]);
    const s = new ToolCallStream();
    let content = '';
    const names: string[] = [];
    for (const ch of text) {
      const r = s.push(ch);
      content += r.content;
      names.push(...r.calls.map((c) => c.function.name));
    }
    content += s.flush();
    expect(content.trim()).toBe('Sure.');
    expect(names).toEqual(['f', 'g']);
    expect(parseToolCalls('no calls <tool_ here').content).toBe('no calls <tool_ here');
  });
});
