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

export interface Piece {
  text: string;
  /** separator placed before this piece when it follows another piece in the same chunk */
  sep: string;
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

  /**
   * Split one block into pieces that each fit the target. A piece remembers the separator that joined it to the
   * previous one ('\n\n' between blocks, '\n' between lines, ' ' between sentences/words, '' inside a hard split),
   * so packing can put the text back together exactly and overlap at sentence granularity.
   */
  splitBlock(block: string): Piece[] {
    const T = this.opts.targetTokens;
    const lines = block.split('\n');
    if (this.n(block) <= T && !this.isProse(lines)) return [{ text: block, sep: '\n\n' }];
    if (/^\s*\|/.test(lines[0] ?? '') && /^\s*\|[\s:|-]+\|\s*$/.test(lines[1] ?? '')) {
      const header = lines.slice(0, 2).join('\n');
      const rows = lines.slice(2);
      if (this.n(header) < T / 2) return this.group(rows, T, (g) => `${header}\n${g}`).map((text) => ({ text, sep: '\n\n' }));
    }
    const fence = /^\s*(```|~~~)(.*)$/.exec(lines[0] ?? '');
    if (fence && lines.length > 2 && /^\s*(```|~~~)\s*$/.test(lines[lines.length - 1] ?? '')) {
      const open = lines[0] ?? '```';
      const close = lines[lines.length - 1] ?? '```';
      if (this.n(`${open}\n${close}`) < T / 2) return this.group(lines.slice(1, -1), T, (g) => `${open}\n${g}\n${close}`).map((text) => ({ text, sep: '\n\n' }));
    }
    const units = this.units(block, ['\n', ' ', ''], T);
    if (units[0]) units[0].sep = '\n\n';
    return units;
  }

  private isProse(lines: string[]): boolean {
    return !/^\s*(\||```|~~~)/.test(lines[0] ?? '');
  }

  /** Greedy grouping of table rows / code lines under `T` tokens after wrapping. */
  private group(units: string[], T: number, wrap: (g: string) => string): string[] {
    const out: string[] = [];
    let cur: string[] = [];
    for (const u of units) {
      const trial = [...cur, u];
      if (this.n(wrap(trial.join('\n'))) <= T) {
        cur = trial;
        continue;
      }
      if (cur.length) out.push(wrap(cur.join('\n')));
      cur = [u];
      if (this.n(wrap(u)) > T) {
        // one row/line larger than a chunk: split it inside the wrapper's remaining budget
        const budget = Math.max(4, T - this.n(wrap('')) - 2);
        let acc = '';
        for (const p of this.units(u, [' ', ''], budget)) {
          const t = acc ? `${acc}${p.sep}${p.text}` : p.text;
          if (this.n(wrap(t)) <= T) acc = t;
          else {
            if (acc) out.push(wrap(acc));
            acc = p.text;
          }
        }
        if (acc) out.push(wrap(acc));
        cur = [];
      }
    }
    if (cur.length) out.push(wrap(cur.join('\n')));
    return out;
  }

  /** Smallest natural units: lines, then sentences, then words, then characters — only as deep as needed. */
  private units(text: string, seps: string[], T: number): Piece[] {
    const [sep, ...rest] = seps;
    if (sep === undefined || sep === '') return this.hardSplit(text, T);
    let parts: { text: string; sep: string }[];
    if (sep === ' ') {
      // sentences first, words only for a sentence that is itself too long
      const sentences = text.split(/(?<=[.!?;:])\s+/).filter((x) => x);
      if (sentences.length > 1) {
        return sentences.flatMap((s, i) => {
          const sub = this.n(s) <= T ? [{ text: s, sep: ' ' }] : this.units(s, [' ', ''], T).slice();
          if (sub[0]) sub[0].sep = i === 0 ? '' : ' ';
          return sub;
        });
      }
      parts = text.split(' ').filter((x) => x).map((t) => ({ text: t, sep: ' ' }));
    } else parts = text.split(sep).map((t) => ({ text: t, sep }));
    const out: Piece[] = [];
    for (const p of parts) {
      if (this.n(p.text) <= T || (rest.length === 0 && sep !== ' ')) out.push(p);
      else {
        const sub = this.units(p.text, sep === '\n' ? [' ', ''] : [''], T);
        if (sub[0]) sub[0].sep = p.sep;
        out.push(...sub);
      }
    }
    if (out[0]) out[0].sep = '';
    return out.filter((p) => p.text.trim());
  }

  private hardSplit(text: string, T: number): Piece[] {
    const out: Piece[] = [];
    let rest = text;
    while (rest.length) {
      let lo = 1;
      let hi = rest.length;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (this.n(rest.slice(0, mid)) <= T) lo = mid;
        else hi = mid - 1;
      }
      out.push({ text: rest.slice(0, lo), sep: '' });
      rest = rest.slice(lo);
    }
    return out;
  }

  /** Pack pieces into chunks ≤ target; each new chunk starts with the previous chunk's tail (≤ overlap tokens). */
  pack(pieces: Piece[]): string[] {
    const T = this.opts.targetTokens;
    const O = this.opts.overlapTokens;
    const chunks: string[] = [];
    const join = (xs: Piece[]) => xs.map((p, i) => (i === 0 ? p.text : p.sep + p.text)).join('');
    let cur: Piece[] = [];
    for (const p of pieces) {
      if (!cur.length || this.n(join([...cur, p])) <= T) {
        cur.push(p);
        continue;
      }
      chunks.push(join(cur));
      const tail: Piece[] = [];
      for (let i = cur.length - 1; i > 0 && O > 0; i--) {
        const cand = [cur[i] as Piece, ...tail];
        if (this.n(join(cand)) > O) break;
        tail.unshift(cur[i] as Piece);
      }
      cur = [...tail, p];
      while (cur.length > 1 && this.n(join(cur)) > T) cur.shift();
    }
    if (cur.length) chunks.push(join(cur));
    return chunks.map((c) => c.trim()).filter(Boolean);
  }

  chunkDoc(doc: Doc): Chunk[] {
    const out: Chunk[] = [];
    const min = this.opts.minTokens ?? 4;
    for (const s of splitSections(doc.markdown)) {
      const pieces = splitBlocks(s.body).flatMap((b) => this.splitBlock(b));
      for (const text of this.pack(pieces)) {
        const index = out.length;
        const tokens = this.n(text);
        if (tokens < min) continue;
        if (tokens > this.opts.targetTokens) throw new Error(`chunk over budget (${tokens} > ${this.opts.targetTokens}) in ${doc.source}`);
        out.push({
          id: sha256(`${doc.id}\n${index}\n${s.path.join('\u001f')}\n${text}`).slice(0, 16),
          docId: doc.id,
          source: doc.source,
          sectionPath: s.path.length ? s.path : [doc.title],
          text,
          tokens,
          index,
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
