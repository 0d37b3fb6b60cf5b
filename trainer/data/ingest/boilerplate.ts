/**
 * Boilerplate removal.
 * - Page furniture: lines in the first/last `edge` lines of a page that recur (page numbers masked, so
 *   "Page 3 of 9" matches "Page 4 of 9") on at least half of the pages are running headers/footers.
 * - Cross-document furniture: short non-structural lines at the top or bottom of documents that recur
 *   in several documents (copyright lines, "Back to top", nav strips) are removed the same way.
 */
const PAGE_NO = /^(?:.*\bpage\s*\d+(?:\s*(?:of|\/)\s*\d+)?.*|[-\u2013\s]*\d+[-\u2013\s]*|\d+\s*(?:of|\/)\s*\d+)$/i;

/** Key under which a line counts as "the same" across pages: exact text, except that page numbers are masked. */
export function lineKey(line: string): string {
  const t = line.trim().toLowerCase().replace(/\s+/g, ' ');
  return PAGE_NO.test(t) ? t.replace(/\d+/g, '#') : t;
}

export function removeRepeatedPageLines(pages: string[][], edge = 3): { pages: string[][]; removed: string[] } {
  if (pages.length < 2) return { pages, removed: [] };
  const counts = new Map<string, number>();
  for (const p of pages) {
    const seen = new Set<string>();
    const nonEmpty = p.map((l, i) => [l, i] as const).filter(([l]) => l.trim());
    const edges = [...nonEmpty.slice(0, edge), ...nonEmpty.slice(-edge)];
    for (const [l] of edges) seen.add(lineKey(l));
    for (const k of seen) counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const need = Math.max(2, Math.ceil(pages.length / 2));
  const bad = new Set([...counts].filter(([k, n]) => k && n >= need).map(([k]) => k));
  const removed = new Set<string>();
  const out = pages.map((p) => {
    const nonEmptyIdx = p.map((l, i) => (l.trim() ? i : -1)).filter((i) => i >= 0);
    const edgeIdx = new Set([...nonEmptyIdx.slice(0, edge), ...nonEmptyIdx.slice(-edge)]);
    return p.filter((l, i) => {
      if (edgeIdx.has(i) && bad.has(lineKey(l))) {
        removed.add(l.trim());
        return false;
      }
      return true;
    });
  });
  return { pages: out, removed: [...removed] };
}

const STRUCTURAL = /^\s*(#|\||[-*+] |\d+[.)] |```|>)/;

export function removeCrossDocBoilerplate(
  docs: { markdown: string }[],
  opts: { edge?: number; minDocs?: number } = {},
): { removed: Map<string, number> } {
  const edge = opts.edge ?? 5;
  const minDocs = opts.minDocs ?? 3;
  const removed = new Map<string, number>();
  if (docs.length < minDocs) return { removed };
  const counts = new Map<string, number>();
  const edgeLines = (md: string) => {
    const lines = md.split('\n');
    const idx = lines.map((l, i) => (l.trim() ? i : -1)).filter((i) => i >= 0);
    return { lines, edge: new Set([...idx.slice(0, edge), ...idx.slice(-edge)]) };
  };
  for (const d of docs) {
    const { lines, edge: e } = edgeLines(d.markdown);
    const seen = new Set<string>();
    for (const i of e) {
      const l = lines[i] ?? '';
      if (!STRUCTURAL.test(l)) seen.add(lineKey(l));
    }
    for (const k of seen) counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const bad = new Set([...counts].filter(([k, n]) => k && n >= minDocs).map(([k]) => k));
  if (!bad.size) return { removed };
  for (const d of docs) {
    const { lines, edge: e } = edgeLines(d.markdown);
    d.markdown = lines
      .filter((l, i) => {
        if (e.has(i) && bad.has(lineKey(l))) {
          removed.set(l.trim(), (removed.get(l.trim()) ?? 0) + 1);
          return false;
        }
        return true;
      })
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trim() + '\n';
  }
  return { removed };
}
