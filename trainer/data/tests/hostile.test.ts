/**
 * Hostile inputs: huge single-line texts, a binary renamed .pdf, empty files, broken HTML, script/style in table
 * cells, an invalid domain.json. Each gives a stated behaviour (processed, or skipped with a reason, or a clear
 * error) and the good files of the same folder still produce sets.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { Chunker } from '../chunk.ts';
import { dataCli } from '../cli.ts';
import { parseDomain } from '../domain.ts';
import { htmlToMarkdown, ingestDir } from '../ingest/index.ts';
import { runAll, stageDedupe } from '../pipeline.ts';
import { loadTokenizer, type TokenCounter } from '../tokenizer.ts';
import { rng } from '../util.ts';

const SAMPLE = fileURLToPath(new URL('../samples/harborline', import.meta.url));
const TOKENIZER = fileURLToPath(new URL('../../../../shared/models/stories260K', import.meta.url));

export const HOSTILE_HTML =
  '<html><head><title>Hostile page</title><style>body{color:red}</style></head><body><h1>Hostile page</h1>' +
  '<table><tr><th>Service</th><th>Notes</th></tr>' +
  '<tr><td>notifier<script>track("x")</script><style>.a{color:red}</style></td><td><p>Para one</p><p>Para two</p></td></tr>' +
  '<tr><td>scheduler<template><b>template text</b></template></td><td><ul><li>lease in ledger-db</li><li>nightly settlement</li></ul></td></tr></table>' +
  '<p>Unclosed <b>bold and <script>alert(1)</script> <div>text</x-turndown> more</div>' +
  '<p>The notifier retries failed deliveries five times before it gives up.' +
  '<noscript><img src=x onerror=alert(3)></noscript><svg><text>svg text</text></svg>' +
  '<p>Last words <script>alert(2) // never closed, runs to the end of the file\n<p>not text either</p>';

/**
 * Markup that must never reach a training row: HTML elements (and the x-turndown wrapper of the old converter), script
 * and style content. `<tool_call>` is not HTML; command placeholders such as `<username>` in the docs are content.
 */
const HTML_TAGS = 'a|abbr|aside|b|body|br|code|dd|div|dl|dt|em|footer|form|h[1-6]|head|header|hr|html|i|iframe|img|li|link|main|meta|nav|noscript|ol|p|pre|script|section|span|strong|style|svg|table|tbody|td|template|text|th|thead|title|tr|u|ul';
export const RAW_MARKUP = new RegExp(`</?(?:${HTML_TAGS}|x-[a-z-]+)(?:\\s[^<>]*)?/?>|alert\\(|track\\(|color:red|template text|svg text|not text either`, 'i');

function words(n: number, seed: number): string {
  const vocab = 'the scheduler publishes nightly jobs to queue-broker and billing-worker reads invoices from ledger-db while notifier sends messages about each failed delivery after retries'.split(' ');
  const r = rng(seed);
  const out: string[] = [];
  let len = 0;
  while (len < n) {
    let w = vocab[Math.floor(r() * vocab.length)] as string;
    if (r() < 0.05) w += String(Math.floor(r() * 1e6)); // defeat the tokenizer's cache
    out.push(w);
    len += w.length + 1;
  }
  return out.join(' ');
}

let tok: TokenCounter;
beforeAll(async () => {
  tok = await loadTokenizer(TOKENIZER);
});

describe('hostile inputs: huge single-line files', () => {
  it('a 1 MB single line (sentences, or no punctuation at all) chunks within budget, iteratively', () => {
    const oneLine = words(1_000_000, 1);
    for (const [name, text] of [
      ['words only', oneLine],
      ['sentences', oneLine.replace(/ (\w+) (\w+) (\w+) /g, ' $1 $2. $3 ')],
      ['one 1 MB word', 'x'.repeat(1_000_000)],
    ] as const) {
      const t0 = performance.now();
      const chunks = new Chunker(tok, { targetTokens: 256, overlapTokens: 32 }).chunkDoc({ id: 'big', source: 'big.txt', format: 'text', title: 'big', markdown: text, meta: {} });
      const ms = performance.now() - t0;
      console.log(`[hostile] 1 MB single line (${name}): ${chunks.length} chunks in ${ms.toFixed(0)} ms`);
      expect(chunks.length).toBeGreaterThan(500);
      let max = 0;
      for (const c of chunks) max = Math.max(max, c.tokens);
      expect(max).toBeLessThanOrEqual(256);
      // every character of the input survives (overlap aside): the chunks cover the text in order
      expect(chunks[chunks.length - 1]?.text.slice(-50)).toBe(text.trim().slice(-50));
    }
  }, 60_000);

  it('a 20 MB single-line file is skipped with a size message; the other files are ingested', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lf-big-'));
    await writeFile(join(dir, 'huge.txt'), Buffer.alloc(20 * 1024 * 1024, 'a'));
    await writeFile(join(dir, 'small.md'), '# Small\n\nThe notifier sends messages.\n');
    await writeFile(join(dir, 'one-mb.txt'), words(1_000_000, 2));
    const t0 = performance.now();
    const res = await ingestDir(dir);
    console.log(`[hostile] ingest of a 1 MB single line + 20 MB file skipped: ${(performance.now() - t0).toFixed(0)} ms; ${res.skipped[0]?.reason}`);
    expect(res.docs.map((d) => d.source)).toEqual(['one-mb.txt', 'small.md']);
    expect(res.docs[0]?.markdown.length).toBeGreaterThan(990_000);
    expect(res.skipped).toEqual([{ source: 'huge.txt', reason: expect.stringMatching(/20\.0 MB, over the per-file limit of 10\.0 MB \(raise it with --max-file-mb\)/) }]);
    const raised = await ingestDir(dir, { maxFileBytes: 30 * 1024 * 1024 });
    expect(raised.docs.map((d) => d.source).sort()).toEqual(['huge.txt', 'one-mb.txt', 'small.md']);
  }, 60_000);
});

