import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { Chunker, chunkDocs, splitBlocks, splitSections } from '../chunk.ts';
import { ingestDir } from '../ingest/index.ts';
import { loadTokenizer, type TokenCounter } from '../tokenizer.ts';
import type { Doc } from '../types.ts';

const SAMPLE = fileURLToPath(new URL('../samples/harborline', import.meta.url));
const TOKENIZER = fileURLToPath(new URL('../../../../shared/models/stories260K', import.meta.url));

let tok: TokenCounter;
beforeAll(async () => {
  tok = await loadTokenizer(TOKENIZER);
});

const doc = (markdown: string): Doc => ({ id: 'd1', source: 'x.md', format: 'markdown', title: 'X', markdown, meta: {} });

describe('chunking in the model tokens', () => {
  it('counts with the real tokenizer (stories260K, 512-token Llama BPE)', () => {
    expect(tok.count('Hello World')).toBe(7); // ▁He ll o ▁ W or ld
  });

  it('every chunk of the sample corpus is within budget, for several budgets', async () => {
    const { docs } = await ingestDir(SAMPLE, { logYear: 2026 });
    for (const [target, overlap] of [
      [64, 8],
      [128, 16],
      [256, 32],
    ] as const) {
      const chunks = chunkDocs(docs, tok, { targetTokens: target, overlapTokens: overlap });
      const toks = chunks.map((c) => c.tokens);
      console.log(`[chunk] target ${target}/overlap ${overlap}: ${chunks.length} chunks, tokens min ${Math.min(...toks)} mean ${Math.round(toks.reduce((a, b) => a + b, 0) / toks.length)} max ${Math.max(...toks)}`);
      for (const c of chunks) {
        expect(tok.count(c.text), `${c.source} ${c.sectionPath.join('>')}`).toBeLessThanOrEqual(target);
        expect(c.tokens).toBe(tok.count(c.text));
        expect(c.sectionPath.length).toBeGreaterThan(0);
        expect(c.source).toBeTruthy();
      }
      expect(new Set(chunks.map((c) => c.id)).size).toBe(chunks.length);
      // all content survives: every body line of every doc appears in some chunk (allowing hard splits of long lines)
      const all = chunks.map((c) => c.text).join('\n');
      for (const d of docs)
        for (const line of d.markdown.split('\n').filter((l) => l.trim() && !/^#{1,6} /.test(l) && tok.count(l) < target / 2)) expect(all, `${d.source}: ${line}`).toContain(line.trim());
    }
  });

  it('section paths follow the header hierarchy; headings inside code fences are not headings', () => {
    const s = splitSections('# A\n\nintro\n\n## B\n\nb text\n\n```sh\n# not a heading\n```\n\n### C\n\nc text\n\n## D\n\nd text');
    expect(s.map((x) => x.path.join(' > '))).toEqual(['A', 'A > B', 'A > B > C', 'A > D']);
    expect(s[1]?.body).toContain('# not a heading');
  });

  it('splits big tables into row groups that repeat the header, and big code blocks re-fenced', () => {
    const rows = Array.from({ length: 60 }, (_, i) => `| HL-${1000 + i} | service-${i} | something went wrong number ${i} |`);
    const md = `# Big\n\n| Code | Service | Meaning |\n| --- | --- | --- |\n${rows.join('\n')}\n\n\`\`\`log\n${Array.from({ length: 40 }, (_, i) => `line ${i} of the log output`).join('\n')}\n\`\`\``;
    const chunks = new Chunker(tok, { targetTokens: 120, overlapTokens: 0 }).chunkDoc(doc(md));
    const tableChunks = chunks.filter((c) => c.text.includes('| HL-'));
    expect(tableChunks.length).toBeGreaterThan(3);
    for (const c of tableChunks) expect(c.text.startsWith('| Code | Service | Meaning |\n| --- | --- | --- |\n')).toBe(true);
    const codeChunks = chunks.filter((c) => c.text.includes('of the log output'));
    expect(codeChunks.length).toBeGreaterThan(1);
    for (const c of codeChunks) expect(c.text).toMatch(/^```log\n[\s\S]*\n```$/);
    for (const c of chunks) expect(c.tokens).toBeLessThanOrEqual(120);
    expect(splitBlocks('a\nb\n\n| x |\n| - |\n| 1 |\ntext after')).toEqual(['a\nb', '| x |\n| - |\n| 1 |', 'text after']);
  });

  it('long prose is split at sentences with overlap between consecutive chunks; unbroken strings are hard-split', () => {
    const sentences = Array.from({ length: 40 }, (_, i) => `Sentence number ${i} talks about the scheduler lease and the ledger.`);
    const paras = [sentences.slice(0, 20).join(' '), sentences.slice(20).join(' ')].join('\n\n');
    const chunks = new Chunker(tok, { targetTokens: 100, overlapTokens: 40 }).chunkDoc(doc(`# P\n\n${paras}\n\n${'x'.repeat(2000)}`));
    for (const c of chunks) expect(c.tokens).toBeLessThanOrEqual(100);
    const prose = chunks.filter((c) => c.text.includes('Sentence'));
    let overlapped = 0;
    for (let i = 1; i < prose.length; i++) {
      const prevLast = (prose[i - 1]?.text.split('\n\n').pop() ?? '').trim();
      if (prose[i]?.text.startsWith(prevLast)) overlapped++;
    }
    expect(overlapped).toBeGreaterThan(0);
    expect(chunks.filter((c) => /^x+$/.test(c.text)).map((c) => c.text).join('')).toBe('x'.repeat(2000));
  });

  it('rejects impossible options', () => {
    expect(() => new Chunker(tok, { targetTokens: 4, overlapTokens: 0 })).toThrow();
    expect(() => new Chunker(tok, { targetTokens: 64, overlapTokens: 64 })).toThrow();
  });
});
