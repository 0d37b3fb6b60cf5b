/**
 * PDF → Markdown through pdfjs-dist (legacy build for Node).
 * Text items are grouped into lines by baseline, pages laid out in two columns are read left column then right,
 * headings are lines set noticeably larger than the body size (levels by size rank), running headers/footers
 * repeated on most pages are removed, bullets become Markdown list items.
 */
import { removeRepeatedPageLines } from './boilerplate.ts';

interface Item {
  str: string;
  x: number;
  y: number;
  w: number;
  size: number;
}
interface Line {
  items: Item[];
  text: string;
  x: number;
  y: number;
  size: number;
}

function groupLines(items: Item[]): Line[] {
  const sorted = items.filter((i) => i.str.trim()).sort((a, b) => b.y - a.y || a.x - b.x);
  const lines: { items: Item[]; y: number; size: number }[] = [];
  for (const it of sorted) {
    const l = lines.find((ln) => Math.abs(ln.y - it.y) <= Math.max(2, ln.size * 0.4));
    if (l) l.items.push(it);
    else lines.push({ items: [it], y: it.y, size: it.size });
  }
  return lines.map((l) => {
    const its = l.items.sort((a, b) => a.x - b.x);
    let text = '';
    let end = -Infinity;
    for (const it of its) {
      if (text && it.x - end > it.size * 0.15 && !text.endsWith(' ') && !it.str.startsWith(' ')) text += ' ';
      text += it.str;
      end = it.x + it.w;
    }
    return { items: its, text: text.replace(/\s+/g, ' ').trim(), x: its[0]?.x ?? 0, y: l.y, size: Math.max(...its.map((i) => i.size)) };
  });
}

/** Reading order: a page whose lines sit either wholly left or wholly right of the middle is two columns. */
function orderPage(items: Item[], pageWidth: number): Line[] {
  const mid = pageWidth / 2;
  const left = items.filter((i) => i.x + i.w < mid - 2);
  const right = items.filter((i) => i.x > mid + 2);
  const span = items.filter((i) => !(i.x + i.w < mid - 2) && !(i.x > mid + 2));
  if (left.length >= 4 && right.length >= 4) {
    const colTop = Math.max(...left.map((i) => i.y), ...right.map((i) => i.y));
    const colBottom = Math.min(...left.map((i) => i.y), ...right.map((i) => i.y));
    // spanning text inside the column band means it is not a column layout
    const inBand = span.filter((i) => i.y <= colTop && i.y >= colBottom);
    if (inBand.length === 0) {
      const above = span.filter((i) => i.y > colTop);
      const below = span.filter((i) => i.y < colBottom);
      return [...groupLines(above), ...groupLines(left), ...groupLines(right), ...groupLines(below)];
    }
  }
  return groupLines(items);
}

export async function pdfToMarkdown(data: Uint8Array): Promise<{ title: string; markdown: string; meta: Record<string, unknown> }> {
  const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
  const doc = await pdfjs.getDocument({ data, useSystemFonts: false, disableFontFace: true, verbosity: 0 }).promise;
  const pageItems: { items: Item[]; width: number }[] = [];
  for (let p = 1; p <= doc.numPages; p++) {
    const page = await doc.getPage(p);
    const vp = page.getViewport({ scale: 1 });
    const tc = await page.getTextContent();
    const items: Item[] = [];
    for (const raw of tc.items) {
      if (!('str' in raw)) continue;
      const t = raw.transform as number[];
      items.push({ str: raw.str, x: t[4] ?? 0, y: t[5] ?? 0, w: raw.width, size: Math.hypot(t[2] ?? 0, t[3] ?? 0) || (raw.height ?? 10) });
    }
    pageItems.push({ items, width: vp.width });
  }
  let title = '';
  try {
    const md = await doc.getMetadata();
    const info = md.info as Record<string, unknown> | undefined;
    if (typeof info?.Title === 'string') title = info.Title;
  } catch {
    /* no metadata */
  }
  await doc.destroy();

  // drop running headers/footers: judged on plain top-to-bottom lines, before any column re-ordering
  const yLines = pageItems.map((p) => groupLines(p.items));
  const { pages: cleaned, removed } = removeRepeatedPageLines(yLines.map((p) => p.map((l) => l.text)), 2);
  const kept: Line[][] = pageItems.map((p, i) => {
    const keep = new Set(cleaned[i]);
    const dropped = new Set((yLines[i] ?? []).filter((l) => !keep.has(l.text)).flatMap((l) => l.items));
    return orderPage(p.items.filter((it) => !dropped.has(it)), p.width);
  });

  // body size = size carrying most characters
  const bySize = new Map<number, number>();
  for (const l of kept.flat()) bySize.set(Math.round(l.size), (bySize.get(Math.round(l.size)) ?? 0) + l.text.length);
  const body = [...bySize].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 10;
  const headingSizes = [...new Set(kept.flat().map((l) => Math.round(l.size)).filter((s) => s >= body * 1.15))].sort((a, b) => b - a);

  const out: string[] = [];
  for (const p of kept) {
    let prev: Line | null = null;
    for (const l of p) {
      const s = Math.round(l.size);
      const hl = headingSizes.indexOf(s);
      if (hl >= 0 && l.text.length < 120) {
        out.push('', `${'#'.repeat(Math.min(hl + 1, 6))} ${l.text}`, '');
        prev = null;
        continue;
      }
      const bullet = /^[•◦▪\u2022\-*]\s*/.exec(l.text);
      const numbered = /^\d+[.)]\s+/.test(l.text);
      if (bullet) out.push(`- ${l.text.slice(bullet[0].length)}`);
      else if (numbered) out.push(l.text);
      else if (prev && prev.y - l.y <= l.size * 1.6 && out.length && out[out.length - 1] !== '') {
        out[out.length - 1] += ` ${l.text}`; // same paragraph
      } else {
        if (out.length && out[out.length - 1] !== '' && !/^(- |\d+[.)] )/.test(out[out.length - 1] ?? '')) out.push('');
        else if (out.length && /^(- |\d+[.)] )/.test(out[out.length - 1] ?? '')) out.push('');
        out.push(l.text);
      }
      prev = l;
    }
    out.push('');
  }
  const markdown = out.join('\n').replace(/-\n(?=[a-z])/g, '').replace(/\n{3,}/g, '\n\n').trim() + '\n';
  if (!title) title = /^#\s+(.+)$/m.exec(markdown)?.[1] ?? '';
  return { title, markdown, meta: { pages: pageItems.length, removedBoilerplate: removed } };
}