describe('hostile inputs: broken HTML through the HTML5 parser', () => {
  it('script/style/template never become text; cell blocks stay separated; unclosed tags parse as in a browser', () => {
    const { markdown, title } = htmlToMarkdown(HOSTILE_HTML);
    expect(title).toBe('Hostile page');
    expect(markdown).not.toMatch(RAW_MARKUP);
    expect(markdown).toContain('| notifier | Para one; Para two |');
    expect(markdown).toContain('| scheduler | lease in ledger-db; nightly settlement |');
    expect(markdown).toContain('The notifier retries failed deliveries five times before it gives up.');
    expect(markdown).toContain('Last words');
    expect(markdown).toMatch(/text more/);
  });
});

describe('hostile inputs mixed into the sample: per-file isolation', () => {
  let dir: string;
  let work: string;
  let stderr: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lf-hostile-'));
    await cp(SAMPLE, dir, { recursive: true });
    await mkdir(join(dir, 'hostile'));
    await writeFile(join(dir, 'hostile', 'scan.pdf'), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)));
    await writeFile(join(dir, 'hostile', 'empty.md'), '');
    await writeFile(join(dir, 'hostile', 'blank.txt'), '\n\n   \n\f\n');
    await writeFile(join(dir, 'hostile', 'broken.html'), HOSTILE_HTML);
    await writeFile(join(dir, 'hostile', 'fake.pdf'), '%PDF-1.4\n1 0 obj garbage without xref\n');
    work = await mkdtemp(join(tmpdir(), 'lf-hostile-out-'));
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await dataCli(['run', dir, '--out', work, '--tokenizer', TOKENIZER, '--log-year', '2026', '--quiet'])).toBe(0);
      stderr = spy.mock.calls.map((c) => String(c[0])).join('');
    } finally {
      spy.mockRestore();
    }
  }, 120_000);

  it('bad files are skipped with reasons on stderr and in the report; the run still produces every set', () => {
    const stats = JSON.parse(readFileSync(join(work, 'stats.json'), 'utf8')) as { ingest: { skipped: { source: string; reason: string }[] } };
    const skipped = Object.fromEntries(stats.ingest.skipped.map((s) => [s.source, s.reason]));
    console.log(`[hostile] skipped: ${JSON.stringify(skipped)}`);
    expect(Object.keys(skipped).sort()).toEqual(['hostile/blank.txt', 'hostile/empty.md', 'hostile/fake.pdf', 'hostile/scan.pdf']);
    expect(skipped['hostile/scan.pdf']).toMatch(/not a PDF/);
    expect(skipped['hostile/empty.md']).toMatch(/empty file/);
    expect(skipped['hostile/blank.txt']).toMatch(/empty after cleaning/);
    for (const f of Object.keys(skipped)) expect(stderr).toContain(f);
    const report = readFileSync(join(work, 'report.md'), 'utf8');
    for (const f of Object.keys(skipped)) expect(report).toContain(f);
    const sets = readdirSync(join(work, 'sets'));
    for (const n of ['chat', 'tool', 'ner', 'dpo', 'classification-intent']) expect(sets).toContain(`${n}.train.jsonl`);
  });

  it('no row of any set carries markup from <script>/<style> or a raw tag', () => {
    let rows = 0;
    for (const f of readdirSync(join(work, 'sets')).filter((x) => x.endsWith('.jsonl'))) {
      for (const line of readFileSync(join(work, 'sets', f), 'utf8').split('\n').filter(Boolean)) {
        rows++;
        const m = RAW_MARKUP.exec(line.replace(/\\u003c/g, '<').replace(/\\"/g, '"'));
        expect(m?.[0], `${f}: ${line.slice(0, 200)}`).toBeUndefined();
      }
    }
    const chunks = readFileSync(join(work, 'chunks.jsonl'), 'utf8');
    expect(chunks).toContain('The notifier retries failed deliveries five times');
    expect(chunks).not.toMatch(RAW_MARKUP);
    expect(rows).toBeGreaterThan(300);
  });

  it('a folder of nothing but bad files fails, naming every file and its reason', async () => {
    const bad = await mkdtemp(join(tmpdir(), 'lf-allbad-'));
    await cp(join(SAMPLE, 'domain.json'), join(bad, 'domain.json'));
    await writeFile(join(bad, 'scan.pdf'), Buffer.from([0, 1, 2, 3, 255, 254]));
    await writeFile(join(bad, 'empty.txt'), '');
    const out = await mkdtemp(join(tmpdir(), 'lf-allbad-out-'));
    await expect(runAll(bad, { work: out, quiet: true })).rejects.toThrow(/no usable document.*\n\s+empty\.txt: empty file.*\n\s+scan\.pdf: not a PDF/);
  });
});

