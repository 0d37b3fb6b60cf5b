import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import type { Doc, DocFormat } from '../types.ts';
import { normalizeText, sha256 } from '../util.ts';
import { removeCrossDocBoilerplate } from './boilerplate.ts';
import { htmlToMarkdown } from './html.ts';
import { logToMarkdown } from './logs.ts';
import { pdfToMarkdown } from './pdf.ts';
import { textToMarkdown } from './text.ts';
import { parseMediaWikiXml, wikitextToMarkdown } from './wiki.ts';

export { htmlToMarkdown, tableToMarkdown } from './html.ts';
export { logToMarkdown, parseLog, parseLogLine } from './logs.ts';
export { pdfToMarkdown } from './pdf.ts';
export { textToMarkdown } from './text.ts';
export { parseMediaWikiXml, wikitextToMarkdown } from './wiki.ts';
export { removeRepeatedPageLines, removeCrossDocBoilerplate } from './boilerplate.ts';

export interface IngestSkip {
  source: string;
  reason: string;
}
/** Per-file input limit (bytes) unless configured: larger files are skipped with a message saying how to raise it. */
export const DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024;

export interface IngestOptions {
  logYear?: number;
  /** skip files larger than this (default 10 MiB) */
  maxFileBytes?: number;
  onProgress?: (done: number, total: number, file: string) => void;
}

export interface IngestResult {
  docs: Doc[];
  skipped: IngestSkip[];
  boilerplateRemoved: Record<string, number>;
  byFormat: Record<string, number>;
}

export function detectFormat(path: string, head: string): DocFormat | null {
  const ext = extname(path).toLowerCase();
  if (ext === '.md' || ext === '.markdown') return 'markdown';
  if (ext === '.html' || ext === '.htm' || ext === '.xhtml') return 'html';
  if (ext === '.pdf') return 'pdf';
  if (ext === '.log' || /\.log\.\d+$/.test(path)) return 'log';
  if (ext === '.wiki' || ext === '.mediawiki' || ext === '.wikitext') return 'wiki';
  if (ext === '.xml') return /<mediawiki[\s>]/.test(head) ? 'wiki' : null;
  if (ext === '.txt' || ext === '.text' || ext === '') return 'text';
  return null;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => e.name !== 'domain.json');
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

