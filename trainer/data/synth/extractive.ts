/**
 * Offline extractive generator: grounded Q&A pairs straight from the chunk text, no teacher needed.
 *  - tables: error-code rows ("What does HL-5031 mean?"), and one fact per cell ("What is the Port of notifier?");
 *  - definitions: "**Term**: definition" lines;
 *  - runbook steps: ordered lists under a heading ("What are the steps to restart the billing-worker?"),
 *    plus the "Use this when …" trigger;
 *  - key-value facts: "Key: value" lines;
 *  - FAQ pairs: a line ending in "?" followed by its answer;
 *  - log incidents: the summary of an incident section.
 * Every pair carries the evidence span it was taken from; the span is a substring of the chunk.
 */
import type { Chunk, QAPair } from '../types.ts';

export interface Table {
  header: string[];
  rows: string[][];
  raw: string[];
}

export function parseTables(text: string): Table[] {
  const lines = text.split('\n');
  const tables: Table[] = [];
  for (let i = 0; i < lines.length - 1; i++) {
    if (!/^\s*\|/.test(lines[i] ?? '') || !/^\s*\|[\s:|-]+\|\s*$/.test(lines[i + 1] ?? '')) continue;
    const cells = (l: string) =>
      l
        .trim()
        .replace(/^\|/, '')
        .replace(/\|$/, '')
        .split(/(?<!\\)\|/)
        .map((c) => c.trim().replace(/\\\|/g, '|'));
    const header = cells(lines[i] ?? '');
    const rows: string[][] = [];
    const raw: string[] = [];
    let j = i + 2;
    while (j < lines.length && /^\s*\|/.test(lines[j] ?? '')) {
      rows.push(cells(lines[j] ?? ''));
      raw.push(lines[j] ?? '');
      j++;
    }
    tables.push({ header, rows, raw });
    i = j - 1;
  }
  return tables;
}

const CODE = /^[A-Z]{2,5}-\d{3,5}$/;

function lcFirst(s: string): string {
  return /^[A-Z][a-z]/.test(s) ? s[0]?.toLowerCase() + s.slice(1) : s;
}

export function extractPairs(chunk: Chunk): QAPair[] {
  const out: QAPair[] = [];
  const section = chunk.sectionPath[chunk.sectionPath.length - 1] ?? '';
  const add = (question: string, answer: string, evidence: string, kind: string) => {
    out.push({ question, answer, evidence, kind, chunkId: chunk.id, source: chunk.source, origin: 'extractive' });
  };
  const text = chunk.text;

  // tables
  for (const t of parseTables(text)) {
    const h = t.header.map((x) => x.trim());
    t.rows.forEach((r, ri) => {
      const key = r[0] ?? '';
      if (!key) return;
      const ev = t.raw[ri] ?? '';
      if (CODE.test(key)) {
        const get = (name: RegExp) => r[h.findIndex((x) => name.test(x))] ?? '';
        const meaning = get(/meaning|description/i);
        const fix = get(/resolution|fix|action/i);
        const svc = get(/service/i);
        if (meaning) {
          add(`What does error code ${key} mean?`, `${key}${svc ? ` (${svc})` : ''}: ${meaning}.${fix ? ` Resolution: ${fix}.` : ''}`, ev, 'error_code');
          if (fix) add(`How do I resolve ${key}?`, `${fix}.`, ev, 'error_code');
          return;
        }
      }
      for (let c = 1; c < r.length; c++) {
        const col = h[c] ?? '';
        const v = r[c] ?? '';
        if (!col || !v || v.toLowerCase() === 'none') continue;
        add(`What is the ${lcFirst(col)} of ${key}${section && !key.includes(section) ? ` (${section})` : ''}?`, `The ${lcFirst(col)} of ${key} is ${v}.`, ev, 'table_fact');
      }
    });
  }

  // definitions: **Term**: definition  /  - **term**: definition
  for (const m of text.matchAll(/^(?:[-*]\s+)?\*\*([^*]{2,60})\*\*\s*[:\u2014-]\s*(.{8,400})$/gm)) {
    const term = (m[1] ?? '').trim();
    const def = (m[2] ?? '').trim();
    add(`What does "${term}" mean${section ? ` in the context of ${section}` : ''}?`, `${term}: ${def}`, m[0], 'definition');
  }

  // runbook steps: an ordered list of ≥ 3 items
  const steps = [...text.matchAll(/^\d+[.)]\s+(.+)$/gm)];
  if (steps.length >= 3 && section) {
    const body = steps.map((s, i) => `${i + 1}. ${s[1]}`).join('\n');
    const ev = steps[0]?.[0] ?? '';
    add(`What are the steps to ${lcFirst(section)}?`, body, ev, 'runbook_steps');
    const first = steps[0]?.[1] ?? '';
    add(`What is the first step of "${section}"?`, first, ev, 'runbook_steps');
  }
  const when = /^Use this when (.+?)\.?$/m.exec(text);
  if (when && section) add(`When should the runbook "${section}" be used?`, `Use it when ${when[1]}.`, when[0], 'runbook_trigger');

  // FAQ: question line followed by its answer line
  for (const m of text.matchAll(/^([A-Z][^\n?]{8,200}\?)\n(?!\s*\n)([^\n]{3,400})$/gm)) {
    add((m[1] ?? '').trim(), (m[2] ?? '').trim(), m[0], 'faq');
  }

  // key: value facts (not definitions, not table rows, not log lines)
  for (const m of text.matchAll(/^(?:[-*]\s+)?([A-Z][A-Za-z /()-]{2,40}):\s+([^\n]{1,160})$/gm)) {
    const key = (m[1] ?? '').trim();
    const val = (m[2] ?? '').trim().replace(/\.$/, '');
    if (/^(Use this when|Note|Warning)/i.test(key) || /\*\*/.test(m[0])) continue;
    if (/^(Window|Highest level|Services|Error codes|First error|First warning)$/.test(key)) continue; // log summaries, handled below
    add(`${section ? `${section}: w` : 'W'}hat is the ${lcFirst(key)}?`, `The ${lcFirst(key)} is ${val}.`, m[0], 'key_value');
  }

  // log incident summaries
  if (/^Incident \d+/.test(section)) {
    const win = /^- Window: (.+)$/m.exec(text);
    const lvl = /^- Highest level: (.+)$/m.exec(text);
    const codes = /^- Error codes: (.+)$/m.exec(text);
    const firstErr = /^- First (?:error|warning): (.+)$/m.exec(text);
    const log = (chunk.sectionPath[0] ?? '').replace(/^Log:\s*/, '');
    if (win) {
      const ans = [`Window: ${win[1]}.`, lvl ? `Highest level: ${lvl[1]}.` : '', codes ? `Error codes: ${codes[1]}.` : '', firstErr ? `First problem: ${firstErr[1]}` : '']
        .filter(Boolean)
        .join(' ');
      add(`Summarise ${lcFirst(section.replace(/:.*/, ''))} in ${log}.`, ans, win[0], 'log_incident');
    }
  }
  // de-duplicate questions within the chunk
  const seen = new Set<string>();
  return out.filter((p) => (seen.has(p.question) ? false : (seen.add(p.question), true)));
}
