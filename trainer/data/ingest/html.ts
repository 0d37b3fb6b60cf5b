/**
 * HTML → Markdown over a real HTML5 parser (parse5, the WHATWG tree-construction algorithm): broken markup
 * (unclosed tags, stray end tags, tables with text in odd places) is repaired exactly as a browser repairs it, and
 * the Markdown is written by walking that tree — no regular expressions over markup, so no raw tag can leak.
 *  - never text: script, style, template, noscript, svg/math, iframe/object/embed, form controls, <head>;
 *  - site chrome removed: nav/header/footer/aside/form, and elements whose role is navigation/banner/contentinfo
 *    or whose class/id says nav, menu, breadcrumbs, sidebar, cookie banner, toc…;
 *  - headings → ATX, lists (nested) → "-" / "1.", pre → fenced code, blockquote → ">", dl → "**term**: definition",
 *    tables → GitHub tables (colspan padded); block elements inside a cell stay separated ("Para one. Para two."
 *    or "; " when the first block has no closing punctuation);
 *  - inline: em/i → _x_, strong/b → **x**, code → `x`, links → their text, br → line break.
 */
import { parse, type DefaultTreeAdapterTypes as P } from 'parse5';

type Node = P.Node;
type Element = P.Element;

const NAV_CLASS = /(^|[\s_-])(nav|navbar|menu|breadcrumbs?|sidebar|footer|header|cookie|banner|toc|skip)([\s_-]|$)/i;
/** content that is never text */
const DROP = new Set(['script', 'style', 'template', 'noscript', 'svg', 'math', 'iframe', 'object', 'embed', 'canvas', 'select', 'textarea', 'button', 'input', 'head', 'title', 'meta', 'link', 'base']);
/** site chrome */
const CHROME = new Set(['nav', 'header', 'footer', 'aside', 'form']);
const BLOCK = new Set([
  'address', 'article', 'blockquote', 'body', 'caption', 'center', 'dd', 'details', 'dialog', 'div', 'dl', 'dt', 'fieldset', 'figcaption', 'figure',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hgroup', 'hr', 'li', 'main', 'ol', 'p', 'pre', 'section', 'summary', 'table', 'tbody', 'td', 'tfoot', 'th',
  'thead', 'tr', 'ul', 'html',
]);

function isElement(n: Node): n is Element {
  return 'tagName' in n;
}
function attr(e: Element, name: string): string {
  return e.attrs.find((a) => a.name === name)?.value ?? '';
}
function children(n: Node): Node[] {
  return 'childNodes' in n ? (n.childNodes as Node[]) : [];
}

function removed(e: Element): boolean {
  const tag = e.tagName;
  if (DROP.has(tag) || CHROME.has(tag)) return true;
  if (tag === 'body' || tag === 'html' || tag === 'main') return false;
  if (e.attrs.some((a) => a.name === 'hidden') || /display\s*:\s*none/i.test(attr(e, 'style'))) return true;
  if (/^(navigation|banner|contentinfo|search)$/i.test(attr(e, 'role'))) return true;
  return NAV_CLASS.test(`${attr(e, 'class')} ${attr(e, 'id')}`);
}

/** Visible text of a subtree (dropped elements excluded), whitespace as-is. */
function textOf(n: Node): string {
  if (n.nodeName === '#text') return (n as P.TextNode).value;
  if (isElement(n) && removed(n)) return '';
  let s = '';
  for (const c of children(n)) s += textOf(c);
  return s;
}

const collapse = (s: string) => s.replace(/[ \t\r\n\f]+/g, ' ');

/** Inline Markdown of a node's children; block descendants are rendered with `blocks` by the caller. */
function inline(n: Node): string {
  if (n.nodeName === '#text') return collapse((n as P.TextNode).value);
  if (!isElement(n) || removed(n)) return '';
  const tag = n.tagName;
  if (tag === 'br') return '\n';
  if (tag === 'img') return attr(n, 'alt');
  let inner = '';
  for (const c of children(n)) inner += inline(c);
  const wrap = (m: string) => {
    const t = inner.trim();
    if (!t) return inner;
    const lead = /^\s/.test(inner) ? ' ' : '';
    const trail = /\s$/.test(inner) ? ' ' : '';
    return `${lead}${m}${t}${m}${trail}`;
  };
  switch (tag) {
    case 'em':
    case 'i':
      return wrap('_');
    case 'strong':
    case 'b':
      return wrap('**');
    case 'code':
    case 'kbd':
    case 'samp':
    case 'tt':
      return inner.trim() ? `\`${collapse(textOf(n)).trim()}\`` : inner;
    default:
      return inner;
  }
}

