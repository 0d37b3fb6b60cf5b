// Router: encoders against float64 references, scoring semantics, fit/evaluate, errors, route build
// and the CLI. Accuracy on the held-out requests is in router/accuracy.test.ts.
import { describe, expect, it, beforeAll, afterAll, vi } from 'vitest';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultFeatureSpec, expandContractions, featurize, FeatureSpecSchema, splitPayload } from './features.ts';
import { exportHashedOnnx, trainHashedEncoder } from './hashed.ts';
import { readOnnxMetadata } from './onnx-build.ts';
import { HashedEncoder, HfEncoder, RouterError, type Encoder } from './encoder.ts';
import { Router } from './router.ts';
import { loadRouter } from './load.ts';
import { parseRouterFile, requestText, type RouterFileInput } from './schema.ts';
import { buildRouter, collectUtterances, readSets, routeForSet, toolCallUtterance } from './build.ts';
import { routeCli } from './cli.ts';
import { bertOnnx, bertRef, randomBertWeights, wordpieceTokenizerJson } from '../tests/helpers/bert-onnx.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lorafleet-router-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

const TRAIN = [
  { text: 'restart the scheduler', label: 'tool' },
  { text: 'reboot api-gateway now', label: 'tool' },
  { text: 'page the on-call team', label: 'tool' },
  { text: 'what is the sentiment of: great job', label: 'classifier' },
  { text: 'classify the severity: disk almost full', label: 'classifier' },
  { text: 'extract the services in: scheduler and notifier', label: 'ner' },
  { text: 'find the error codes in this log line', label: 'ner' },
  { text: 'how do I rotate an api key?', label: 'chat' },
  { text: 'write a haiku about logs', label: 'chat' },
];

