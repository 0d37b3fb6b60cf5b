import { mkdtemp, mkdir, writeFile, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { htmlToMarkdown, ingestDir, logToMarkdown, parseLog, parseMediaWikiXml, pdfToMarkdown, textToMarkdown, wikitextToMarkdown } from '../ingest/index.ts';
import { readFile } from 'node:fs/promises';

const SAMPLE = fileURLToPath(new URL('../samples/harborline', import.meta.url));

describe('ingest: a folder mixing every format', () => {
  it('ingests md, txt, html, logs, pdf and a MediaWiki export, cleaned to Markdown', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lf-ingest-'));
    await cp(SAMPLE, dir, { recursive: true });
    await mkdir(join(dir, 'misc'), { recursive: true });
    await writeFile(join(dir, 'misc', 'notes.wiki'), "== Quick notes ==\n* '''hlctl''' is the CLI.\n{{Stub}}\n");
    await writeFile(join(dir, 'misc', 'image.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    await writeFile(join(dir, 'misc', 'weird\u00a0spaces.md'), '# Ｆｕｌｌｗｉｄｔｈ title\n\nText\u00a0with\u200b odd   \t spaces and “quotes”.\n\n\n\n\nEnd.');
    const res = await ingestDir(dir, { logYear: 2026 });
    console.log(`[ingest] ${res.docs.length} documents by format ${JSON.stringify(res.byFormat)}; skipped ${JSON.stringify(res.skipped)}`);
    for (const f of ['markdown', 'text', 'html', 'log', 'pdf', 'wiki']) expect(res.byFormat[f], f).toBeGreaterThan(0);
    expect(res.skipped.map((s) => s.source)).toEqual(['misc/image.png']);
    const by = (src: string) => res.docs.find((d) => d.source === src);

    const html = by('docs/error-codes.html');
    expect(html?.markdown).toContain('| HL-5031 | billing-worker | Worker stopped consuming invoice jobs |');
    expect(html?.markdown).not.toMatch(/Home \| |Privacy|Breadcrumb|Docs › Reference|analytics|Related/);
    expect(html?.title).toBe('Harborline Error Codes');

    const pdf = by('docs/ops-handbook.pdf');
    expect(pdf?.markdown).toMatch(/^# Harborline Operations Handbook$/m);
    expect(pdf?.markdown).toMatch(/^## Service level objectives$/m);
    expect(pdf?.markdown).not.toMatch(/Internal use only|Page \d of 3/);
    // two-column page: the whole left column comes before the right column
    const md = pdf?.markdown ?? '';
    expect(md.indexOf('### Standard changes')).toBeGreaterThan(0);
    expect(md.indexOf('hlctl command that was run')).toBeLessThan(md.indexOf('### Normal changes'));
    expect(md).toContain('- api-gateway latency objective: 95 percent of requests under 300 ms.');

    const faq = by('docs/support-faq.txt');
    expect(faq?.markdown).not.toMatch(/HARBORLINE SUPPORT - INTERNAL|page \d of 2/i);
    expect(faq?.markdown).toMatch(/^## Billing$/m);

    const wiki = res.docs.filter((d) => d.format === 'wiki').map((d) => d.source);
    expect(wiki).toEqual(expect.arrayContaining(['docs/wiki-export.xml#Alerts', 'docs/wiki-export.xml#User directory', 'docs/wiki-export.xml#On-call policy', 'misc/notes.wiki']));
    expect(wiki.some((s) => s.includes('Talk:'))).toBe(false);
    expect(by('docs/wiki-export.xml#Alerts')?.markdown).toContain('| LedgerPrimaryDown | critical | ledger-db | primary unreachable for 5 minutes | Fail over ledger-db |');
    expect(by('docs/wiki-export.xml#Alerts')?.markdown).not.toMatch(/Navbox|__TOC__|Category/);

    const weird = by('misc/weird\u00a0spaces.md');
    expect(weird?.markdown).toBe('# Fullwidth title\n\nText with odd spaces and "quotes".\n\nEnd.\n');

    const log = by('logs/api-gateway.log');
    expect(log?.markdown).toMatch(/^## Incident \d+: 2026-03-14T02:11:09.210Z \(r-8812c\)$/m);
    expect(log?.markdown).not.toMatch(/healthz|heartbeat/);
    expect(log?.markdown).toContain('(x3)');
    for (const d of res.docs) expect(d.markdown).not.toMatch(/\n{3,}|[ \t]+\n/);
  });
});

describe('ingest: individual formats', () => {
  it('HTML: navigation and chrome removed, tables kept as Markdown tables', () => {
    const { markdown, title } = htmlToMarkdown(
      '<html><head><title>T</title><style>p{}</style></head><body><div role="navigation">Menu A B</div><div class="cookie-banner">Accept cookies</div>' +
        '<h1>Doc</h1><p>Hello <em>there</em>.</p><table><tr><th>K</th><th>V</th></tr><tr><td>a|b</td><td colspan="1">2</td></tr><tr><td>c</td></tr></table><footer>(c)</footer></body></html>',
    );
    expect(title).toBe('T');
    expect(markdown).toBe('# Doc\n\nHello _there_.\n\n| K | V |\n| --- | --- |\n| a\\|b | 2 |\n| c |  |');
  });

  it('logs: formats parsed, timestamps normalised to UTC ISO, noise dropped, grouped into incidents and sessions', () => {
    const text = [
      '2026-03-14 02:11:09,120 +0100 ERROR [pay] charge failed HL-5002 session=abc',
      '\u001b[31m2026-03-14T01:11:10Z WARN [pay] retrying session=abc\u001b[0m',
      'Mar 14 05:00:00 host cron[1]: INFO backup started',
      '[1773464460] INFO backup done',
      '{"ts":"2026-03-14T05:02:00Z","level":"debug","service":"cron","msg":"heartbeat"}',
      '{"ts":1773468000,"level":"error","service":"db","msg":"disk full","session":"zz"}',
      'garbage before?',
    ].join('\n');
    const { groups } = parseLog(text, { year: 2026 });
    const abc = groups.find((g) => g.key === 'abc');
    expect(abc?.kind).toBe('incident');
    expect(abc?.records.map((r) => r.ts?.toISOString())).toEqual(['2026-03-14T01:11:09.120Z', '2026-03-14T01:11:10.000Z']);
    const backup = groups.find((g) => g.records.some((r) => r.message === 'backup started'));
    expect(backup?.kind).toBe('session');
    expect(backup?.records.map((r) => r.message)).toEqual(['backup started', 'backup done']);
    expect(groups.find((g) => g.key === 'zz')?.records[0]?.service).toBe('db');
    expect(groups.flatMap((g) => g.records).some((r) => /heartbeat/.test(r.message))).toBe(false);
    const md = logToMarkdown('x.log', text, { year: 2026 }).markdown;
    expect(md).toContain('- First error: charge failed HL-5002 session=abc');
  });

  it('wikitext: headings, emphasis, links, lists, tables, templates', () => {
    const { markdown, categories } = wikitextToMarkdown("=== Title ===\n'''bold''' and ''it'' [[Page|link]] [https://x.example ext]{{cite|x}}<ref>r</ref>\n* a\n** b\n# one\n{|\n|+ cap\n! H1 !! H2\n|-\n| style=\"x\" | c1 || c2\n|}\n[[Category:Ops]]");
    expect(markdown).toBe('### Title\n\n**bold** and *it* link [ext](https://x.example)\n- a\n  - b\n1. one\n\n| H1 | H2 |\n| --- | --- |\n| c1 | c2 |\n');
    expect(categories).toEqual(['Ops']);
    expect(parseMediaWikiXml('<mediawiki><page><title>A &amp; B</title><ns>0</ns><revision><text>x &lt;b&gt;</text></revision></page><page><title>R</title><ns>0</ns><revision><text>#REDIRECT [[A]]</text></revision></page></mediawiki>')).toEqual([
      { title: 'A & B', text: 'x <b>' },
    ]);
  });

  it('plain text: running headers/footers removed, headings recognised', () => {
    const page = (n: number) => `ACME MANUAL\n\nSECTION ${n}\n\nBody text number ${n} with content.\n\nPage ${n} of 3`;
    const { markdown } = textToMarkdown([1, 2, 3].map(page).join('\f'));
    expect(markdown).not.toMatch(/ACME MANUAL|Page \d of 3/);
    expect(markdown).toMatch(/^## Section 2$/m);
    expect(markdown).toContain('Body text number 3 with content.');
  });

  it('PDF: reads the shipped handbook through pdfjs', async () => {
    const buf = await readFile(join(SAMPLE, 'docs', 'ops-handbook.pdf'));
    const { markdown, meta, title } = await pdfToMarkdown(new Uint8Array(buf));
    expect(meta.pages).toBe(3);
    expect(title).toBe('Harborline Operations Handbook');
    expect(markdown).toMatch(/^## Post-incident review$/m);
    expect(markdown).toContain('A written review is due within five working days of any critical incident.');
  });
});