function cleanLines(s: string): string {
  return s
    .split('\n')
    .map((l) => l.replace(/ {2,}/g, ' ').trim())
    .join('\n')
    .replace(/\n{2,}/g, '\n')
    .trim();
}

interface Ctx {
  listDepth: number;
}

/** Render a node as a list of Markdown blocks (blank-line separated by the caller). */
function blocks(n: Node, ctx: Ctx): string[] {
  const out: string[] = [];
  let buf = '';
  const flush = () => {
    const t = cleanLines(buf);
    if (t) out.push(t);
    buf = '';
  };
  for (const c of children(n)) {
    if (c.nodeName === '#text') {
      buf += collapse((c as P.TextNode).value);
      continue;
    }
    if (!isElement(c) || removed(c)) continue;
    const tag = c.tagName;
    if (!BLOCK.has(tag)) {
      // an inline element may still hold blocks (e.g. <a><div>…</div></a>, <span><p>…</p></span>)
      if (hasBlock(c)) {
        flush();
        out.push(...blocks(c, ctx));
      } else buf += inline(c);
      continue;
    }
    flush();
    out.push(...block(c, ctx));
  }
  flush();
  return out;
}

function hasBlock(n: Node): boolean {
  for (const c of children(n)) if (isElement(c) && !removed(c) && (BLOCK.has(c.tagName) || hasBlock(c))) return true;
  return false;
}

function block(e: Element, ctx: Ctx): string[] {
  const tag = e.tagName;
  const h = /^h([1-6])$/.exec(tag);
  if (h) {
    const t = collapse(blocks(e, ctx).join(' ')).trim();
    return t ? [`${'#'.repeat(Number(h[1]))} ${t}`] : [];
  }
  switch (tag) {
    case 'hr':
      return [];
    case 'pre': {
      const code = e.childNodes.find((c) => isElement(c) && c.tagName === 'code') as Element | undefined;
      const lang = /(?:^|\s)(?:language|lang)-([\w+-]+)/.exec(attr(code ?? e, 'class'))?.[1] ?? '';
      const body = textOf(e).replace(/^\n/, '').replace(/\s+$/, '');
      if (!body.trim()) return [];
      const fence = body.includes('```') ? '~~~' : '```';
      return [`${fence}${lang}\n${body}\n${fence}`];
    }
    case 'ul':
    case 'ol':
      return list(e, ctx);
    case 'blockquote': {
      const inner = blocks(e, ctx);
      return inner.length ? [inner.join('\n\n').split('\n').map((l) => (l ? `> ${l}` : '>')).join('\n')] : [];
    }
    case 'dl': {
      const lines: string[] = [];
      let term = '';
      for (const c of e.childNodes) {
        if (!isElement(c) || removed(c)) continue;
        const t = cellText(c);
        if (!t) continue;
        if (c.tagName === 'dt') {
          if (term) lines.push(`**${term}**`);
          term = t;
        } else if (c.tagName === 'dd') {
          lines.push(term ? `**${term}**: ${t}` : t);
          term = '';
        }
      }
      if (term) lines.push(`**${term}**`);
      return lines.length ? [lines.join('\n\n')] : [];
    }
    case 'table': {
      const t = tableToMarkdown(e);
      // a layout table of one column is just content
      return t ? [t] : blocks(e, ctx);
    }
    default:
      return blocks(e, ctx);
  }
}

