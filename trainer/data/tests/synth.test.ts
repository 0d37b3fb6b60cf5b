import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { dataCli } from '../cli.ts';
import { extractPairs, proseQuestion, tableQuestion } from '../synth/extractive.ts';
import { Teacher, extractJson, grounded } from '../synth/teacher.ts';
import type { Chunk } from '../types.ts';
import { readJsonl, writeJsonl } from '../util.ts';
import { startFakeTeacher } from './fake-teacher.ts';

const CLI = fileURLToPath(new URL('../cli.ts', import.meta.url));
const SAMPLE = fileURLToPath(new URL('../samples/harborline', import.meta.url));
const TOKENIZER = fileURLToPath(new URL('../../../../shared/models/stories260K', import.meta.url));

function mkChunks(n: number): Chunk[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `c${String(i).padStart(3, '0')}`,
    docId: 'd',
    source: `doc${i}.md`,
    sectionPath: ['Doc', `Section ${i}`],
    text: `Service number ${i} restarts every ${i + 2} hours. It is owned by team ${i % 3}.`,
    tokens: 20,
    index: i,
  }));
}

function cachedChunkIds(cacheDir: string): Set<string> {
  const out = new Set<string>();
  if (!existsSync(cacheDir)) return out;
  for (const sub of readdirSync(cacheDir))
    for (const f of readdirSync(join(cacheDir, sub)).filter((x) => x.endsWith('.json'))) out.add((JSON.parse(readFileSync(join(cacheDir, sub, f), 'utf8')) as { chunkId: string }).chunkId);
  return out;
}

let closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers) await c();
  closers = [];
});

