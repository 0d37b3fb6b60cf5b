import Ajv from 'ajv';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { dataCli } from '../cli.ts';
import { jaccard, shingles } from '../dedupe.ts';
import { loadDomain, type Domain } from '../domain.ts';
import { auditLeakage, brokenJson, hallucinate, maskText, parsesAsEntities, rowContent, schemaBreak, splitRows, toolSystemPrompt } from '../format.ts';
import { ChatRow, DpoRow, toolCallText, Validators } from '../rows.ts';
import type { Stats } from '../report.ts';
import { rng } from '../util.ts';

const SAMPLE = fileURLToPath(new URL('../samples/harborline', import.meta.url));
const TOKENIZER = fileURLToPath(new URL('../../../../shared/models/stories260K', import.meta.url));

type AnyRow = Record<string, unknown> & { messages?: { role: string; content: string }[] };
let work: string;
let domain: Domain;
let sets: Record<string, { train: AnyRow[]; val: AnyRow[] }>;
let stats: Stats;

const lines = (p: string) =>
  readFileSync(p, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AnyRow);

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'lf-run-'));
  const code = await dataCli(['run', SAMPLE, '--out', work, '--tokenizer', TOKENIZER, '--target', '192', '--overlap', '24', '--log-year', '2026', '--quiet']);
  expect(code).toBe(0);
  domain = await loadDomain(join(SAMPLE, 'domain.json'));
  sets = {};
  for (const f of readdirSync(join(work, 'sets'))) {
    const m = /^(.+)\.(train|val)\.jsonl$/.exec(f);
    if (!m) continue;
    const e = (sets[m[1] as string] ??= { train: [], val: [] });
    e[m[2] as 'train' | 'val'] = lines(join(work, 'sets', f));
  }
  stats = JSON.parse(readFileSync(join(work, 'stats.json'), 'utf8')) as Stats;
}, 120_000);