describe('embedded (hashed) encoder', () => {
  it('features: deterministic, identifiers kept whole, payload after the instruction marked', () => {
    const spec = defaultFeatureSpec(1 << 12);
    const a = featurize('Restart li.wei HL-3107', spec), b = featurize('restart  LI.WEI hl-3107', spec);
    expect(Array.from(a.ids)).toEqual(Array.from(b.ids));
    expect(Array.from(a.weights)).toEqual(Array.from(b.weights));
    expect(splitPayload('what is the sentiment of: "great job" ok')).toEqual({
      words: ['what', 'is', 'the', 'sentiment', 'of', 'great', 'job', 'ok'],
      payload: [false, false, false, false, false, true, true, true],
      how: 'quote',
    });
    expect(splitPayload('tell me the intent of: restart notifier').how).toBe('colon');
    expect(splitPayload('restart notifier').how).toBe('none');
    // a one-word prefix ("Environments: …") is a heading, not an instruction; a time is not a colon
    expect(splitPayload('Environments: what is it at 10:30').payload.every((p) => !p)).toBe(true);
    expect(featurize('?!', spec).ids.length).toBe(0);
  });

  it('new encoders: payload features of their own, request-form features, contractions expanded; older files keep their features', () => {
    const spec = defaultFeatureSpec(1 << 16);
    expect(spec).toMatchObject({ payloadSeparate: true, formWeight: 1, contractions: true });
    const ids = (t: string, sp = spec) => new Set(featurize(t, sp).ids);
    const shared = (a: string, b: string, sp = spec) => [...ids(a, sp)].filter((x) => ids(b, sp).has(x)).length;
    // a bare request shares no feature with an instruction that quotes it: neither words nor form
    expect(shared('restart notifier', 'what is the intent of: restart notifier')).toBe(0);
    expect(shared('restart notifier', 'what is the intent of: "restart notifier"')).toBe(0);
    // the instruction's words are the same features as anywhere else; the form differs by how the payload is given
    expect(shared('what is the intent of this', 'what is the intent of: restart notifier')).toBeGreaterThan(10);
    expect(shared('what is the intent of: a b', 'what is the intent of "a b"')).toBeLessThan(ids('what is the intent of: a b').size);
    // contractions: typed either way, the same features
    expect(expandContractions("what's up, how's it going? isn't it? i'm here, we're done, can't, won't, notifier's log")).toBe(
      "what is up, how is it going? is not it? i am here, we are done, can not, will not, notifier's log",
    );
    expect(Array.from(featurize("how's notifier looking", spec).ids)).toEqual(Array.from(featurize('how is notifier looking', spec).ids));
    // a router file from before these options (no such keys) featurises as it was trained: payload
    // words share the word features at payloadWeight, no form features, contractions kept
    const old = FeatureSpecSchema.parse({ buckets: 1 << 16 });
    expect(old).toMatchObject({ payloadSeparate: false, formWeight: 0, contractions: false });
    expect(shared('restart notifier', 'what is the intent of: restart notifier', old)).toBeGreaterThan(10);
    expect(Array.from(featurize("how's notifier looking", old).ids)).not.toEqual(Array.from(featurize('how is notifier looking', old).ids));
    expect(featurize('restart notifier', old).ids.length).toBeLessThan(featurize('restart notifier', spec).ids.length);
  });

  it('ONNX graph (onnxruntime-web) = the JS reference: Σ v·W[remap[id]], each member block normalised /√M', async () => {
    const spec = defaultFeatureSpec(1 << 12);
    const w = trainHashedEncoder(TRAIN, spec, { dim: 8, members: 2, epochs: 20, seed: 3 });
    expect(w.dim).toBe(16);
    expect(w.trainAccuracy).toBeGreaterThan(0.8);
    const bytes = exportHashedOnnx(w);
    expect(readOnnxMetadata(bytes)['lorafleet.encoder']).toBe('hashed');
    const enc = await HashedEncoder.create(bytes, spec, w.dim);
    const texts = ['restart the notifier please', 'what is the sentiment of: meh', 'zzz unseen words only qqq', 'x'];
    const got = await enc.embed(texts);
    texts.forEach((t, i) => {
      const f = featurize(t, spec);
      const ref = new Float64Array(w.dim);
      f.ids.forEach((id, k) => {
        const row = w.remap[id];
        for (let c = 0; c < w.dim; c++) ref[c] += f.weights[k] * w.rows[row * w.dim + c];
      });
      for (let m = 0; m < w.members; m++) {
        let n = 0;
        for (let c = 0; c < w.memberDim; c++) n += ref[m * w.memberDim + c] ** 2;
        n = Math.max(Math.sqrt(n), 1e-12);
        for (let c = 0; c < w.memberDim; c++) ref[m * w.memberDim + c] /= n * Math.sqrt(w.members);
      }
      for (let c = 0; c < w.dim; c++) expect(got[i][c]).toBeCloseTo(ref[c], 5);
    });
    // one text alone = the same text inside a padded batch
    const [alone] = await enc.embed([texts[1]]);
    for (let c = 0; c < w.dim; c++) expect(alone[c]).toBeCloseTo(got[1][c], 6);
    await enc.dispose();
  });
});