describe('hostile inputs: a corrupted work directory', () => {
  it('a bad row in an intermediate file is an error naming the file, the row and the field', async () => {
    const work = await mkdtemp(join(tmpdir(), 'lf-badwork-'));
    const good = { id: 'c1', docId: 'd1', source: 'a.md', sectionPath: ['A'], text: 'The notifier sends messages.', tokens: 7, index: 0 };
    await writeFile(join(work, 'chunks.jsonl'), `${JSON.stringify(good)}\n${JSON.stringify({ ...good, id: 'c2', tokens: 'seven' })}\n`);
    await expect(stageDedupe({ work, quiet: true })).rejects.toThrow(/chunks\.jsonl: row 2: tokens: Expected number, received string/);
    await writeFile(join(work, 'chunks.jsonl'), `${JSON.stringify(good)}\n{"id": "c3",\n`);
    await expect(stageDedupe({ work, quiet: true })).rejects.toThrow(/chunks\.jsonl:2: invalid JSON/);
  });
});

describe('hostile inputs: a tiny corpus', () => {
  it('one short text (no error code, no table) still gives sets; UTF-16 text is read, not skipped as binary', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lf-tiny-'));
    await cp(join(SAMPLE, 'domain.json'), join(dir, 'domain.json'));
    await writeFile(join(dir, 'note.txt'), 'The scheduler publishes jobs to queue-broker. It keeps its lease in ledger-db.\n');
    await writeFile(join(dir, 'wide.txt'), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('The notifier retries failed deliveries five times.\n', 'utf16le')]));
    const work = await mkdtemp(join(tmpdir(), 'lf-tiny-out-'));
    const res = await runAll(dir, { work, quiet: true });
    const names = res.sets.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(['chat', 'tool', 'ner', 'dpo']));
    expect(readFileSync(join(work, 'docs.jsonl'), 'utf8')).toContain('The notifier retries failed deliveries five times.');
    expect(readFileSync(join(work, 'sets', 'tool.train.jsonl'), 'utf8')).not.toMatch(/<ERROR_CODE>|<[A-Z_]+>/);
  });
});

describe('hostile inputs: an invalid domain.json', () => {
  it('fails before any stage runs, naming the file and the field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lf-baddomain-'));
    await cp(SAMPLE, dir, { recursive: true });
    const d = JSON.parse(await readFile(join(dir, 'domain.json'), 'utf8')) as { tools: { name: string; queries?: unknown }[]; labelSets: { labels: string[] }[] };
    (d.tools[2] as { name: string }).name = 'restart service!';
    delete (d.tools[1] as { queries?: unknown }).queries;
    (d.labelSets[1] as { labels: string[] }).labels = ['only-one'];
    await writeFile(join(dir, 'domain.json'), JSON.stringify(d));
    const work = await mkdtemp(join(tmpdir(), 'lf-baddomain-out-'));
    const err = await runAll(dir, { work, quiet: true }).then(
      () => null,
      (e: Error) => e.message,
    );
    console.log(`[hostile] invalid domain.json → ${err}`);
    expect(err).toContain(join(dir, 'domain.json'));
    expect(err).toMatch(/tools\[2\]\.name: /);
    expect(err).toMatch(/tools\[1\]\.queries: Required/);
    expect(err).toMatch(/labelSets\[1\]\.labels: /);
    expect(err?.split('\n').length).toBe(1);
    expect(existsSync(join(work, 'docs.jsonl'))).toBe(false); // nothing ran
    expect(() => parseDomain('{"name": "x",', 'spec.json')).toThrow(/^spec\.json: invalid JSON/);
    const undeclared = JSON.parse(readFileSync(join(SAMPLE, 'domain.json'), 'utf8')) as { tools: { queries: { text: string }[] }[] };
    (undeclared.tools[0]?.queries[0] as { text: string }).text = 'Who is {PERSON}?';
    expect(() => parseDomain(JSON.stringify(undeclared), 'd.json')).toThrow(/tools\[0\]\.queries\[0\]\.text: entity type \{PERSON\} is not declared/);
  });
});