describe('data run on the shipped sample domain (offline, no teacher)', () => {
  it('produces every task set with train and validation rows, and a report', () => {
    const summary = Object.entries(sets).map(([k, v]) => `${k} ${v.train.length}/${v.val.length}`);
    console.log(`[format] ${stats.ingest?.docs} docs → ${stats.chunk?.chunks} chunks (max ${stats.chunk?.maxTokens}/${stats.chunk?.targetTokens} tokens) → ${stats.dedupe?.after} after dedupe (${stats.dedupe?.exact} exact, ${stats.dedupe?.near} near) → ${stats.synth?.pairs} Q&A pairs; sets (train/val): ${summary.join(', ')}; ${stats.rejected?.length} rejected rows`);
    for (const name of ['chat', 'tool', 'classification-intent', 'classification-sentiment', 'classification-severity', 'ner', 'dpo']) {
      expect(sets[name]?.train.length, name).toBeGreaterThan(20);
      expect(sets[name]?.val.length, name).toBeGreaterThan(0);
    }
    expect(stats.chunk?.overBudget).toBe(0);
    expect(stats.chunk?.maxTokens).toBeLessThanOrEqual(192);
    expect(stats.dedupe?.exact).toBeGreaterThan(0); // the legacy copy of the overview page …
    expect(stats.dedupe?.near).toBeGreaterThan(0); // … whose scheduler section was lightly edited
    // the current page survives, the legacy copy goes (canonical policy: legacy/ paths lose)
    for (const e of stats.dedupe?.examples ?? []) {
      expect(e.removed).toMatch(/^docs\/legacy\//);
      expect(e.of).toMatch(/^docs\/overview\.md/);
    }
    const report = readFileSync(join(work, 'report.md'), 'utf8');
    for (const h of ['## Stage counts', '## Duplicates removed', '## Label balance', '## Rejected rows', '## Train/validation leakage audit']) expect(report).toContain(h);
    expect(report).toMatch(/arguments fail schema/); // restart_service cannot target ledger-db: the template row is rejected and reported
    // Q&A drawn from every source format
    const qa = lines(join(work, 'qa.jsonl')) as unknown as { source: string }[];
    const exts = new Set(qa.map((p) => /\.(\w+)(#|$)/.exec(p.source)?.[1]));
    expect([...exts].sort()).toEqual(['html', 'log', 'md', 'pdf', 'txt', 'xml']);
  });

  it('every emitted row validates; tool targets validate against their JSON Schemas; NER offsets match', () => {
    const v = new Validators(domain);
    const ajv = new Ajv({ strict: false });
    const schemas = new Map(domain.tools.map((t) => [t.name, ajv.compile(t.parameters)]));
    let toolCalls = 0;
    let noTool = 0;
    let entities = 0;
    for (const [name, s] of Object.entries(sets)) {
      for (const row of [...s.train, ...s.val]) {
        if (name === 'chat') expect(ChatRow.safeParse(row).success).toBe(true);
        if (name === 'tool') {
          const r = v.toolRow().safeParse(row);
          expect(r.success, JSON.stringify(row).slice(-200)).toBe(true);
          const target = row.messages?.[row.messages.length - 1]?.content ?? '';
          const m = /^<tool_call>(.*)<\/tool_call>$/s.exec(target);
          if (m) {
            toolCalls++;
            const call = JSON.parse(m[1] as string) as { name: string; arguments: unknown };
            const check = schemas.get(call.name);
            expect(check, call.name).toBeDefined();
            expect(check?.(call.arguments), JSON.stringify(call)).toBe(true);
          } else noTool++;
        }
        if (name.startsWith('classification-')) {
          const ls = domain.labelSets.find((l) => `classification-${l.name}` === name);
          expect(ls?.labels).toContain(row.label);
          expect(v.classificationRow(ls as NonNullable<typeof ls>).safeParse(row).success).toBe(true);
        }
        if (name === 'ner') {
          expect(v.nerRow().safeParse(row).success).toBe(true);
          for (const e of row.entities as { text: string; start: number; end: number }[]) {
            entities++;
            expect((row.text as string).slice(e.start, e.end)).toBe(e.text);
          }
          expect(JSON.parse(row.messages?.[2]?.content ?? '')).toEqual(row.entities);
        }
        if (name === 'dpo') {
          expect(DpoRow.safeParse(row).success).toBe(true);
          const chosen = String(row.chosen);
          const rejected = String(row.rejected);
          if (chosen.startsWith('<tool_call>')) {
            const c = v.checkToolCall(chosen);
            expect(c.ok).toBe(true);
            const r = v.checkToolCall(rejected);
            // a rejected tool call is broken JSON, breaks the schema, calls another tool, or (wrong_value) the same
            // tool with one argument the request names swapped for a value it does not name
            const args = (t: string) => (JSON.parse(/^<tool_call>(.*)<\/tool_call>$/s.exec(t)![1]!) as { arguments: Record<string, unknown> }).arguments;
            const swapped = () => {
              const a = args(chosen), b = args(rejected);
              const diff = Object.keys(a).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
              const prompt = String(row.prompt);
              return diff.length === 1 && Object.keys(b).length === Object.keys(a).length && prompt.includes(String(a[diff[0]!])) && !prompt.includes(String(b[diff[0]!]));
            };
            expect(!r.ok || (c.ok && r.name !== c.name) || (c.ok && r.name === c.name && swapped()), rejected).toBe(true);
          }
        }
      }
    }
    console.log(`[format] validated: ${toolCalls} tool-call targets (all schema-valid), ${noTool} no-tool answers, ${entities} NER entities with matching offsets`);
    expect(toolCalls).toBeGreaterThan(30);
    expect(noTool).toBeGreaterThan(5);
    expect(entities).toBeGreaterThan(50);
  });

  it('no validation row is a near-duplicate (Jaccard ≥ 0.8) of a training row — brute force over every pair', () => {
    let pairs = 0;
    let worst = 0;
    const leaks: string[] = [];
    for (const [name, s] of Object.entries(sets)) {
      const train = s.train.map((r) => shingles(rowContent(r)));
      for (const r of s.val) {
        const sv = shingles(rowContent(r));
        for (const t of train) {
          pairs++;
          const j = jaccard(sv, t);
          worst = Math.max(worst, j);
          if (j >= 0.8) leaks.push(`${name}: ${rowContent(r).slice(0, 80)}`);
        }
      }
    }
    expect(leaks).toEqual([]);
    console.log(`[format] leakage audit: ${pairs} val×train pairs checked, highest Jaccard ${worst.toFixed(3)} (< 0.8)`);
  });

  it('DPO rejected answers are format and faithfulness failures of every kind; the report gives the mix', () => {
    const failures = stats.format?.sets.find((x) => x.name === 'dpo')?.failures ?? {};
    for (const k of ['missing_required', 'wrong_enum', 'extra_property', 'wrong_type', 'malformed_json', 'wrong_tool', 'wrong_value', 'label_outside_set', 'unparseable_entities', 'hallucinated_fact', 'hallucinated_answer', 'unneeded_tool_call'])
      expect(failures[k], k).toBeGreaterThan(0);
    // the trivial kinds of the first version are gone
    expect(failures.wrong_offsets).toBeUndefined();
    expect(failures.wrong_label).toBeUndefined();
    const report = readFileSync(join(work, 'report.md'), 'utf8');
    expect(report).toContain('## Preference pairs: what the rejected answers get wrong');
    expect(report).toMatch(/Tool-call \/ JSON pairs: \d+, of which \d+ \([\d.]+ %\) have a rejected side that fails validation/);
  });

  it('DPO: at least half of the tool/JSON pairs have a rejected side that fails schema validation', () => {
    const v = new Validators(domain);
    const types = Object.keys(domain.entities);
    let pairs = 0;
    let failing = 0;
    for (const row of [...(sets.dpo?.train ?? []), ...(sets.dpo?.val ?? [])]) {
      const chosen = String(row.chosen);
      const rejected = String(row.rejected);
      const tool = chosen.startsWith('<tool_call>');
      const ents = !tool && parsesAsEntities(chosen, String(row.prompt), types);
      if (!tool && !ents) continue;
      pairs++;
      if (tool ? !v.checkToolCall(rejected).ok : !parsesAsEntities(rejected, String(row.prompt), types)) failing++;
    }
    console.log(`[format] DPO tool/JSON pairs: ${pairs}, rejected side fails validation: ${failing} (${((100 * failing) / pairs).toFixed(1)} %)`);
    expect(pairs).toBeGreaterThan(50);
    expect(failing / pairs).toBeGreaterThanOrEqual(0.5);
    // label pairs: the rejected label is outside the declared set
    for (const row of [...(sets.dpo?.train ?? []), ...(sets.dpo?.val ?? [])]) {
      const ls = domain.labelSets.find((l) => String(row.system).startsWith(`Classify the text by ${l.name}`));
      if (ls) expect(ls.labels).not.toContain(row.rejected);
    }
  });

  it('validation rows share no template with training rows, in every set', () => {
    const meta = (name: string, split: string) => lines(join(work, 'sets', 'meta', `${name}.${split}.jsonl`)) as unknown as { template: string }[];
    for (const name of Object.keys(sets)) {
      const tm = meta(name, 'train');
      const vm = meta(name, 'val');
      expect(tm.length, name).toBe(sets[name]?.train.length);
      expect(vm.length, name).toBe(sets[name]?.val.length);
      const trainT = new Set(tm.map((m) => m.template));
      const shared = vm.filter((m) => trainT.has(m.template)).map((m) => m.template);
      expect(shared, name).toEqual([]);
    }
    for (const l of stats.format?.leakage ?? []) {
      expect(l.sharedTemplates, l.task).toBe(0);
      expect(l.maskedHits, l.task).toBe(0);
    }
    console.log(`[format] leakage: ${(stats.format?.leakage ?? []).map((l) => `${l.task} ${l.val} val, shared templates ${l.sharedTemplates}, masked hits ${l.maskedHits}`).join('; ')}`);
  });

  it('one policy for questions a tool answers: a tool call in every set, never a direct answer', () => {
    const v = new Validators(domain);
    const targets = new Map<string, Set<string>>();
    const note = (q: string, target: string) => {
      const kind = v.checkToolCall(target).ok ? 'tool' : 'answer';
      const s = targets.get(q) ?? new Set<string>();
      s.add(kind);
      targets.set(q, s);
    };
    for (const name of ['chat', 'tool'])
      for (const row of [...(sets[name]?.train ?? []), ...(sets[name]?.val ?? [])]) note(row.messages?.[1]?.content ?? '', row.messages?.[2]?.content ?? '');
    // preference pairs over the same system prompts (tool set and plain domain assistant)
    for (const row of [...(sets.dpo?.train ?? []), ...(sets.dpo?.val ?? [])]) if (row.system === toolSystemPrompt(domain) || row.system === domain.systemPrompt) note(String(row.prompt), String(row.chosen));
    const both = [...targets].filter(([, s]) => s.size > 1).map(([q]) => q);
    expect(both).toEqual([]);
    // the error-code questions of the corpus are tool calls, not chat answers
    const chatQs = [...(sets.chat?.train ?? []), ...(sets.chat?.val ?? [])].map((r) => r.messages?.[1]?.content ?? '');
    expect(chatQs.some((q) => /HL-\d{4}/.test(q) && /mean|resolve/.test(q))).toBe(false);
    expect(targets.get('What does error code HL-4030 mean?')).toEqual(new Set(['tool']));
    expect(targets.get('What time zone is li.wei in?')).toEqual(new Set(['tool']));
  });

  it('better rows: grammatical table questions, refusals, prose facts, logs named by service and time', () => {
    const chat = [...(sets.chat?.train ?? []), ...(sets.chat?.val ?? [])].map((r) => ({ q: r.messages?.[1]?.content ?? '', a: r.messages?.[2]?.content ?? '' }));
    const qs = chat.map((x) => x.q);
    expect(qs.filter((q) => /What is the depends on|\(Services\)\?|Summarise incident|\.log\b/.test(q))).toEqual([]);
    expect(qs).toContain('What does the scheduler service depend on?');
    const refusals = chat.filter((x) => /I don't know|nothing on|couldn't find/.test(x.a));
    expect(refusals.length).toBeGreaterThanOrEqual(5);
    for (const r of refusals) expect(readFileSync(join(work, 'chunks.jsonl'), 'utf8')).not.toContain(/(?:the )?(\S+) (?:service|alert)/.exec(r.q.replace(/^\S+ \S+ /, ''))?.[1] ?? '\u0000');
    const all = JSON.stringify(sets);
    expect(all).toContain('A written review is due within five working days of any critical incident.');
    expect(all).toContain('Each tier 1 service has an availability objective of 99.95 percent');
    expect(qs.concat((sets.tool?.train ?? []).map((r) => r.messages?.[1]?.content ?? '')).some((q) => /^What went wrong with [\w-]+ on 2026-03-14 (around|between) \d\d:\d\d/.test(q))).toBe(true);
    // no template dominates chat
    const chatT = stats.format?.sets.find((s) => s.name === 'chat')?.templates ?? {};
    const total = Object.values(chatT).reduce((a, b) => a + b, 0);
    expect(Math.max(...Object.values(chatT)) / total).toBeLessThan(0.15);
  });

  it('instruction-style classification and NER rows, worded as a user asks, kept in the training sets', () => {
    const users = (name: string) => [...(sets[name]?.train ?? []), ...(sets[name]?.val ?? [])].map((r) => r.messages?.[1]?.content ?? '');
    expect(users('classification-sentiment').some((u) => /^What is the sentiment of this message: ".+"\?$/.test(u))).toBe(true);
    expect(users('classification-severity').some((u) => /severity/.test(u))).toBe(true);
    expect(users('ner').some((u) => /^Extract the (error codes and services|services and error codes) in: ".+"$/.test(u))).toBe(true);
    for (const name of ['classification-intent', 'classification-sentiment', 'classification-severity', 'ner']) {
      const m = lines(join(work, 'sets', 'meta', `${name}.train.jsonl`)) as unknown as { style: string }[];
      const ins = m.filter((x) => x.style === 'instruction').length;
      expect(ins, name).toBeGreaterThan(10);
      expect(m.filter((x) => x.style === 'bare').length, name).toBeGreaterThan(10);
    }
  });

  it('the extractive generator is honest: evidence is in the chunk, every number and identifier of the answer is too', () => {
    const chunks = new Map((lines(join(work, 'chunks.dedup.jsonl')) as unknown as { id: string; text: string }[]).map((c) => [c.id, c.text]));
    const qa = lines(join(work, 'qa.jsonl')) as unknown as { answer: string; evidence: string; chunkId: string; kind: string }[];
    for (const p of qa) {
      const text = chunks.get(p.chunkId) ?? '';
      expect(text, p.evidence).toContain(p.evidence);
      for (const tok of p.answer.match(/[\w./-]*\d[\w./-]*|\b[a-z]+(?:[-.][a-z]+)+\b|\b[A-Z][a-z]+(?:[A-Z][a-z]+)+\b/g) ?? []) expect(text, `${p.kind}: ${p.answer}`).toContain(tok.replace(/[.]$/, ''));
    }
  });
});

describe('leakage audit on planted template leaks', () => {
  it('masking entity values and numbers finds template-swapped copies that plain comparison misses', async () => {
    const d = await loadDomain(join(SAMPLE, 'domain.json'));
    const train = ['Which port does the scheduler service listen on?', 'Restart notifier, it stopped responding.', 'What does error code HL-5031 mean?', 'Page the Edge on-call, critical: ledger primary is down.'];
    const val = ['Which port does the api-gateway service listen on?', 'Restart billing-worker, it stopped responding.', 'What does error code HL-4290 mean?', 'Page the Data on-call, critical: ledger primary is down.', 'How long are settled invoices kept in the ledger?'];
    const plain = auditLeakage(train, val);
    const masked = auditLeakage(
      train.map((t) => maskText(d, t)),
      val.map((t) => maskText(d, t)),
    );
    console.log(`[format] planted leaks: plain audit finds ${plain.hits.length}/4, masked audit finds ${masked.hits.length}/4`);
    expect(masked.hits).toEqual([0, 1, 2, 3]);
    expect(plain.hits.length).toBeLessThan(4);
    // and the split keeps such rows on one side even when their template ids differ
    const rows = [...train, ...val].map((content, i) => ({ row: {}, template: `t${i}`, content, meta: { kind: 'x' } }));
    const s = splitRows(rows, 0.5, 1, (x) => maskText(d, x));
    const side = (c: string) => (s.val.some((r) => r.content === c) ? 'val' : 'train');
    for (let i = 0; i < 4; i++) expect(side(val[i] as string)).toBe(side(train[i] as string));
    expect(s.report.maskedHits).toBe(0);
  });
});

describe('stratified group split', () => {
  it('each label gets its share of validation clusters, and at least half of its rows stay in train', () => {
    // label "rare": 2 templates × 8 rows; "common": 6 templates × 8 rows; "single": 1 template
    const rows: Array<{ row: Record<string, unknown>; template: string; content: string; meta: { kind: string; label: string } }> = [];
    const add = (label: string, templates: number) => {
      for (let t = 0; t < templates; t++) for (let i = 0; i < 8; i++) rows.push({ row: {}, template: `${label}:${t}`, content: `${label} template ${t} words ${'abcdefgh'[t]} row ${i} ${label.repeat(t + 1)}`, meta: { kind: 'x', label } });
    };
    add('rare', 2);
    add('common', 6);
    add('single', 1);
    for (const seed of [1, 2, 3, 4, 5]) {
      const s = splitRows(rows, 0.2, seed, (x) => x, (r) => String(r.meta.label));
      const count = (side: typeof s.train, label: string) => side.filter((r) => r.meta.label === label).length;
      // common: 48 rows, 20 % ≈ 9.6 → one or two whole templates, never more than half
      expect(count(s.val, 'common')).toBeGreaterThanOrEqual(8);
      expect(count(s.val, 'common')).toBeLessThanOrEqual(16);
      // rare: 16 rows, 20 % = 3.2 → nearer 0 than 8: stays in train; single: its only template stays in train
      expect(count(s.val, 'rare')).toBe(0);
      expect(count(s.train, 'single')).toBe(8);
      // whole templates on one side
      const valT = new Set(s.val.map((r) => r.template));
      expect(s.train.some((r) => valT.has(r.template))).toBe(false);
    }
  });
});

describe('validators catch bad rows', () => {
  it('rejects schema-breaking tool arguments, wrong offsets, undeclared labels', async () => {
    const d = await loadDomain(join(SAMPLE, 'domain.json'));
    const v = new Validators(d);
    const sys = { role: 'system', content: 's' };
    const row = (target: string) => ({ messages: [sys, { role: 'user', content: 'q' }, { role: 'assistant', content: target }] });
    expect(v.toolRow().safeParse(row(toolCallText('get_error_code', { code: 'HL-5031' }))).success).toBe(true);
    expect(v.toolRow().safeParse(row(toolCallText('get_error_code', { code: 'hl5031' }))).success).toBe(false);
    expect(v.toolRow().safeParse(row(toolCallText('restart_service', { service: 'ledger-db', reason: 'x y z' }))).success).toBe(false);
    expect(v.toolRow().safeParse(row(toolCallText('delete_everything', {}))).success).toBe(false);
    expect(v.toolRow().safeParse(row('<tool_call>{"name": "get_error_code", "arguments": {"code": "HL-5031"}</tool_call>')).success).toBe(false);
    const ner = v.nerRow();
    const ok = { messages: [sys, { role: 'user', content: 'x' }, { role: 'assistant', content: '[{"type":"SERVICE","text":"notifier","start":4,"end":12}]' }], text: 'the notifier', entities: [{ type: 'SERVICE', text: 'notifier', start: 4, end: 12 }] };
    expect(ner.safeParse(ok).success).toBe(true);
    expect(ner.safeParse({ ...ok, entities: [{ type: 'SERVICE', text: 'notifier', start: 3, end: 11 }] }).success).toBe(false);
    const ls = d.labelSets[0] as Domain['labelSets'][0];
    const cls = v.classificationRow(ls);
    expect(cls.safeParse({ messages: [sys, { role: 'user', content: 't' }, { role: 'assistant', content: 'nonsense' }], text: 't', label: 'nonsense', label_set: ls.name }).success).toBe(false);
    expect(ChatRow.safeParse({ messages: [sys, { role: 'assistant', content: 'a' }] }).success).toBe(false);
    expect(DpoRow.safeParse({ system: 's', prompt: 'p', chosen: 'a', rejected: 'a' }).success).toBe(false);
  });

  it('failure generators produce what they claim', async () => {
    const d = await loadDomain(join(SAMPLE, 'domain.json'));
    const v = new Validators(d);
    const r = rng(3);
    const tool = d.tools.find((t) => t.name === 'page_oncall') as Domain['tools'][0];
    const args = { team: 'Data', severity: 'critical', summary: 'ledger primary is down' };
    for (let i = 0; i < 20; i++) {
      const bj = brokenJson(toolCallText(tool.name, args), r);
      expect(v.checkToolCall(bj).ok).toBe(false);
      expect(() => JSON.parse(/<tool_call>(.*)<\/tool_call>/s.exec(bj)?.[1] ?? '')).toThrow();
      const sb = schemaBreak(tool, args, r);
      expect(v.validateArgs(tool.name, sb)).not.toBeNull();
    }
    const ents = { SERVICE: ['notifier', 'scheduler'], ERROR_CODE: ['HL-5031', 'HL-4290'], USER: ['li.wei'], TEAM: ['Data'], ALERT: ['NotifierBacklog'] };
    const h = hallucinate('The notifier retries 3 times.', ents, d, r);
    expect(h).not.toBeNull();
    expect(h).not.toBe('The notifier retries 3 times.');
  });
});