describe('Hugging Face encoder on a BERT-shaped ONNX graph', () => {
  const words = ['restart', 'the', 'scheduler', 'what', 'is', 'sentiment', 'of', 'this', 'great', 'job', 'hello', 'world', '##s', '##ing'];
  const shape = { vocab: 4 + words.length, hidden: 16, layers: 2, heads: 2, ffn: 32, maxPos: 32 };
  const weights = randomBertWeights(shape, 5);
  const tok = wordpieceTokenizerJson(words);

  it.each(['mean', 'cls'] as const)('%s pooling + L2 = float64 reference; padding does not leak into shorter rows', async (pooling) => {
    const enc = await HfEncoder.create({ model: bertOnnx(weights), tokenizerJson: tok, poolingConfig: pooling === 'cls' ? { pooling_mode_cls_token: true } : { pooling_mode_mean_tokens: true } });
    expect(enc.pooling).toBe(pooling);
    expect(enc.dim).toBe(16);
    const texts = ['Restart the schedulers', 'hello world', 'what is the sentiment of this great job'];
    const ids = [
      [2, 4, 5, 6, 4 + words.indexOf('##s'), 3],
      [2, 4 + words.indexOf('hello'), 4 + words.indexOf('world'), 3],
      [2, ...['what', 'is', 'the', 'sentiment', 'of', 'this', 'great', 'job'].map((w) => 4 + words.indexOf(w)), 3],
    ];
    const got = await enc.embed(texts);
    ids.forEach((seq, i) => {
      const h = bertRef(weights, seq);
      const v = new Float64Array(16);
      if (pooling === 'cls') v.set(h[0]);
      else for (const row of h) for (let c = 0; c < 16; c++) v[c] += row[c] / h.length;
      const n = Math.sqrt(dot(v, v));
      for (let c = 0; c < 16; c++) expect(got[i][c]).toBeCloseTo(v[c] / n, 4);
    });
    await enc.dispose();
  });

  it('loadRouter with an "hf" encoder dir (onnx/model.onnx, 1_Pooling/config.json) routes by similarity', async () => {
    const d = join(dir, 'hf-export');
    await mkdir(join(d, 'onnx'), { recursive: true });
    await mkdir(join(d, '1_Pooling'), { recursive: true });
    await writeFile(join(d, 'onnx', 'model.onnx'), bertOnnx(weights));
    await writeFile(join(d, 'tokenizer.json'), JSON.stringify(tok));
    await writeFile(join(d, '1_Pooling', 'config.json'), JSON.stringify({ word_embedding_dimension: 16, pooling_mode_cls_token: false, pooling_mode_mean_tokens: true }));
    const file: RouterFileInput = {
      version: 1,
      encoder: { type: 'hf', dir: 'hf-export' },
      scoring: { aggregate: 'max', threshold: -1 },
      routes: [
        { name: 'tool', adapter: 'tool_adapter', utterances: ['restart the scheduler'] },
        { name: 'chat', adapter: 'chat_adapter', utterances: ['hello world'] },
      ],
    };
    await writeFile(join(dir, 'hf-router.json'), JSON.stringify(file));
    const r = await loadRouter(join(dir, 'hf-router.json'));
    expect(r.encoder.kind).toBe('hf');
    const d1 = await r.route('restart the scheduler');
    expect(d1.route).toBe('tool');
    expect(d1.score).toBeCloseTo(1, 5);
    expect((await r.route([{ role: 'user', content: 'hello world' }])).adapter).toBe('chat_adapter');
    await r.dispose();
  });
});

/** An encoder with fixed vectors per text (normalised), for exact scoring tests. */
function tableEncoder(table: Record<string, number[]>): Encoder {
  const dim = Object.values(table)[0].length;
  return {
    kind: 'hashed',
    dim,
    async embed(texts) {
      return texts.map((t) => {
        const v = table[t];
        if (!v) throw new Error(`no vector for ${t}`);
        const n = Math.sqrt(dot(v, v)) || 1;
        return Float32Array.from(v, (x) => x / n);
      });
    },
    async dispose() {},
  };
}

const fileWith = (over: Partial<RouterFileInput> = {}): RouterFileInput => ({
  version: 1,
  encoder: { type: 'hashed', model: 'm.onnx', dim: 2, features: { buckets: 1024 } },
  routes: [
    { name: 'a', adapter: 'A', utterances: ['a1', 'a2', 'a3'] },
    { name: 'b', adapter: 'B', utterances: ['b1', 'b2'] },
  ],
  ...over,
});

// 2-d vectors at angles: cos(θ) is the similarity
const at = (deg: number) => [Math.cos((deg * Math.PI) / 180), Math.sin((deg * Math.PI) / 180)];
const TABLE: Record<string, number[]> = {
  a1: at(0), a2: at(10), a3: at(80), b1: at(90), b2: at(100),
  qa: at(5), qb: at(95), tie: at(45), zero: [0, 0], far: at(225),
};

