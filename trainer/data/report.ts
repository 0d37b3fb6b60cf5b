/** The per-run data report: counts at every stage, duplicates removed, label balance, rejected rows and why. */
import type { DpoMix, FormatResult, LeakageReport } from './format.ts';
import type { Rejection } from './types.ts';

export interface Stats {
  startedAt?: string;
  input?: string;
  ingest?: { files: number; docs: number; byFormat: Record<string, number>; skipped: { source: string; reason: string }[]; boilerplateRemoved: Record<string, number> };
  chunk?: { tokenizer: string; targetTokens: number; overlapTokens: number; chunks: number; minTokens: number; meanTokens: number; maxTokens: number; overBudget: number };
  dedupe?: { before: number; after: number; exact: number; near: number; keep?: string; params: Record<string, number>; examples: { removed: string; of: string; jaccard?: number }[] };
  synth?: { mode: string; chunks: number; pairs: number; byKind: Record<string, number>; teacher?: Record<string, number | string> };
  format?: {
    sets: { name: string; train: number; val: number; kinds: Record<string, number>; templates?: Record<string, number>; labels?: Record<string, number>; failures?: Record<string, number> }[];
    duplicatesRemoved: { task: string; exact: number; near: number }[];
    leakage: LeakageReport[];
    dpoMix?: DpoMix;
    policy?: FormatResult['policy'];
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
    out.push('## Rows per set and per template', '');
    out.push(
      table(
        ['Set', 'Train', 'Val', 'Templates', 'Largest templates (rows)'],
        s.format.sets.map((t) => {
          const tp = Object.entries(t.templates ?? {}).sort((a, b) => b[1] - a[1]);
          return [t.name, t.train, t.val, tp.length, tp.slice(0, 4).map(([k, v]) => `${k} ${v}`).join(', ')];
        }),
      ),
      '',
    );
    const p = s.format.policy;
    if (p) {
      const routed = Object.entries(p.pairsRoutedToTools).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
      const ins = Object.entries(p.instructionRows).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
      out.push(`Q&A pairs a tool answers, emitted as tool calls (and kept out of chat): ${routed}. Refusal questions (the documents do not say): ${p.refusals}. Instruction-style rows: ${ins}.`, '');
    }
    const dpo = s.format.sets.find((x) => x.failures);
    if (dpo) {
      out.push('## Preference pairs: what the rejected answers get wrong', '');
      const mix = s.format.dpoMix;
      const total = Object.values(dpo.failures ?? {}).reduce((a, b) => a + b, 0);
      out.push(table(['Failure', 'Pairs', 'Share'], Object.entries(dpo.failures ?? {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v, `${((100 * v) / Math.max(1, total)).toFixed(1)} %`])), '');
      if (mix) {
        out.push(table(['Category', 'Pairs'], Object.entries(mix.byCategory).sort((a, b) => b[1] - a[1])), '');
        out.push(`Tool-call / JSON pairs: ${mix.toolJsonPairs}, of which ${mix.toolJsonSchemaFailures} (${((100 * mix.toolJsonSchemaFailures) / Math.max(1, mix.toolJsonPairs)).toFixed(1)} %) have a rejected side that fails validation (schema, JSON or entity-list parse); the rest call the wrong tool.`, '');
      }
    }
    out.push(
      '## Train/validation leakage audit',
      '',
      'Rows carry their template id (free text: its source chunk); rows sharing it, or near-duplicates (Jaccard ≥ 0.8) once entity values and numbers are masked, form one cluster and whole clusters go to one side. The audit then looks every validation row up among the training rows, on plain text and masked; a masked hit moves its cluster to train.',
      '',
    );
    out.push(
      table(
        ['Set', 'Train', 'Val', 'Val rows sharing a template with train', 'Near-dup of train (plain)', 'Near-dup of train (masked)', 'Moved to train'],
        s.format.leakage.map((l) => [l.task, l.train ?? '', l.val ?? '', l.sharedTemplates ?? '', l.unmaskedHits ?? '', l.maskedHits ?? (l as { auditViolations?: number }).auditViolations ?? '', l.movedToTrain]),
      ),
      '',
    );
    const ex = s.format.leakage.flatMap((l) => (l.examples ?? []).map((e) => [l.task, e.val, e.train, e.jaccard.toFixed(2)]));
    if (ex.length) out.push('Masked hits found (moved to train):', '', table(['Set', 'Validation row', 'Closest training row', 'Jaccard (masked)'], ex.slice(0, 10)), '');
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