describe('teacher synthesis against an OpenAI-compatible server on loopback', () => {
  it('survives malformed JSON and HTTP 500s, grounds and judges pairs, caches per chunk', async () => {
    const srv = await startFakeTeacher({
      script: (id, kind, nth) => {
        if (id === 'c001' && kind === 'gen' && nth === 1) return 'malformed';
        if (id === 'c002' && kind === 'gen' && nth <= 2) return 'error500';
        if (id === 'c003' && kind === 'judge' && nth === 1) return 'malformed';
        if (id === 'c004' && kind === 'gen' && nth === 1) return 'badshape';
        if (id === 'c005') return 'malformed'; // never recovers
        if (id === 'c006' && kind === 'gen') return 'partial'; // one malformed pair among good ones
        return 'ok';
      },
    });
    closers.push(srv.close);
    const cacheDir = await mkdtemp(join(tmpdir(), 'lf-cache-'));
    const chunks = mkChunks(7);
    const t = new Teacher({ baseURL: srv.url, model: 'fake', apiKey: 'k', cacheDir, concurrency: 3, backoffMs: 1, maxAttempts: 3, threshold: 4 });
    const res = await t.run(chunks);
    console.log(`[synth] run 1: ${JSON.stringify(t.stats)}; ${res.pairs.length} pairs kept; ${srv.requests.length} HTTP requests`);
    // 6 chunks succeed, each keeps exactly the grounded pair the judge scored 5
    expect(res.pairs.length).toBe(6);
    expect(new Set(res.pairs.map((p) => p.chunkId))).toEqual(new Set(['c000', 'c001', 'c002', 'c003', 'c004', 'c006']));
    for (const p of res.pairs) expect(grounded(p.evidence ?? '', chunks.find((c) => c.id === p.chunkId)?.text ?? '')).toBe(true);
    expect(t.stats.apiErrors).toBe(2);
    expect(t.stats.malformed).toBeGreaterThanOrEqual(3 + 3);
    expect(t.stats.failedChunks).toBe(1);
    const reasons = res.rejected.map((r) => r.reason);
    expect(reasons.filter((r) => r === 'evidence not found in chunk').length).toBe(6);
    expect(reasons.filter((r) => r === 'judge score 2 < 4').length).toBe(6);
    expect(reasons.filter((r) => r === 'malformed pair in teacher reply')).toHaveLength(1);
    expect(res.rejected.find((r) => r.reason === 'chunk failed')?.detail).toMatch(/^c005: gave up after 3 attempts \(malformed reply/);
    expect(cachedChunkIds(cacheDir).size).toBe(6);

    // rerun: finished chunks come from the cache, only the failed chunk is asked again
    const before = srv.requests.length;
    const t2 = new Teacher({ baseURL: srv.url, model: 'fake', apiKey: 'k', cacheDir, concurrency: 3, backoffMs: 1, maxAttempts: 3, threshold: 4 });
    const res2 = await t2.run(chunks);
    const again = srv.requests.slice(before);
    expect(new Set(again.map((r) => r.chunkId))).toEqual(new Set(['c005']));
    expect(t2.stats.cached).toBe(6);
    expect(res2.pairs.length).toBe(6);
  });

  it('data synth resumes after being killed mid-run without repeating finished chunks', async () => {
    const srv = await startFakeTeacher({ delayMs: 60, script: (id, kind, nth) => (id === 'c007' && kind === 'gen' && nth === 1 ? 'error500' : 'ok') });
    closers.push(srv.close);
    const work = await mkdtemp(join(tmpdir(), 'lf-resume-'));
    const chunks = mkChunks(16);
    await writeJsonl(join(work, 'chunks.jsonl'), chunks);
    const args = [CLI, 'synth', '--out', work, '--chunks', join(work, 'chunks.jsonl'), '--teacher-url', srv.url, '--model', 'fake', '--api-key', 'k', '--concurrency', '1', '--backoff-ms', '1', '--quiet'];
    const cacheDir = join(work, 'cache');

    // run 1: kill it (SIGKILL) once 5 chunks are cached
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const deadline = Date.now() + 30_000;
    while (cachedChunkIds(cacheDir).size < 5) {
      if (Date.now() > deadline) throw new Error(`run 1 made no progress: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    const code1 = await exited;
    const doneBeforeKill = cachedChunkIds(cacheDir);
    expect(code1).toBeNull(); // killed, not finished
    expect(doneBeforeKill.size).toBeGreaterThanOrEqual(5);
    expect(doneBeforeKill.size).toBeLessThan(16);
    expect(existsSync(join(work, 'qa.jsonl'))).toBe(false);
    const run1Requests = srv.requests.length;

    // run 2: completes; no finished chunk is requested again
    const child2 = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err2 = '';
    child2.stderr.on('data', (d: Buffer) => (err2 += d.toString()));
    const code2 = await new Promise<number | null>((r) => child2.on('exit', (c) => r(c)));
    expect(code2, err2).toBe(0);
    const run2 = srv.requests.slice(run1Requests);
    const repeated = run2.filter((r) => doneBeforeKill.has(r.chunkId));
    console.log(
      `[synth] kill/resume: ${doneBeforeKill.size}/16 chunks cached when killed after ${run1Requests} requests; ` +
        `run 2 made ${run2.length} requests for ${new Set(run2.map((r) => r.chunkId)).size} chunks, ${repeated.length} for already-finished chunks`,
    );
    expect(repeated).toEqual([]);
    expect(cachedChunkIds(cacheDir).size).toBe(16);
    const qa = await readJsonl<{ chunkId: string; origin: string }>(join(work, 'qa.jsonl'));
    expect(new Set(qa.map((p) => p.chunkId)).size).toBe(16);
    expect(qa.every((p) => p.origin === 'teacher')).toBe(true);
    const stats = JSON.parse(readFileSync(join(work, 'stats.json'), 'utf8')) as { synth: { teacher: { cached: number } } };
    expect(stats.synth.teacher.cached).toBe(doneBeforeKill.size);
  });

  it('data run with --teacher-url: teacher pairs flow into the formatted sets', async () => {
    const srv = await startFakeTeacher({ script: (id, kind, nth) => (nth === 1 && id.startsWith('a') ? 'malformed' : nth === 1 && id.startsWith('b') ? 'error500' : 'ok') });
    closers.push(srv.close);
    const work = await mkdtemp(join(tmpdir(), 'lf-run-teacher-'));
    const code = await dataCli(['run', SAMPLE, '--out', work, '--tokenizer', TOKENIZER, '--teacher-url', srv.url, '--model', 'fake', '--concurrency', '4', '--backoff-ms', '1', '--with-extractive', '--quiet']);
    expect(code).toBe(0);
    const qa = await readJsonl<{ origin: string }>(join(work, 'qa.jsonl'));
    const chat = await readJsonl<{ messages: { content: string }[] }>(join(work, 'sets', 'chat.train.jsonl'));
    const stats = JSON.parse(readFileSync(join(work, 'stats.json'), 'utf8')) as { synth: { chunks: number; teacher: { failedChunks: number } } };
    const teacherPairs = qa.filter((p) => p.origin === 'teacher').length;
    console.log(`[synth] data run with teacher: ${stats.synth.chunks} chunks, ${srv.requests.length} requests, ${teacherPairs} teacher + ${qa.length - teacherPairs} extractive pairs`);
    expect(stats.synth.teacher.failedChunks).toBe(0);
    // one judged, grounded pair per chunk survives (a few chunks open with "1." or "|", which makes the fake
    // teacher's evidence quote too short: that pair is dropped as malformed and reported)
    expect(teacherPairs).toBeGreaterThanOrEqual(Math.floor(0.9 * stats.synth.chunks));
    expect(teacherPairs).toBeLessThanOrEqual(stats.synth.chunks);
    expect(chat.some((r) => /What does the passage \w+ say first\?/.test(r.messages[1]?.content ?? ''))).toBe(true);
    expect(readFileSync(join(work, 'report.md'), 'utf8')).toMatch(/\| synth \| \d+ chunks \| \d+ Q&A pairs \| teacher \+ extractive; model fake/);
  });

  it('extracts JSON from fenced or chatty replies', () => {
    expect(extractJson('Here:\n```json\n{"a":1}\n```')).toEqual({ a: 1 });
    expect(extractJson('ok {"a":{"b":2}} thanks')).toEqual({ a: { b: 2 } });
    expect(() => extractJson('no json here')).toThrow();
    // answers that contain code fences themselves
    expect(extractJson('```json\n{"a":"```log\\nx\\n```"}\n```')).toEqual({ a: '```log\nx\n```' });
  });
});

describe('offline extractive generator', () => {
  const ch = (text: string, path: string[]): Chunk => ({ id: 'x', docId: 'd', source: 's.md', sectionPath: path, text, tokens: 1, index: 0 });
  it('error-code tables, definitions, runbook steps, key-value facts, FAQ', () => {
    const chunk = ch(
        [
          'Use this when the queue is stuck (HL-5031).',
          '',
          '1. Drain the worker.',
          '2. Restart it.',
          '3. Replay the dead-letter queue.',
          '',
          '**Lease**: a row that marks the active leader.',
          '',
          '| Code | Service | Meaning | Resolution |',
          '| --- | --- | --- | --- |',
          '| HL-5031 | billing-worker | Worker stopped consuming | Restart the billing-worker |',
          '',
          'Deploy tool: Shipwright',
          '',
          'How long are invoices kept?',
          'Seven years.',
        ].join('\n'),
        ['Runbooks', 'Restart the billing-worker'],
      );
    const pairs = extractPairs(chunk);
    const qa = Object.fromEntries(pairs.map((p) => [p.question, p.answer]));
    expect(qa['What does error code HL-5031 mean?']).toBe('HL-5031 (billing-worker): Worker stopped consuming. Resolution: Restart the billing-worker.');
    expect(qa['What are the steps to restart the billing-worker?']).toBe('1. Drain the worker.\n2. Restart it.\n3. Replay the dead-letter queue.');
    expect(qa['When should the runbook "Restart the billing-worker" be used?']).toBe('Use it when the queue is stuck (HL-5031).');
    expect(qa['What does "Lease" mean?']).toBe('Lease: a row that marks the active leader.');
    expect(qa['What is the deploy tool?']).toBe('The deploy tool is Shipwright.');
    expect(qa['How long are invoices kept?']).toBe('Seven years.');
    for (const p of pairs) expect(chunk.text).toContain(p.evidence);
    expect(pairs.every((p) => p.origin === 'extractive' && p.chunkId === 'x')).toBe(true);
    expect(pairs.find((p) => p.question === 'What does error code HL-5031 mean?')).toMatchObject({ template: 'error_code:meaning', subject: 'HL-5031' });
  });

  it('table questions are phrased per column, grammatical, with a template id per column', () => {
    const t = (k: string, c: string, key: string, v: string) => tableQuestion(k, c, key, v);
    expect(t('Service', 'Depends on', 'scheduler', 'queue-broker')).toEqual({ question: 'What does the scheduler service depend on?', answer: 'The scheduler service depends on queue-broker.', template: 'table:service:depends on' });
    expect(t('Service', 'Owner team', 'notifier', 'Messaging').question).toBe('Which team owns the notifier service?');
    expect(t('Service', 'Port', 'notifier', '9500').answer).toBe('The notifier service listens on port 9500.');
    expect(t('Username', 'Time zone', 'li.wei', 'Asia/Singapore')).toMatchObject({ question: 'What time zone is li.wei in?', answer: 'li.wei is in the Asia/Singapore time zone.' });
    expect(t('Alert', 'Runbook', 'NotifierBacklog', 'Clear a notifier backlog').question).toBe('Which runbook covers the NotifierBacklog alert?');
    expect(t('Host', 'Runs on', 'db1', 'rack 4').question).toBe('What does the db1 host run on?');
    expect(t('Team', 'Budget', 'Edge', '4 FTE').question).toBe('What is the budget of the Edge team?');
    // the domain spec may phrase a column itself (domain.json tableQuestions)
    const own = { budget: { question: 'How many people may {SUBJECT} hire?', answer: '{SUBJECT} may hire {VALUE}.' } };
    expect(tableQuestion('Team', 'Budget', 'Edge', '4 FTE', own)).toEqual({ question: 'How many people may the Edge team hire?', answer: 'The Edge team may hire 4 FTE.', template: 'table:team:budget' });
    const chunk = ch('| Team | Budget |\n| --- | --- |\n| Edge | 4 FTE |', ['Teams']);
    expect(extractPairs(chunk, { tableQuestions: own }).map((p) => p.question)).toEqual(['How many people may the Edge team hire?']);
  });

  it('prose facts: deadlines, schedules, objectives, escalation — the sentence is the answer', () => {
    const text = [
      'A written review is due within five working days of any critical incident.',
      'The on-call rotation changes every Monday at 09:00 UTC.',
      'Each tier 1 service has an availability objective of 99.95 percent over a rolling 30-day window.',
      'Incidents that last longer than one hour are escalated to the head of operations, Amara Okafor.',
      'Settled invoices are kept in ledger-db for 7 years.',
      '1. Trigger missed jobs with `hlctl scheduler run nightly-settlement`.',
      'Some sentence with no fact shape at all here.',
    ].join('\n');
    const pairs = extractPairs(ch(text, ['Handbook', 'Rules'])).filter((p) => p.kind === 'prose_fact');
    expect(pairs.map((p) => p.question)).toEqual([
      'When is a written review due?',
      'When does the on-call rotation change?',
      'What is the availability objective of each tier 1 service?',
      'Who are incidents that last longer than one hour escalated to?',
      'How long are settled invoices kept?',
    ]);
    for (const p of pairs) expect(p.answer).toBe(p.evidence);
    expect(proseQuestion('Trigger missed jobs with `hlctl scheduler run`.')).toBeNull();
  });

  it('log incidents are asked by service, day, time window and error code, not by incident number', () => {
    const text = [
      '- Window: 2026-03-14T02:11:09.210Z to 2026-03-14T02:11:14Z, 7 events',
      '- Highest level: ERROR',
      '- Services: api-gateway',
      '- Error codes: HL-5002',
      '- First error: request_id=r-8812c upstream ledger-db connection refused HL-5002',
    ].join('\n');
    const pairs = extractPairs(ch(text, ['Log: api-gateway.log', 'Incident 2: 2026-03-14T02:11:09.210Z (r-8812c)']));
    expect(pairs.map((p) => p.question)).toEqual(['What went wrong with api-gateway on 2026-03-14 around 02:11 UTC?', 'What did the logs show for HL-5002 on api-gateway on 2026-03-14 around 02:11 UTC?']);
    for (const p of pairs) expect(p.question).not.toMatch(/incident \d|\.log/i);
  });
});