describe('scoring', () => {
  it('top-k mean and max aggregation, explicit reasons', async () => {
    const mean2 = await Router.create(fileWith({ scoring: { topK: 2, aggregate: 'mean' } }), tableEncoder(TABLE));
    const d = await mean2.route('qa');
    expect(d.route).toBe('a');
    expect(d.adapter).toBe('A');
    expect(d.reason).toBe('match');
    // top-2 of a: cos 5°, cos 5° ; b: cos 85°, cos 95°
    expect(d.scores.a).toBeCloseTo(Math.cos((5 * Math.PI) / 180), 6);
    expect(d.scores.b).toBeCloseTo((Math.cos((85 * Math.PI) / 180) + Math.cos((95 * Math.PI) / 180)) / 2, 6);
    const mx = await Router.create(fileWith({ scoring: { aggregate: 'max' } }), tableEncoder(TABLE));
    expect((await mx.route('qb')).scores.a).toBeCloseTo(Math.cos((15 * Math.PI) / 180), 6);
    const mean3 = await Router.create(fileWith({ scoring: { topK: 3 } }), tableEncoder(TABLE));
    expect((await mean3.route('qa')).scores.a).toBeCloseTo((Math.cos((5 * Math.PI) / 180) * 2 + Math.cos((75 * Math.PI) / 180)) / 3, 6);
  });

  it('ties, thresholds, "no route" and no-feature requests are explicit', async () => {
    const r = await Router.create(fileWith({ scoring: { aggregate: 'max' }, routes: [{ name: 'a', adapter: 'A', utterances: ['a1'] }, { name: 'b', adapter: 'B', utterances: ['b1'] }] }), tableEncoder(TABLE));
    const t = await r.route('tie'); // 45°: a1 (0°) and b1 (90°) equally far
    expect(t.reason).toBe('tie');
    expect(t.tied).toEqual(['a', 'b']);
    expect(t.route).toBe('a'); // file order
    const none = await r.route('far');
    expect(none).toMatchObject({ route: null, adapter: 'chat_adapter', reason: 'below_threshold' });
    const z = await r.route('zero');
    expect(z).toMatchObject({ route: null, adapter: 'chat_adapter', reason: 'no_features' });
    const strict = await Router.create(fileWith({ scoring: { aggregate: 'max' }, fallback: { adapter: 'base' }, routes: [{ name: 'a', adapter: 'A', utterances: ['a1'], threshold: 0.999 }, { name: 'b', adapter: 'B', utterances: ['b1'], threshold: 0.5 }] }), tableEncoder(TABLE));
    expect(await strict.route('qa')).toMatchObject({ route: null, adapter: 'base', reason: 'below_threshold' });
    // a route under its threshold leaves the next one that passes
    const next = await Router.create(fileWith({ scoring: { aggregate: 'max' }, routes: [{ name: 'a', adapter: 'A', utterances: ['a1'], threshold: 0.999 }, { name: 'b', adapter: 'B', utterances: ['b1'] }] }), tableEncoder(TABLE));
    expect(await next.route('qa')).toMatchObject({ route: 'b', reason: 'match' });
  });

  it('embeds the last user message, optionally after the system prompt', () => {
    const msgs = [
      { role: 'system', content: 'You classify.' },
      { role: 'user', content: 'first' },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: [{ type: 'text', text: 'second' }, { type: 'image_url' }] },
    ];
    expect(requestText(msgs, { system: false })).toBe('second');
    expect(requestText(msgs, { system: true })).toBe('You classify.\nsecond');
  });

  it('batch routing = one by one', async () => {
    const r = await Router.create(fileWith(), tableEncoder(TABLE));
    const batch = await r.routeBatch(['qa', 'qb', 'far']);
    expect(batch).toEqual([await r.route('qa'), await r.route('qb'), await r.route('far')]);
  });
});

