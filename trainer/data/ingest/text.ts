import { removeRepeatedPageLines } from './boilerplate.ts';

/**
 * Plain text → Markdown. Form feeds split pages (running headers/footers removed); setext underlines
 * (=== / ---) and short ALL-CAPS or numbered-caps lines become headings; "Key: value" lines stay as they are.
 */
export function textToMarkdown(text: string): { markdown: string; removed: string[] } {
  const pages = text.split('\f').map((p) => p.split('\n'));
  const { pages: cleaned, removed } = removeRepeatedPageLines(pages, 2);
  const lines = cleaned.flat();
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] ?? '';
    const next = lines[i + 1] ?? '';
    if (l.trim() && /^={3,}\s*$/.test(next)) {
      out.push(`# ${l.trim()}`);
      i++;
      continue;
    }
    if (l.trim() && /^-{3,}\s*$/.test(next)) {
      out.push(`## ${l.trim()}`);
      i++;
      continue;
    }
    const caps = /^(\d+(\.\d+)*\.?\s+)?([A-Z][A-Z0-9 &/,'()-]{2,60})$/.exec(l.trim());
    if (caps && /[A-Z]{3}/.test(l) && (!(lines[i - 1] ?? '').trim() || i === 0)) {
      const words = (caps[3] ?? '').toLowerCase().replace(/\b\w/g, (c) => c.toUpperCase());
      out.push(`## ${words}`);
      continue;
    }
    out.push(l);
  }
  return { markdown: out.join('\n'), removed };
}
