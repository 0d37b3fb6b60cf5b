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
import { brokenJson, hallucinate, rowContent, schemaBreak } from '../format.ts';
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
            // a rejected tool call is broken JSON, breaks the schema, or calls another tool
            expect(!r.ok || (c.ok && r.name !== c.name), rejected).toBe(true);
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

  it('DPO rejected answers are realistic failures of every kind', () => {
    const failures = stats.format?.sets.find((x) => x.name === 'dpo')?.failures ?? {};
    for (const k of ['invalid_json', 'schema_violation', 'wrong_tool', 'wrong_label', 'hallucinated_fact', 'unneeded_tool_call']) expect(failures[k], k).toBeGreaterThan(0);
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