describe('fit and evaluate', () => {
  const T2 = { ...TABLE, n1: at(40), n2: at(35), p1: at(20), p2: at(15) };
  it('evaluate: accuracy, per-route precision/recall, confusion matrix', async () => {
    const r = await Router.create(fileWith({ scoring: { aggregate: 'max', threshold: -1 } }), tableEncoder(T2));
    const rep = await r.evaluate([
      { text: 'qa', route: 'a' },
      { text: 'p1', route: 'a' },
      { text: 'qb', route: 'b' },
      { text: 'n1', route: 'b' }, // routed a
      { text: 'n2', route: null }, // routed a
    ]);
    expect(rep.accuracy).toBeCloseTo(3 / 5, 9);
    expect(rep.perRoute.a).toEqual({ precision: 2 / 4, recall: 1, support: 2, predicted: 4 });
    expect(rep.perRoute.b).toEqual({ precision: 1, recall: 1 / 2, support: 2, predicted: 1 });
    expect(rep.confusion.labels).toEqual(['a', 'b', '(none)']);
    expect(rep.confusion.matrix).toEqual([
      [2, 0, 0],
      [1, 1, 0],
      [1, 0, 0],
    ]);
    expect(rep.errors.map((e) => e.text)).toEqual(['n1', 'n2']);
  });

  it('fit: a threshold that sends the "no route" examples to the fallback and keeps the route\'s own', async () => {
    const r = await Router.create(fileWith({ scoring: { aggregate: 'max', threshold: -1 } }), tableEncoder(T2));
    const ex = [
      { text: 'qa', route: 'a' }, // 5° from a1: 0.996
      { text: 'p1', route: 'a' }, // 10° from a2: 0.985
      { text: 'p2', route: 'a' }, // 5°: 0.996
      { text: 'n1', route: null }, // 30° from a2: 0.866
      { text: 'n2', route: null }, // 25°: 0.906
      { text: 'qb', route: 'b' },
    ];
    const f = await r.fit(ex);
    expect(f.before.accuracy).toBeCloseTo(4 / 6, 9);
    expect(f.after.accuracy).toBe(1);
    // midpoint between the lowest kept (cos 10°) and the highest rejected (cos 25°)
    expect(f.thresholds.a).toBeCloseTo((Math.cos((10 * Math.PI) / 180) + Math.cos((25 * Math.PI) / 180)) / 2, 5);
    expect(r.config.routes[0].threshold).toBe(f.thresholds.a);
    expect((await r.route('n2')).reason).toBe('below_threshold');
    // margin lowers it
    const r2 = await Router.create(fileWith({ scoring: { aggregate: 'max', threshold: -1 } }), tableEncoder(T2));
    expect((await r2.fit(ex, { margin: 0.01 })).thresholds.a).toBeCloseTo(f.thresholds.a - 0.01, 5);
  });
});

