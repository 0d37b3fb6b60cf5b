/** The per-run data report: counts at every stage, duplicates removed, label balance, rejected rows and why. */
import type { Rejection } from './types.ts';

export interface Stats {
  startedAt?: string;
  input?: string;
  ingest?: { files: number; docs: number; byFormat: Record<string, number>; skipped: { source: string; reason: string }[]; boilerplateRemoved: Record<string, number> };
  chunk?: { tokenizer: string; targetTokens: number; overlapTokens: number; chunks: number; minTokens: number; meanTokens: number; maxTokens: number; overBudget: number };
  dedupe?: { before: number; after: number; exact: number; near: number; keep?: string; params: Record<string, number>; examples: { removed: string; of: string; jaccard?: number }[] };
  synth?: { mode: string; chunks: number; pairs: number; byKind: Record<string, number>; teacher?: Record<string, number | string> };
  format?: {
    sets: { name: string; train: number; val: number; kinds: Record<string, number>; labels?: Record<string, number>; failures?: Record<string, number> }[];
    duplicatesRemoved: { task: string; exact: number; near: number }[];
    leakage: { task: string; movedToTrain: number; auditViolations: number }[];
  };
  rejected?: Rejection[];
}

function table(head: string[], rows: (string | number)[][]): string {
  const esc = (x: string | number) => String(x).replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

export function renderReport(s: Stats): string {
  const out: string[] = [`# Data report`, '', `- Started: ${s.startedAt ?? '?'}`, `- Input: ${s.input ?? '?'}`, ''];
  out.push('## Stage counts', '');
  const rows: (string | number)[][] = [];
  if (s.ingest) rows.push(['ingest', `${s.ingest.files} files`, `${s.ingest.docs} documents`, `${Object.entries(s.ingest.byFormat).map(([k, v]) => `${k} ${v}`).join(', ')}; ${s.ingest.skipped.length} skipped`]);
  if (s.chunk) rows.push(['chunk', `${s.ingest?.docs ?? '?'} documents`, `${s.chunk.chunks} chunks`, `tokens min/mean/max ${s.chunk.minTokens}/${s.chunk.meanTokens}/${s.chunk.maxTokens} (target ${s.chunk.targetTokens}, overlap ${s.chunk.overlapTokens}, over budget ${s.chunk.overBudget}; tokenizer ${s.chunk.tokenizer})`]);
  if (s.dedupe) rows.push(['dedupe', `${s.dedupe.before} chunks`, `${s.dedupe.after} chunks`, `${s.dedupe.exact} exact + ${s.dedupe.near} near duplicates removed`]);
  if (s.synth) rows.push(['synth', `${s.synth.chunks} chunks`, `${s.synth.pairs} Q&A pairs`, `${s.synth.mode}${s.synth.teacher ? `; ${Object.entries(s.synth.teacher).map(([k, v]) => `${k} ${v}`).join(', ')}` : ''}`]);
  if (s.format) for (const t of s.format.sets) rows.push([`format: ${t.name}`, '', `${t.train} train / ${t.val} val`, Object.entries(t.kinds).map(([k, v]) => `${k} ${v}`).join(', ')]);
  out.push(table(['Stage', 'In', 'Out', 'Notes'], rows), '');

  out.push('## Duplicates removed', '');
  if (s.dedupe) {
    out.push(`Chunks: ${s.dedupe.exact} exact (normalised SHA-256), ${s.dedupe.near} near (MinHash-LSH, ${Object.entries(s.dedupe.params).map(([k, v]) => `${k}=${v}`).join(', ')}); copy kept: ${s.dedupe.keep ?? 'first'}.`, '');
    if (s.dedupe.examples.length) out.push(table(['Removed chunk', 'Duplicate of', 'Jaccard'], s.dedupe.examples.slice(0, 10).map((e) => [e.removed, e.of, e.jaccard === undefined ? 'exact' : e.jaccard.toFixed(3)])), '');
  }
  if (s.format) out.push(table(['Set', 'Exact', 'Near'], s.format.duplicatesRemoved.map((d) => [d.task, d.exact, d.near])), '');

  if (s.format) {
    out.push('## Label balance', '');
    for (const t of s.format.sets.filter((x) => x.labels)) {
      const total = Object.values(t.labels ?? {}).reduce((a, b) => a + b, 0);
      out.push(`### ${t.name}`, '', table(['Label', 'Rows', 'Share'], Object.entries(t.labels ?? {}).sort().map(([k, v]) => [k, v, `${((100 * v) / Math.max(1, total)).toFixed(1)} %`])), '');
    }
    const dpo = s.format.sets.find((x) => x.failures);
    if (dpo) out.push('## Preference pairs: failure kinds of the rejected answers', '', table(['Failure', 'Pairs'], Object.entries(dpo.failures ?? {}).sort()), '');
    out.push('## Train/validation leakage audit', '', 'Rows are clustered by source chunk and by near-duplicate content (Jaccard ≥ 0.8) before the split; the audit then looks every validation row up in a MinHash-LSH index of the training rows.', '');
    out.push(table(['Set', 'Validation rows found near-duplicate of training', 'Moved to train'], s.format.leakage.map((l) => [l.task, l.auditViolations, l.movedToTrain])), '');
  }

  out.push('## Rejected rows', '');
  const rej = s.rejected ?? [];
  if (s.ingest?.skipped.length) out.push(table(['Skipped file', 'Why'], s.ingest.skipped.map((x) => [x.source, x.reason])), '');
  if (!rej.length) out.push('None.', '');
  else {
    const groups = new Map<string, Rejection[]>();
    for (const r of rej) {
      const k = `${r.stage}\u0000${r.reason}`;
      groups.set(k, [...(groups.get(k) ?? []), r]);
    }
    out.push(
      table(
        ['Stage', 'Reason', 'Count', 'Examples'],
        [...groups].map(([k, rs]) => {
          const [stage, reason] = k.split('\u0000');
          return [stage ?? '', reason ?? '', rs.length, rs.slice(0, 3).map((r) => (r.detail ?? '').slice(0, 140)).join(' / ')];
        }),
      ),
      '',
    );
  }
  if (s.ingest && Object.keys(s.ingest.boilerplateRemoved).length) {
    out.push('## Boilerplate removed across documents', '', table(['Line', 'Documents'], Object.entries(s.ingest.boilerplateRemoved).map(([k, v]) => [k, v])), '');
  }
  return out.join('\n');
}