function titleOf(markdown: string, fallback: string): string {
  return /^#\s+(.+)$/m.exec(markdown)?.[1]?.trim() ?? fallback;
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

/** Ingest one file into zero or more documents (a MediaWiki export holds many pages). Throws with the reason when the file is unusable. */
export async function ingestFile(path: string, rel: string, opts: Omit<IngestOptions, 'onProgress'> = {}): Promise<Doc[]> {
  const st = await stat(path);
  const limit = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  if (st.size === 0) throw new Error('empty file (0 bytes)');
  if (st.size > limit) throw new Error(`file is ${mb(st.size)}, over the per-file limit of ${mb(limit)} (raise it with --max-file-mb)`);
  let buf = await readFile(path);
  // UTF-16 text (with a byte-order mark) is re-encoded as UTF-8 rather than mistaken for binary
  if (buf.length >= 2 && ((buf[0] === 0xff && buf[1] === 0xfe) || (buf[0] === 0xfe && buf[1] === 0xff))) {
    const le = buf[0] === 0xff;
    const body = Buffer.from(buf.subarray(2));
    if (!le) body.swap16();
    buf = Buffer.from(body.toString('utf16le'), 'utf8');
  }
  const head = buf.subarray(0, 2048).toString('utf8');
  const format = detectFormat(path, head);
  if (!format) throw new Error(`unsupported file type ${extname(path) || '(none)'}`);
  if (format === 'pdf' && !buf.subarray(0, 1024).toString('latin1').includes('%PDF-')) throw new Error('not a PDF (no %PDF- header; binary or mislabelled file)');
  if (format !== 'pdf' && looksBinary(buf)) throw new Error(`binary content in a ${format} file (NUL bytes or invalid UTF-8)`);
  const mtime = st.mtime.toISOString();
  const base = rel.split(sep).join('/');
  const mk = (source: string, title: string, markdown: string, meta: Record<string, unknown> = {}): Doc => {
    const md = normalizeText(markdown);
    return { id: sha256(`${source}\n${md}`).slice(0, 16), source, format, title: title.trim() || source, markdown: md, meta: { mtime, ...meta } };
  };
  switch (format) {
    case 'markdown': {
      const md = buf.toString('utf8').replace(/^---\n[\s\S]*?\n---\n/, ''); // front matter
      return [mk(base, titleOf(md, base), md)];
    }
    case 'text': {
      const { markdown, removed } = textToMarkdown(buf.toString('utf8'));
      return [mk(base, titleOf(markdown, base), markdown, { removedBoilerplate: removed })];
    }
    case 'html': {
      const { title, markdown } = htmlToMarkdown(buf.toString('utf8'));
      return [mk(base, title, markdown)];
    }
    case 'log': {
      const name = base.split('/').pop() ?? base;
      const { title, markdown, meta } = logToMarkdown(name, buf.toString('utf8'), { year: opts.logYear });
      return [mk(base, title, markdown, meta)];
    }
    case 'pdf': {
      const { title, markdown, meta } = await pdfToMarkdown(new Uint8Array(buf));
      return [mk(base, title, markdown, meta)];
    }
    case 'wiki': {
      const text = buf.toString('utf8');
      const pages = /<mediawiki[\s>]/.test(head) ? parseMediaWikiXml(text) : [{ title: base, text }];
      return pages.map((p) => {
        const { markdown, categories } = wikitextToMarkdown(p.text);
        const md = /^#\s/m.test(markdown) ? markdown : `# ${p.title}\n\n${markdown}`;
        return mk(pages.length > 1 ? `${base}#${p.title}` : base, p.title, md, { categories });
      });
    }
  }
}

/** NUL bytes, or many U+FFFD after decoding, in the first 64 KiB: not text. */
export function looksBinary(buf: Buffer): boolean {
  const head = buf.subarray(0, 65536);
  if (head.includes(0)) return true;
  const text = head.toString('utf8');
  let bad = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 0xfffd) bad++;
  return bad > 8 && bad / Math.max(1, text.length) > 0.01;
}

/**
 * Ingest every file of a folder. Each file is ingested on its own: one that fails, is over the size limit or comes
 * out empty is recorded in `skipped` with the reason, and the others go on. Callers decide what "nothing usable" means.
 */
export async function ingestDir(dir: string, opts: IngestOptions = {}): Promise<IngestResult> {
  const st = await stat(dir);
  const files = st.isDirectory() ? await walk(dir) : [dir];
  const docs: Doc[] = [];
  const skipped: IngestSkip[] = [];
  const byFormat: Record<string, number> = {};
  let i = 0;
  for (const f of files) {
    const rel = st.isDirectory() ? relative(dir, f) : f.split(sep).pop() ?? f;
    try {
      const ds = await ingestFile(f, rel, opts);
      for (const d of ds) {
        if (!d.markdown.replace(/^#.*$/gm, '').trim()) {
          skipped.push({ source: d.source, reason: 'empty after cleaning' });
          continue;
        }
        docs.push(d);
        byFormat[d.format] = (byFormat[d.format] ?? 0) + 1;
      }
    } catch (e) {
      skipped.push({ source: rel.split(sep).join('/'), reason: ((e as Error).message || String(e)).split('\n')[0] as string });
    }
    opts.onProgress?.(++i, files.length, rel);
  }
  const { removed } = removeCrossDocBoilerplate(docs);
  for (const d of docs) d.markdown = normalizeText(d.markdown);
  return { docs, skipped, boilerplateRemoved: Object.fromEntries(removed), byFormat };
}