function list(e: Element, ctx: Ctx): string[] {
  const ordered = e.tagName === 'ol';
  let i = Number(attr(e, 'start')) || 1;
  const indent = '  '.repeat(ctx.listDepth);
  const lines: string[] = [];
  for (const li of e.childNodes) {
    if (!isElement(li) || removed(li)) continue;
    if (li.tagName !== 'li') {
      // stray content inside a list (browsers keep it): an item of its own
      const bs = BLOCK.has(li.tagName) ? block(li, ctx) : [cleanLines(inline(li))];
      for (const b of bs) if (b) lines.push(`${indent}- ${b.replace(/\n/g, ' ')}`);
      continue;
    }
    const marker = ordered ? `${i++}. ` : '- ';
    const parts = blocks(li, { listDepth: ctx.listDepth + 1 });
    const nested = (s: string) => /^\s*(?:[-*]|\d+\.)\s/.test(s);
    const head = parts.filter((p) => !nested(p)).join(' ');
    const subs = parts.filter(nested);
    if (head || subs.length) lines.push(`${indent}${marker}${head.replace(/\n/g, ' ')}`.trimEnd());
    for (const s of subs) lines.push(s);
  }
  return lines.length ? [lines.join('\n')] : [];
}

/** A cell's text: its blocks kept apart ("Para one. Para two." / "item; item"), pipes escaped, on one line. */
function cellText(cell: Element): string {
  const parts = blocks(cell, { listDepth: 0 })
    .flatMap((b) => b.split('\n'))
    .map((b) => b.replace(/^\s*(?:[-*]|\d+\.)\s+/, '').replace(/^#+\s+/, '').replace(/^>\s?/, '').trim())
    .filter(Boolean);
  let s = '';
  for (const p of parts) s = !s ? p : /[.!?:;,]$/.test(s) ? `${s} ${p}` : `${s}; ${p}`;
  return s.replace(/\s+/g, ' ').trim().replace(/\|/g, '\\|');
}

function rowsOf(table: Element): Element[] {
  const out: Element[] = [];
  for (const c of table.childNodes) {
    if (!isElement(c) || removed(c)) continue;
    if (c.tagName === 'tr') out.push(c);
    else if (c.tagName === 'thead' || c.tagName === 'tbody' || c.tagName === 'tfoot') for (const r of c.childNodes) if (isElement(r) && r.tagName === 'tr' && !removed(r)) out.push(r);
  }
  return out;
}

/** Convert a parse5 table element to a GitHub-flavoured Markdown table ('' when it has no cells). */
export function tableToMarkdown(table: Element): string {
  const rows: string[][] = [];
  let headerRows = 0;
  for (const tr of rowsOf(table)) {
    const cells = tr.childNodes.filter((c): c is Element => isElement(c) && (c.tagName === 'td' || c.tagName === 'th') && !removed(c));
    if (!cells.length) continue;
    const row: string[] = [];
    for (const c of cells) {
      const span = Math.min(64, Number(attr(c, 'colspan') || '1') || 1);
      row.push(cellText(c));
      for (let i = 1; i < span; i++) row.push('');
    }
    if (rows.length === headerRows && cells.every((c) => c.tagName === 'th')) headerRows++;
    rows.push(row);
  }
  if (!rows.length) return '';
  let width = 0;
  for (const r of rows) width = Math.max(width, r.length);
  const pad = (r: string[]) => [...r, ...Array<string>(width - r.length).fill('')];
  const head = pad(headerRows ? (rows[0] as string[]) : Array<string>(width).fill(''));
  const body = (headerRows ? rows.slice(1) : rows).map(pad);
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
}

function find(n: Node, tag: string): Element | null {
  const queue: Node[] = [n];
  for (let i = 0; i < queue.length; i++) {
    const x = queue[i] as Node;
    if (isElement(x) && x.tagName === tag) return x;
    for (const c of children(x)) queue.push(c);
  }
  return null;
}

export function htmlToMarkdown(html: string): { title: string; markdown: string } {
  const doc = parse(html);
  const titleEl = find(doc, 'title');
  const body = find(doc, 'body') ?? doc;
  const markdown = blocks(body, { listDepth: 0 }).join('\n\n');
  const h1 = /^#\s+(.+)$/m.exec(markdown)?.[1];
  const title = titleEl ? collapse(titleEl.childNodes.map((c) => (c.nodeName === '#text' ? (c as P.TextNode).value : '')).join('')).trim() : '';
  return { title: title || (h1 ?? '').trim(), markdown };
}
