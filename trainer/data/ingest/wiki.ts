/**
 * Wiki-style exports: MediaWiki XML dumps (<mediawiki><page><title/><revision><text/>) and bare wikitext files.
 * Wikitext → Markdown: headings, bold/italic, internal and external links, lists, tables ({| |- ! | |}),
 * templates (navboxes, infobox chrome), refs, magic words and categories removed (categories kept as metadata).
 */
export interface WikiPage {
  title: string;
  text: string;
}

function unescapeXml(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&amp;/g, '&');
}

export function parseMediaWikiXml(xml: string): WikiPage[] {
  const pages: WikiPage[] = [];
  for (const m of xml.matchAll(/<page>([\s\S]*?)<\/page>/g)) {
    const body = m[1] ?? '';
    const title = unescapeXml(/<title>([\s\S]*?)<\/title>/.exec(body)?.[1] ?? '').trim();
    const ns = /<ns>(\d+)<\/ns>/.exec(body)?.[1];
    if (ns && ns !== '0') continue; // talk/user/template pages are not content
    // last revision wins
    const texts = [...body.matchAll(/<text[^>]*>([\s\S]*?)<\/text>/g)];
    const text = unescapeXml(texts[texts.length - 1]?.[1] ?? '');
    if (/^#REDIRECT/i.test(text.trim())) continue;
    pages.push({ title, text });
  }
  return pages;
}

function inline(s: string): string {
  return s
    .replace(/<ref[^>]*\/>/g, '')
    .replace(/<ref[^>]*>[\s\S]*?<\/ref>/g, '')
    .replace(/'''''(.+?)'''''/g, '***$1***')
    .replace(/'''(.+?)'''/g, '**$1**')
    .replace(/''(.+?)''/g, '*$1*')
    .replace(/\[\[(?:[^\]|]*\|)?([^\]]+)\]\]/g, '$1')
    .replace(/\[(https?:\/\/\S+)\s+([^\]]+)\]/g, '[$2]($1)')
    .replace(/<code>([\s\S]*?)<\/code>/g, '`$1`')
    .replace(/<br\s*\/?>/g, ' ');
}

function stripTemplates(s: string): string {
  let prev = '';
  let t = s;
  // innermost-first, bounded
  for (let i = 0; i < 20 && t !== prev; i++) {
    prev = t;
    t = t.replace(/\{\{[^{}]*\}\}/g, '');
  }
  return t;
}

function tableToMd(lines: string[]): string {
  const rows: string[][] = [];
  let cur: string[] | null = null;
  let headerRow = -1;
  for (const raw of lines) {
    const l = raw.trim();
    if (l.startsWith('{|') || l.startsWith('|}') || l.startsWith('|+')) continue;
    if (l.startsWith('|-')) {
      cur = null;
      continue;
    }
    if (!cur) {
      cur = [];
      rows.push(cur);
    }
    const isHeader = l.startsWith('!');
    const cells = l.slice(1).split(isHeader ? /!!|\|\|/ : /\|\|/);
    for (let c of cells) {
      // drop cell attributes: style="..." | content
      const attr = /^[^|[]*=[^|]*\|(?!\|)/.exec(c);
      if (attr) c = c.slice(attr[0].length);
      cur.push(inline(c.trim()).replace(/\|/g, '\\|'));
    }
    if (isHeader && headerRow < 0) headerRow = rows.length - 1;
  }
  const clean = rows.filter((r) => r.length);
  if (!clean.length) return '';
  const width = Math.max(...clean.map((r) => r.length));
  const pad = (r: string[]) => [...r, ...Array(width - r.length).fill('')];
  const head = headerRow === 0 ? pad(clean[0] as string[]) : Array(width).fill('');
  const body = (headerRow === 0 ? clean.slice(1) : clean).map(pad);
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
}

export function wikitextToMarkdown(text: string): { markdown: string; categories: string[] } {
  const categories: string[] = [];
  let t = text.replace(/\[\[Category:([^\]|]+)(?:\|[^\]]*)?\]\]/gi, (_, c: string) => {
    categories.push(c.trim());
    return '';
  });
  t = stripTemplates(t).replace(/__[A-Z]+__/g, '').replace(/<!--[\s\S]*?-->/g, '');
  const out: string[] = [];
  const lines = t.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.trim().startsWith('{|')) {
      const tbl: string[] = [];
      while (i < lines.length) {
        const l = lines[i] ?? '';
        tbl.push(l);
        if (l.trim().startsWith('|}')) break;
        i++;
      }
      out.push('', tableToMd(tbl), '');
      continue;
    }
    const h = /^(={1,6})\s*(.+?)\s*\1\s*$/.exec(line);
    if (h) {
      out.push('', `${'#'.repeat((h[1] ?? '=').length)} ${inline(h[2] ?? '')}`, '');
      continue;
    }
    const li = /^([*#:;]+)\s*(.*)$/.exec(line);
    if (li) {
      const marks = li[1] ?? '*';
      const depth = marks.length - 1;
      const ordered = marks.endsWith('#');
      out.push(`${'  '.repeat(depth)}${ordered ? '1.' : '-'} ${inline(li[2] ?? '')}`);
      continue;
    }
    out.push(inline(line));
  }
  return { markdown: out.join('\n').replace(/\n{3,}/g, '\n\n').trim() + '\n', categories };
}
