/**
 * Markdown-header-aware chunking (iterative: no recursion, so a one-line megabyte document is fine), measured in the model's tokens.
 *
 * 1. The document is cut into sections at ATX headings (never inside code fences); each section remembers its
 *    heading path (e.g. ["Runbooks", "Restart the scheduler"]).
 * 2. A section that fits the target becomes one chunk. A larger one is cut into blocks at blank lines (a code
 *    fence or a table is one block); blocks still too large are split (one pass per level, no recursion): tables into row groups that
 *    repeat the header row, code into line groups re-fenced, prose at newlines, then sentences, then words,
 *    then characters.
 * 3. Blocks are packed greedily up to `targetTokens`; each new chunk starts with the tail of the previous one
 *    (up to `overlapTokens`). Every emitted chunk is re-counted with the tokenizer and is ≤ targetTokens.
 * Chunk text excludes the heading lines; the section path travels alongside it.
 */
import type { Chunk, Doc } from './types.ts';
import type { TokenCounter } from './tokenizer.ts';
import { sha256 } from './util.ts';

/** No token of any tokenizer we meet spans more characters than this; longer strings are split before counting. */
const MAX_CHARS_PER_TOKEN = 32;

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
   * Iterative (no recursion, no spreading of unbounded arrays): a single 1 MB line is fine.
   */
  splitBlock(block: string): Piece[] {
    const T = this.opts.targetTokens;
    const lines = block.split('\n');
    if (this.fits(block, T) && !this.isProse(lines)) return [{ text: block, sep: '\n\n' }];
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
    const units = this.proseUnits(lines, T);
    if (units[0]) units[0].sep = '\n\n';
    return units;
  }

  private isProse(lines: string[]): boolean {
    return !/^\s*(\||```|~~~)/.test(lines[0] ?? '');
  }

  /**
   * Does `s` fit in `T` tokens? A string far longer than any T-token string is not tokenised at all (a token
   * spans at most a few dozen characters), so a megabyte line is never handed to the tokenizer whole.
   */
  private fits(s: string, T: number): boolean {
    if (s.length > T * MAX_CHARS_PER_TOKEN) return false;
    return this.n(s) <= T;
  }

  /** Greedy grouping of table rows / code lines under `T` tokens after wrapping. */
  private group(units: string[], T: number, wrap: (g: string) => string): string[] {
    const out: string[] = [];
    let cur: string[] = [];
    for (const u of units) {
      if (this.fits(wrap(cur.length ? `${cur.join('\n')}\n${u}` : u), T)) {
        cur.push(u);
        continue;
      }
      if (cur.length) out.push(wrap(cur.join('\n')));
      cur = [u];
      if (!this.fits(wrap(u), T)) {
        // one row/line larger than a chunk: split it inside the wrapper's remaining budget
        const budget = Math.max(4, T - this.n(wrap('')) - 2);
        let acc = '';
        for (const p of this.proseUnits([u], budget)) {
          const t = acc ? `${acc}${p.sep}${p.text}` : p.text;
          if (this.fits(wrap(t), T)) acc = t;
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

  /**
   * Smallest natural units, only as fine as needed: lines; a line too long → sentences; a sentence too long →
   * runs of words (about T characters each, verified); a word too long → characters. One pass per level, no
   * recursion: every level pushes onto the output array one piece at a time.
   */
  private proseUnits(lines: string[], T: number): Piece[] {
    const out: Piece[] = [];
    const emit = (text: string, sep: string) => {
      if (text.trim()) out.push({ text, sep: out.length ? sep : '' });
    };
    // word runs are about T characters (≈ T/4 tokens); sentences stay single units (sentence-granular overlap)
    // except in a pathological line (> 16·T characters, e.g. a megabyte on one line), where consecutive sentences
    // travel in groups of about T characters so the line is a few thousand pieces, not a few hundred thousand
    const runChars = Math.max(8, T);
    lines.forEach((line, li) => {
      const lineSep = li === 0 ? '' : '\n';
      if (this.fits(line, T)) return emit(line, lineSep);
      const sentences = line.split(/(?<=[.!?;:])\s+/);
      const one = (sentence: string, sSep: string) => {
        if (this.fits(sentence, T)) return emit(sentence, sSep);
        // runs of words (runChars long), each verified; a run still too long is cut by characters
        let run = '';
        let first = true;
        const flush = () => {
          if (!run) return;
          const sep = first ? sSep : ' ';
          first = false;
          if (this.fits(run, T)) emit(run, sep);
          else this.hardSplit(run, T).forEach((p, i) => emit(p, i === 0 ? sep : ''));
          run = '';
        };
        for (const w of sentence.split(' ')) {
          if (!w) continue;
          if (run && run.length + 1 + w.length > runChars) flush();
          run = run ? `${run} ${w}` : w;
        }
        flush();
      };
      // consecutive short sentences travel as one piece of about T characters (fewer, larger pieces to count)
      let group: string[] = [];
      let groupLen = 0;
      let groupSep = lineSep;
      const flushGroup = () => {
        if (!group.length) return;
        const joined = group.join(' ');
        if (group.length > 1 && this.fits(joined, T)) emit(joined, groupSep);
        else group.forEach((x, i) => one(x, i === 0 ? groupSep : ' '));
        group = [];
        groupLen = 0;
        groupSep = ' ';
      };
      const groupChars = line.length > 16 * T ? runChars : 0;
      for (const sentence of sentences) {
        if (group.length && groupLen + 1 + sentence.length > groupChars) flushGroup();
        group.push(sentence);
        groupLen += sentence.length + 1;
      }
      flushGroup();
    });
    return out;
  }

  /** Cut by characters: the longest prefix that fits (binary search inside a bounded window). */
  private hardSplit(text: string, T: number): string[] {
    const out: string[] = [];
    let pos = 0;
    const window = T * MAX_CHARS_PER_TOKEN;
    while (pos < text.length) {
      const rest = text.slice(pos, pos + window);
      let lo = 1;
      let hi = rest.length;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (this.n(rest.slice(0, mid)) <= T) lo = mid;
        else hi = mid - 1;
      }
      out.push(rest.slice(0, lo));
      pos += lo;
    }
    return out;
  }

  /**
   * Pack pieces into chunks ≤ target; each new chunk starts with the previous chunk's tail (≤ overlap tokens).
   * Linear: every piece is counted once (with its separator) and the running sum decides; each chunk is then
   * counted exactly once, and in the rare case the sum under-estimated, pieces go back to the queue until it fits.
   */
  pack(pieces: Piece[]): string[] {
    const T = this.opts.targetTokens;
    const O = this.opts.overlapTokens;
    const chunks: string[] = [];
    const join = (xs: Piece[]) => xs.map((p, i) => (i === 0 ? p.text : p.sep + p.text)).join('');
    // a piece's own count (already known to the tokenizer's cache from splitting) plus one for a separator: an
    // estimate, made exact by the per-chunk check below
    const cost = (p: Piece, first: boolean) => this.n(p.text) + (first || !p.sep ? 0 : 1);
    let cur: Piece[] = [];
    let costs: number[] = [];
    let est = 0;
    let tailLen = 0; // cur[0 .. tailLen) is overlap carried from the previous chunk
    const pending: Piece[] = []; // pieces handed back by an exact check, processed before the rest, in order
    let i = 0;
    const next = (): Piece | undefined => (pending.length ? pending.shift() : pieces[i++]);
    const setCur = (xs: Piece[], tail: number) => {
      cur = xs;
      costs = xs.map((q, k) => cost(q, k === 0));
      est = costs.reduce((a, b) => a + b, 0);
      tailLen = tail;
    };
    for (let p = next(); p; p = next()) {
      const c = cost(p, cur.length === 0);
      if (!cur.length || est + c <= T) {
        cur.push(p);
        costs.push(c);
        est += c;
        continue;
      }
      if (cur.length === tailLen) {
        // only overlap so far: drop overlap from the front until the new piece fits
        pending.unshift(p);
        setCur(cur.slice(1), tailLen - 1);
        continue;
      }
      pending.unshift(p);
      // exact check of the chunk; hand pieces back while it is over budget
      let t = join(cur);
      while (cur.length > 1 && !this.fits(t, T)) {
        if (cur.length - tailLen > 1) pending.unshift(cur.pop() as Piece);
        else {
          cur.shift();
          tailLen--;
        }
        t = join(cur);
      }
      chunks.push(t);
      // the next chunk starts with the tail of this one
      const tail: Piece[] = [];
      let tEst = 0;
      for (let k = cur.length - 1; k > 0 && O > 0; k--) {
        const ck = cost(cur[k] as Piece, false);
        if (tEst + ck > O) break;
        tail.unshift(cur[k] as Piece);
        tEst += ck;
      }
      while (tail.length && !this.fits(join(tail), O)) tail.shift();
      setCur(tail, tail.length);
    }
    if (cur.length > tailLen) {
      let t = join(cur);
      // final chunk: same exact check; any piece handed back starts one more chunk
      const rest: Piece[] = [];
      while (cur.length > 1 && !this.fits(t, T)) {
        if (cur.length - tailLen > 1) rest.unshift(cur.pop() as Piece);
        else {
          cur.shift();
          tailLen--;
        }
        t = join(cur);
      }
      chunks.push(t);
      if (rest.length) for (const x of this.pack(rest)) chunks.push(x);
    }
    return chunks.map((c) => c.trim()).filter(Boolean);
  }

  chunkDoc(doc: Doc): Chunk[] {
    const out: Chunk[] = [];
    const min = this.opts.minTokens ?? 4;
    for (const s of splitSections(doc.markdown)) {
      const pieces: Piece[] = [];
      for (const b of splitBlocks(s.body)) for (const p of this.splitBlock(b)) pieces.push(p);
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
  const out: Chunk[] = [];
  for (const d of docs) for (const ch of c.chunkDoc(d)) out.push(ch);
  return out;
}