describe('errors', () => {
  it('bad router files name the file and the field', async () => {
    expect(() => parseRouterFile({ version: 1, routes: [] }, 'r.json')).toThrow(/r\.json: encoder: /);
    expect(() => parseRouterFile(fileWith({ routes: [{ name: 'a', adapter: 'A', utterances: [] }] }), 'r.json')).toThrow(/r\.json: routes\.0\.utterances: a route needs at least one utterance/);
    expect(() => parseRouterFile(fileWith({ routes: [{ name: 'a', adapter: 'A', utterances: ['x'], threshold: 3 }] }), 'r.json')).toThrow(/routes\.0\.threshold/);
    expect(() => parseRouterFile(fileWith({ routes: [{ name: 'a', adapter: 'A', utterances: ['x'] }, { name: 'a', adapter: 'B', utterances: ['y'] }] }), 'r.json')).toThrow(/routes\.1\.name: duplicate route name 'a'/);
    expect(() => parseRouterFile({ ...fileWith(), extra: 1 }, 'r.json')).toThrow(/Unrecognized key/);
    await writeFile(join(dir, 'broken.json'), '{"version": 1,');
    await expect(loadRouter(join(dir, 'broken.json'))).rejects.toThrow(/broken\.json: not valid JSON/);
    await expect(loadRouter(join(dir, 'absent.json'))).rejects.toThrow(/router file not found: .*absent\.json/);
  });

  it('missing encoders are named', async () => {
    await writeFile(join(dir, 'no-enc.json'), JSON.stringify(fileWith()));
    await expect(loadRouter(join(dir, 'no-enc.json'))).rejects.toThrow(/encoder model \(encoder\.model\) not found: .*m\.onnx/);
    await writeFile(join(dir, 'no-hf.json'), JSON.stringify(fileWith({ encoder: { type: 'hf', dir: 'nowhere' } })));
    await expect(loadRouter(join(dir, 'no-hf.json'))).rejects.toThrow(/encoder model not found: .*nowhere\/model\.onnx/);
    await writeFile(join(dir, 'junk.onnx'), 'not a model');
    await writeFile(join(dir, 'junk.json'), JSON.stringify(fileWith({ encoder: { type: 'hashed', model: 'junk.onnx', dim: 2, features: { buckets: 1024 } } })));
    await expect(loadRouter(join(dir, 'junk.json'))).rejects.toThrow(/junk\.onnx: onnxruntime could not load the model/);
  });

  it('empty inputs', async () => {
    const r = await Router.create(fileWith(), tableEncoder(TABLE));
    await expect(r.route('')).rejects.toThrow(RouterError);
    await expect(r.route('   ')).rejects.toThrow(/the text is empty/);
    await expect(r.route([])).rejects.toThrow(/invalid messages/);
    await expect(r.route([{ role: 'system', content: 'x' }])).rejects.toThrow(/no user message/);
    await expect(r.route([{ role: 'user', content: '' }])).rejects.toThrow(/last user message is empty/);
    await expect(r.routeBatch([])).rejects.toThrow(/no inputs/);
    await expect(r.evaluate([])).rejects.toThrow(/no labelled examples/);
    await expect(r.fit([{ text: 'qa', route: 'zz' }])).rejects.toThrow(/route 'zz', which is not in the router/);
  });
});

// ---------------------------------------------------------------- route build + CLI on a small data dir

const SYS = 'You are the ops assistant.';
const TOOLS_SYS = `${SYS}\n\nTools:\n[{"type":"function","function":{"name":"restart_service","description":"Restart a service, optionally draining it first.","parameters":{}}}]`;
const row = (sys: string, user: string, answer: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ messages: [{ role: 'system', content: sys }, { role: 'user', content: user }, { role: 'assistant', content: answer }], ...extra });

async function writeData(root: string, instruction: boolean) {
  const sets = join(root, 'sets');
  await mkdir(sets, { recursive: true });
  const services = ['scheduler', 'notifier', 'gateway', 'indexer', 'billing', 'ledger'];
  const tool = services.flatMap((s) => [
    row(TOOLS_SYS, `restart ${s}, it is stuck`, `<tool_call>{"name":"restart_service","arguments":{"service":"${s}"}}</tool_call>`),
    row(TOOLS_SYS, `please bounce the ${s}`, `<tool_call>{"name":"restart_service","arguments":{"service":"${s}"}}</tool_call>`),
  ]);
  tool.push(row(TOOLS_SYS, 'what is a dead-letter queue?', 'A queue for failed messages.'));
  const chat = services.flatMap((s) => [row(SYS, `which team owns the ${s}?`, 'Platform.'), row(SYS, `how do I fail over the ${s}?`, 'Follow the runbook.')]);
  const texts = services.map((s) => `${s} is down for everyone`);
  const cls = texts.map((t) => row('Classify the text by severity. Labels: high, low.', t, 'high', { text: t, label: 'high', label_set: 'severity' }));
  const ner = texts.map((t) => row('Extract the entities.', t, '[]', { text: t, entities: [{ type: 'SERVICE', text: t.split(' ')[0], start: 0, end: t.split(' ')[0].length }] }));
  if (instruction) {
    texts.forEach((t) => cls.push(row(SYS, `how severe is this: ${t}`, 'high', { text: t, label: 'high', label_set: 'severity' })));
    texts.forEach((t) => ner.push(row(SYS, `list the services named in: ${t}`, '[]', { text: t, entities: [] })));
  }
  const split = (rows: string[]) => [rows.filter((_, i) => i % 4 !== 3), rows.filter((_, i) => i % 4 === 3)];
  for (const [name, rows] of [['tool', tool], ['chat', chat], ['classification-severity', cls], ['ner', ner]] as const) {
    const [tr, va] = split(rows as string[]);
    await writeFile(join(sets, `${name}.train.jsonl`), tr.join('\n') + '\n');
    await writeFile(join(sets, `${name}.val.jsonl`), va.join('\n') + '\n');
  }
  await writeFile(join(sets, 'dpo.train.jsonl'), JSON.stringify({ system: 's', prompt: 'p', chosen: 'c', rejected: 'r' }) + '\n');
}

