/**
 * Markdown-header-aware recursive chunking, measured in the model's tokens.
 *
 * 1. The document is cut into sections at ATX headings (never inside code fences); each section remembers its
 *    heading path (e.g. ["Runbooks", "Restart the scheduler"]).
 * 2. A section that fits the target becomes one chunk. A larger one is cut into blocks at blank lines (a code
 *    fence or a table is one block); blocks still too large are split recursively: tables into row groups that
 *    repeat the header row, code into line groups re-fenced, prose at newlines, then sentences, then words,
 *    then characters.
 * 3. Blocks are packed greedily up to `targetTokens`; each new chunk starts with the tail of the previous one
 *    (up to `overlapTokens`). Every emitted chunk is re-counted with the tokenizer and is ≤ targetTokens.
 * Chunk text excludes the heading lines; the section path travels alongside it.
 */
import type { Chunk, Doc } from './types.ts';
import type { TokenCounter } from './tokenizer.ts';
import { sha256 } from './util.ts';

export interface ChunkOptions {
  targetTokens: number;
  overlapTokens: number;
  /** sections shorter than this many tokens (heading-only stubs) are dropped */
  minTokens?: number;
}

export interface Section {
  path: string[];
  body: string;
}

export function splitSections(markdown: string): Section[] {
  const lines = markdown.split('\n');
  const sections: Section[] = [];
  const stack: { level: number; title: string }[] = [];
  let body: string[] = [];
  let inFence = false;
  const flush = () => {
    const text = body.join('\n').trim();
    if (text) sections.push({ path: stack.map((s) => s.title), body: text });
    body = [];
  };
  for (const line of lines) {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
    const h = !inFence ? /^(#{1,6})\s+(.+?)\s*#*\s*$/.exec(line) : null;
    if (h) {
      flush();
      const level = (h[1] ?? '#').length;
      while (stack.length && (stack[stack.length - 1]?.level ?? 0) >= level) stack.pop();
      stack.push({ level, title: (h[2] ?? '').trim() });
    } else body.push(line);
  }
  flush();
  return sections;
}

/** Blank-line blocks; fenced code and tables stay whole. */
export function splitBlocks(text: string): string[] {
  const blocks: string[] = [];
  let cur: string[] = [];
  let inFence = false;
  const flush = () => {
    if (cur.join('').trim()) blocks.push(cur.join('\n').trim());
    cur = [];
  };
  for (const line of text.split('\n')) {
    const fence = /^\s*(```|~~~)/.test(line);
    if (fence && !inFence) {
      flush();
      inFence = true;
      cur.push(line);
      continue;
    }
    if (fence && inFence) {
      cur.push(line);
      inFence = false;
      flush();
      continue;
    }
    if (!inFence && !line.trim()) {
      flush();
      continue;
    }
    // a table starts a new block and ends at the first non-table line
    const isRow = /^\s*\|/.test(line);
    const prevRow = cur.length > 0 && /^\s*\|/.test(cur[cur.length - 1] ?? '');
    if (!inFence && cur.length && isRow !== prevRow) flush();
    cur.push(line);
  }
  flush();
  return blocks;
}

export class Chunker {
  constructor(
    private readonly tok: TokenCounter,
    private readonly opts: ChunkOptions,
  ) {
    if (opts.targetTokens < 8) throw new Error('targetTokens must be ≥ 8');
    if (opts.overlapTokens < 0 || opts.overlapTokens >= opts.targetTokens) throw new Error('overlapTokens must be in [0, targetTokens)');
  }

  private n(s: string): number {
    return this.tok.count(s);
  }

  /** Split one oversized block into pieces that each fit the target. */
  splitBlock(block: string): string[] {
    const T = this.opts.targetTokens;
    if (this.n(block) <= T) return [block];
    const lines = block.split('\n');
    if (/^\s*\|/.test(lines[0] ?? '') && /^\s*\|[\s:|-]+\|\s*$/.test(lines[1] ?? '')) {
      const header = lines.slice(0, 2).join('\n');
      const rows = lines.slice(2);
      if (this.n(header) < T / 2) return this.group(rows, '\n', T, (g) => `${header}\n${g}`);
    }
    const fence = /^\s*(```|~~~)(.*)$/.exec(lines[0] ?? '');
    if (fence && lines.length > 2 && /^\s*(```|~~~)\s*$/.test(lines[lines.length - 1] ?? '')) {
      const open = lines[0] ?? '```';
      const close = lines[lines.length - 1] ?? '```';
      if (this.n(`${open}\n${close}`) < T / 2) return this.group(lines.slice(1, -1), '\n', T, (g) => `${open}\n${g}\n${close}`);
    }
    return this.recursive(block, ['\n', '. ', ' ']);
  }

  /** Greedy grouping of units under `T` tokens after wrapping. */
  private group(units: string[], joiner: string, T: number, wrap: (g: string) => string): string[] {
    const out: string[] = [];
    let cur: string[] = [];
    for (const u of units) {
      const trial = [...cur, u];
      if (this.n(wrap(trial.join(joiner))) <= T) {
        cur = trial;
        continue;
      }
      if (cur.length) out.push(wrap(cur.join(joiner)));
      cur = [u];
      if (this.n(wrap(u)) > T) {
        // a single unit larger than a chunk: split it as prose inside the wrapper budget
        const inner = this.recursive(u, ['. ', ' '], T - (this.n(wrap('')) + 2));
        out.push(...inner.map(wrap));
        cur = [];
      }
    }
    if (cur.length) out.push(wrap(cur.join(joiner)));
    return out;
  }

  private recursive(text: string, seps: string[], T = this.opts.targetTokens): string[] {
    if (this.n(text) <= T) return [text];
    const [sep, ...rest] = seps;
    if (sep === undefined) return this.hardSplit(text, T);
    if (!text.includes(sep)) return this.recursive(text, rest, T);
    const parts = text.split(sep).map((p, i, a) => (i < a.length - 1 && sep !== '\n' ? p + sep.trimEnd() : p)).filter((p) => p.trim());
    const joiner = sep === '\n' ? '\n' : ' ';
    const out: string[] = [];
    let cur = '';
    for (const p of parts) {
      const trial = cur ? `${cur}${joiner}${p}` : p;
      if (this.n(trial) <= T) {
        cur = trial;
        continue;
      }
      if (cur) out.push(cur);
      if (this.n(p) <= T) cur = p;
      else {
        out.push(...this.recursive(p, rest, T));
        cur = '';
      }
    }
    if (cur) out.push(cur);
    return out;
  }

  private hardSplit(text: string, T: number): string[] {
    const out: string[] = [];
    let rest = text;
    while (rest.length) {
      let lo = 1;
      let hi = rest.length;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (this.n(rest.slice(0, mid)) <= T) lo = mid;
        else hi = mid - 1;
      }
      out.push(rest.slice(0, lo));
      rest = rest.slice(lo);
    }
    return out;
  }

  /** Pack pieces into chunks ≤ target with tail overlap. */
  pack(pieces: string[]): string[] {
    const T = this.opts.targetTokens;
    const O = this.opts.overlapTokens;
    const chunks: string[] = [];
    let cur: string[] = [];
    const text = (xs: string[]) => xs.join('\n\n');
    for (const p of pieces) {
      if (!cur.length || this.n(text([...cur, p])) <= T) {
        cur.push(p);
        continue;
      }
      chunks.push(text(cur));
      // overlap: trailing pieces of the finished chunk totalling ≤ O tokens
      const tail: string[] = [];
      for (let i = cur.length - 1; i >= 0 && O > 0; i--) {
        const cand = [cur[i] as string, ...tail];
        if (this.n(text(cand)) > O) break;
        tail.unshift(cur[i] as string);
      }
      cur = [...tail, p];
      while (cur.length > 1 && this.n(text(cur)) > T) cur.shift();
    }
    if (cur.length) chunks.push(text(cur));
    return chunks;
  }

  chunkDoc(doc: Doc): Chunk[] {
    const out: Chunk[] = [];
    const min = this.opts.minTokens ?? 4;
    for (const s of splitSections(doc.markdown)) {
      const pieces = splitBlocks(s.body).flatMap((b) => this.splitBlock(b));
      for (const text of this.pack(pieces)) {
        const tokens = this.n(text);
        if (tokens < min) continue;
        if (tokens > this.opts.targetTokens) throw new Error(`chunk over budget (${tokens} > ${this.opts.targetTokens}) in ${doc.source}`);
        out.push({
          id: sha256(`${doc.id}\n${s.path.join('\u001f')}\n${text}`).slice(0, 16),
          docId: doc.id,
          source: doc.source,
          sectionPath: s.path.length ? s.path : [doc.title],
          text,
          tokens,
          index: out.length,
        });
      }
    }
    return out;
  }
}

export function chunkDocs(docs: Doc[], tok: TokenCounter, opts: ChunkOptions): Chunk[] {
  const c = new Chunker(tok, opts);
  return docs.flatMap((d) => c.chunkDoc(d));
}