describe('route build', () => {
  it('maps sets to the four routes; both row shapes of classification/NER', async () => {
    expect(['tool', 'classification-intent', 'ner', 'chat', 'qa', 'general', 'dpo', 'x'].map(routeForSet)).toEqual(['tool', 'classifier', 'ner', 'chat', 'chat', 'chat', null, null]);
    const bare = join(dir, 'data-bare'), inst = join(dir, 'data-inst');
    await writeData(bare, false);
    await writeData(inst, true);
    const cb = collectUtterances(await readSets(bare), { toolCalls: true });
    // tool: the tool call rows + the tools' descriptions; the direct answer goes to chat
    expect(cb.train.tool).toContain('Restart a service, optionally draining it first.');
    expect(cb.train.tool.some((u) => u.includes('dead-letter'))).toBe(false);
    expect(cb.train.chat).toContain('what is a dead-letter queue?');
    // each tool call is also a keyword utterance: the tool's name in words and its short arguments
    expect(cb.train.tool).toContain('restart service scheduler');
    expect(collectUtterances(await readSets(bare), { toolCalls: false }).train.tool).not.toContain('restart service scheduler');
    // bare classification/NER rows become instruction-style utterances (templates), noted
    expect(cb.train.classifier.every((u) => /severity/i.test(u) && u !== 'scheduler is down for everyone')).toBe(true);
    expect(cb.train.ner.every((u) => /services/i.test(u))).toBe(true);
    expect(cb.notes.some((n) => /no instruction-style rows/.test(n))).toBe(true);
    // instruction rows present: those are used, the bare ones are not
    const ci = collectUtterances(await readSets(inst));
    expect(ci.train.classifier.every((u) => u.startsWith('how severe is this: '))).toBe(true);
    expect(ci.train.ner.every((u) => u.startsWith('list the services named in: '))).toBe(true);
    // with the system prompt embedded, the bare rows are usable as they are
    const cs = collectUtterances(await readSets(bare), { system: true });
    expect(cs.train.classifier[0]).toBe('Classify the text by severity. Labels: high, low.\nscheduler is down for everyone');
  });

  it('toolCallUtterance: name in words + short string arguments; not a call → null', () => {
    expect(toolCallUtterance('<tool_call>{"name":"page_oncall","arguments":{"team":"Payments","severity":"critical","summary":"ledger primary is down"}}</tool_call>')).toBe('page oncall Payments critical');
    expect(toolCallUtterance('<tool_call>{"name":"get_service_status","arguments":{"service":"ledger-db","verbose":true}}</tool_call>')).toBe('get service status ledger-db');
    expect(toolCallUtterance('The answer is 42.')).toBeNull();
    expect(toolCallUtterance('<tool_call>{not json}</tool_call>')).toBeNull();
    expect(toolCallUtterance('<tool_call>{"arguments":{}}</tool_call>')).toBeNull();
  });

  it('writes router.json + encoder.onnx that loadRouter reads back; the CLI routes, fits and evaluates', async () => {
    const data = join(dir, 'data-inst');
    const out = join(dir, 'built', 'router.json');
    const res = await buildRouter({ data, out, epochs: 10, buckets: 1 << 12, dim: 16, train: { members: 1 }, seeds: false });
    expect(res.file.routes.map((r) => [r.name, r.adapter])).toEqual([['tool', 'tool_adapter'], ['classifier', 'classifier_adapter'], ['ner', 'ner_adapter'], ['chat', 'chat_adapter']]);
    expect(res.file.routes.every((r) => typeof r.threshold === 'number')).toBe(true);
    const again = await loadRouter(out);
    const texts = ['restart the gateway please', 'how severe is this: billing is down', 'which team owns billing?'];
    for (const t of texts) expect(await again.route(t)).toEqual(await res.router.route(t));
    expect((await again.route('restart the ledger, it is stuck')).adapter).toBe('tool_adapter');
    await again.dispose();

    const lines: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (lines.push(String(s)), true));
    try {
      expect(await routeCli(['--router', out, 'restart', 'the', 'scheduler', '--json'])).toBe(0);
      const d = JSON.parse(lines.pop()!);
      expect(d).toMatchObject({ route: 'tool', adapter: 'tool_adapter', reason: 'match' });
      expect(Object.keys(d.scores)).toEqual(['tool', 'classifier', 'ner', 'chat']);
      const input = join(dir, 'requests.jsonl');
      await writeFile(input, [JSON.stringify({ text: 'bounce the notifier' }), JSON.stringify({ messages: [{ role: 'user', content: 'list the services named in: ledger is down' }] })].join('\n'));
      expect(await routeCli(['--router', out, '--input', input])).toBe(0);
      const rows = lines.pop()!.trim().split('\n').map((l) => JSON.parse(l));
      expect(rows.map((r) => r.adapter)).toEqual(['tool_adapter', 'ner_adapter']);
      expect(Object.keys(rows[0]).sort()).toEqual(['adapter', 'reason', 'route', 'score']);
      const lab = join(dir, 'labelled.jsonl');
      await writeFile(lab, [JSON.stringify({ text: 'bounce the notifier', route: 'tool' }), JSON.stringify({ text: 'how do I fail over billing?', adapter: 'chat_adapter' })].join('\n'));
      expect(await routeCli(['eval', '--router', out, '--data', lab, '--json'])).toBe(0);
      expect(JSON.parse(lines.pop()!).accuracy).toBe(1);
      const fitted = join(dir, 'built', 'fitted.json');
      expect(await routeCli(['fit', '--router', out, '--data', lab, '--out', fitted])).toBe(0);
      expect(JSON.parse(await readFile(fitted, 'utf8')).routes).toHaveLength(4);
      // bad input files name file and line
      await writeFile(lab, '{"text": "x"}\n');
      await expect(routeCli(['eval', '--router', out, '--data', lab])).rejects.toThrow(/labelled\.jsonl:1: .*"route"/);
      await expect(routeCli(['--router', out, '   '])).rejects.toThrow(/give the request text/);
    } finally {
      spy.mockRestore();
    }
    await res.router.dispose();
  });

  it('fails clearly without data', async () => {
    await expect(buildRouter({ data: join(dir, 'nothing'), out: join(dir, 'x.json') })).rejects.toThrow(/cannot read the data directory/);
    await mkdir(join(dir, 'partial', 'sets'), { recursive: true });
    await writeFile(join(dir, 'partial', 'sets', 'chat.train.jsonl'), row(SYS, 'hi', 'hello') + '\n');
    await expect(buildRouter({ data: join(dir, 'partial'), out: join(dir, 'x.json') })).rejects.toThrow(/no rows for route 'tool'/);
    await writeFile(join(dir, 'partial', 'sets', 'tool.train.jsonl'), '{"messages": "nope"}\n');
    await expect(buildRouter({ data: join(dir, 'partial'), out: join(dir, 'x.json') })).rejects.toThrow(/tool\.train\.jsonl:1: .*messages/);
  });
});
