/**
 * Offline extractive generator: grounded Q&A pairs straight from the chunk text, no teacher needed.
 *  - tables: error-code rows ("What does error code HL-5031 mean?"), and one fact per cell, phrased by its column
 *    ("Which port does the notifier service listen on?", "What does the scheduler service depend on?");
 *  - definitions: "**Term**: definition" lines;
 *  - runbook steps: ordered lists under a heading ("What are the steps to restart the billing-worker?"),
 *    plus the "Use this when …" trigger;
 *  - key-value facts: "Key: value" lines;
 *  - FAQ pairs: a line ending in "?" followed by its answer;
 *  - prose facts: sentences of a few shapes (deadlines, schedules, objectives, escalation, obligations) — the
 *    sentence itself is the answer;
 *  - log incidents: asked by service, day, time window and error code ("What went wrong with api-gateway on
 *    2026-03-14 between 02:11 and 02:11 UTC?"), never by the log file's incident number.
 * Every pair records its question template (the split groups by it) and, when known, its subject.
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
function ucFirst(s: string): string {
  return s ? (s[0] as string).toUpperCase() + s.slice(1) : s;
}
function singular(s: string): string {
  return s.replace(/ies$/, 'y').replace(/([^s])s$/, '$1');
}
function article(s: string): string {
  return /^[aeiou]/i.test(s) ? `an ${s}` : `a ${s}`;
}
const strip = (s: string) => s.replace(/[.;:,\s]+$/, '');

/** How a table's key is named in a question: bare for names/ids/codes, else "the <key> <column noun>" ("the scheduler service"). */
export function tableSubject(keyColumn: string, key: string): string {
  const col = keyColumn.trim().toLowerCase();
  if (!col || /^(name|username|user|id|code|key|term)$/.test(col) || key.toLowerCase().includes(singular(col))) return key;
  return `the ${key} ${singular(col)}`;
}

/**
 * A grammatical question and answer for one table cell, phrased by its column (never "What is the depends on of …").
 * Returns the template id too ("table:<key column>:<column>"), which the split groups by.
 */
/** Per-column phrasing from the domain spec: column name (any case) → question/answer with {SUBJECT} {KEY} {VALUE}. */
export type TablePhrasing = Record<string, { question: string; answer: string }>;

export function tableQuestion(keyColumn: string, column: string, key: string, value: string, phrasing: TablePhrasing = {}): { question: string; answer: string; template: string } {
  const subj = tableSubject(keyColumn, key);
  const Subj = subj.startsWith('the ') ? ucFirst(subj) : subj;
  const h = column.trim().toLowerCase();
  const v = value.trim();
  const template = `table:${keyColumn.trim().toLowerCase()}:${h}`;
  const qa = (question: string, answer: string) => ({ question, answer, template });
  const own = Object.entries(phrasing).find(([c]) => c.trim().toLowerCase() === h)?.[1];
  if (own) {
    const f = (t: string, cap: boolean) => t.replace(/\{SUBJECT\}/g, cap && t.startsWith('{SUBJECT}') ? Subj : subj).replace(/\{KEY\}/g, key).replace(/\{VALUE\}/g, v);
    return qa(f(own.question, true), f(own.answer, true));
  }
  if (/^(owner|owner team|owning team|owned by)$/.test(h)) return qa(`Which team owns ${subj}?`, `${Subj} is owned by the ${v} team.`);
  if (/^team$/.test(h)) return qa(`Which team is ${subj} on?`, `${Subj} is on the ${v} team.`);
  if (/^port$/.test(h)) return qa(`Which port does ${subj} listen on?`, `${Subj} listens on port ${v}.`);
  if (/^tier$/.test(h)) return qa(`What tier is ${subj}?`, `${Subj} is tier ${v}.`);
  if (/^severity$/.test(h)) return qa(`What is the severity of ${subj}?`, `${Subj} has severity ${v}.`);
  if (/^role$/.test(h)) return qa(`What role does ${subj} have?`, `${Subj} is ${article(v)}.`);
  if (/^(full )?name$/.test(h)) return qa(`What is the full name of ${subj}?`, `${Subj} is ${v}.`);
  if (/^time ?zone$/.test(h)) return qa(`What time zone is ${subj} in?`, `${Subj} is in the ${v} time zone.`);
  if (/^(condition|trigger|fires when)$/.test(h)) return qa(`What triggers ${subj}?`, `${Subj} fires when: ${v}.`);
  if (/^(runbook|playbook)$/.test(h)) return qa(`Which runbook covers ${subj}?`, `The runbook for ${subj} is "${v}".`);
  if (/^(service|component|system)$/.test(h)) return qa(`Which ${h} is ${subj} about?`, `${Subj} is about the ${v} ${h}.`);
  // verb-phrase headers: "Depends on", "Runs on", "Reports to", "Owned by"
  const verb = /^(\w+?)(s|es)? (on|to|by|in|with|for|from|into|onto|at)$/.exec(h);
  if (verb && !/ed$/.test(verb[1] as string)) {
    const base = verb[1] as string;
    return qa(`What does ${subj} ${base} ${verb[3]}?`, `${Subj} ${h} ${v}.`);
  }
  const passive = /^(\w+ed) (by|in|at|on)$/.exec(h);
  if (passive) return qa(`What is ${subj} ${h}?`, `${Subj} is ${h} ${v}.`);
  return qa(`What is the ${h} of ${subj}?`, `The ${h} of ${subj} is ${v}.`);
}

/** Prose sentences of a chunk (not tables, code, list items or key: value lines), with their exact text. */
function proseSentences(text: string): string[] {
  const out: string[] = [];
  let inFence = false;
  for (const line of text.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
    // not tables, headings, code, list items (steps are imperatives, bullets are key: value facts) or key: value lines
    if (inFence || /^\s*(\||#|```|~~~|[-*]\s|\d+[.)]\s)/.test(line) || !line.trim()) continue;
    const l = line;
    if (/^[^\s:]{1,40}(?: [^\s:]+){0,5}:\s/.test(l)) continue;
    for (const s of l.split(/(?<=[.!?])\s+(?=[A-Z])/)) if (s.length >= 20 && /[.!]$/.test(s)) out.push(s.trim());
  }
  return out;
}

const DET = /^(?:the|a|an|each|every|all|any)\s+/i;
const subjOf = (s: string) => s.trim().replace(/^(The|A|An|Each|Every|All|Any)\b/, (d) => d.toLowerCase()).replace(/^[A-Z][a-z]/, (x) => x.toLowerCase());

/**
 * Prose facts: a few sentence shapes that carry the rules a user asks about (deadlines, schedules, objectives,
 * escalation, obligations). The answer is the sentence itself, so it is traceable to the chunk word for word.
 */
export function proseQuestion(sentence: string): { question: string; template: string } | null {
  const s = sentence.replace(/\s+/g, ' ').trim();
  if (/[`"]/.test(s)) return null; // commands and quotations do not make clean questions
  let m = /^(.+?) (is|are) due (within|by|before|after) (.+)\.$/.exec(s);
  if (m) return { question: `When ${m[2]} ${subjOf(m[1] as string)} due?`, template: 'prose:due' };
  m = /^(.+?) (runs|run|changes|change|happens|happen|starts|start|rotates|rotate|expires|expire) (every|at|on|each|daily|weekly|nightly|hourly)\b.+\.$/.exec(s);
  if (m) {
    const plural = !/s$/.test(m[2] as string) || /ss$/.test(m[2] as string);
    const base = plural ? m[2] : (m[2] as string).replace(/(ch|sh|x|ss)es$/, '$1').replace(/([^s])s$/, '$1');
    return { question: `When ${plural ? 'do' : 'does'} ${subjOf(m[1] as string)} ${base}?`, template: 'prose:when' };
  }
  m = /^(.+?) (has|have) an? ((?:[\w-]+ ){0,3}(?:objective|target|limit|budget|quota|retention|timeout)) of (.+)\.$/.exec(s);
  if (m) return { question: `What is the ${m[3]} of ${subjOf(m[1] as string)}?`, template: 'prose:has_of' };
  m = /^(.+?) (is|are) (escalated|routed|assigned|handed over|sent|reported) to (.+)\.$/.exec(s);
  if (m) return { question: `Who ${m[2]} ${subjOf(m[1] as string)} ${m[3]} to?`, template: 'prose:escalated' };
  m = /^(.+?) (is|are) kept (?:in [\w-]+ )?for (.+)\.$/.exec(s);
  if (m) return { question: `How long ${m[2]} ${subjOf(m[1] as string)} kept?`, template: 'prose:kept' };
  m = /^(.+?) (is|are) (declared|raised|triggered|paused|frozen|closed|opened) (when|if|after) (.+)\.$/.exec(s);
  if (m) return { question: `When ${m[2]} ${subjOf(m[1] as string)} ${m[3]}?`, template: 'prose:when_passive' };
  m = /^((?:The|A|An|Each|Every) [\w -]{2,40}?) (must|should) (.+)\.$/.exec(s);
  if (m && DET.test(m[1] as string)) return { question: `What ${m[2]} ${subjOf(m[1] as string)} do?`, template: 'prose:must' };
  m = /^((?:The |A |An |Each |Every )?[\w -]{2,40}?) (needs?) (.+)\.$/.exec(s);
  if (m) return { question: `What ${m[2] === 'needs' ? 'does' : 'do'} ${subjOf(m[1] as string)} need?`, template: 'prose:need' };
  m = /^The ([\w -]{2,40}?) is (the .+?)(?: until .+)?\.$/.exec(s);
  if (m && !/ (is|are) /.test(m[1] as string)) {
    const who = /(engineer|lead|head|manager|owner|commander|officer|person|contact|approver)\b/i.test(`${m[1]} ${m[2]}`);
    return { question: `${who ? 'Who' : 'What'} is the ${m[1]}?`, template: 'prose:is_the' };
  }
  return null;
}

function isoParts(ts: string): { date: string; time: string } | null {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(ts);
  return m ? { date: m[1] as string, time: m[2] as string } : null;
}

export interface ExtractOptions {
  /** per-column phrasing of table questions (domain.json `tableQuestions`), consulted before the built-in rules */
  tableQuestions?: TablePhrasing;
}

export function extractPairs(chunk: Chunk, opts: ExtractOptions = {}): QAPair[] {
  const out: QAPair[] = [];
  const section = chunk.sectionPath[chunk.sectionPath.length - 1] ?? '';
  const add = (question: string, answer: string, evidence: string, kind: string, template?: string, subject?: string) => {
    out.push({ question, answer, evidence, kind, chunkId: chunk.id, source: chunk.source, origin: 'extractive', ...(template ? { template } : {}), ...(subject ? { subject } : {}) });
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
          add(`What does error code ${key} mean?`, `${key}${svc ? ` (${svc})` : ''}: ${strip(meaning)}.${fix ? ` Resolution: ${strip(fix)}.` : ''}`, ev, 'error_code', 'error_code:meaning', key);
          if (fix) add(`How do I resolve ${key}?`, `${strip(fix)}.`, ev, 'error_code', 'error_code:resolution', key);
          return;
        }
      }
      for (let c = 1; c < r.length; c++) {
        const col = h[c] ?? '';
        const v = r[c] ?? '';
        if (!col || !v || /^(none|n\/a|-|—)$/i.test(v)) continue;
        const q = tableQuestion(h[0] ?? '', col, key, v, opts.tableQuestions);
        add(q.question, q.answer, ev, 'table_fact', q.template, key);
      }
    });
  }

  // definitions: **Term**: definition  /  - **term**: definition
  for (const m of text.matchAll(/^(?:[-*]\s+)?\*\*([^*]{2,60})\*\*\s*[:\u2014-]\s*(.{8,400})$/gm)) {
    const term = (m[1] ?? '').trim();
    const def = (m[2] ?? '').trim();
    // "Severity levels" / "Roles": a plural noun naming the kind of thing defined → "… mean as a severity level?"
    const ctx = section && !/^(glossary|definitions?|terms|terminology)$/i.test(section) && section.split(' ').length <= 3 && /[^s]s$/.test(section) ? ` as ${article(singular(section.toLowerCase()))}` : '';
    add(`What does "${term}" mean${ctx}?`, `${term}: ${def}`, m[0], 'definition', 'definition', term);
  }

  // runbook steps: an ordered list of ≥ 3 items that starts at step 1 in this chunk (a list cut by the chunker and
  // continued from the previous chunk is not a complete answer); numbers kept as written ("1." lists renumbered)
  const steps = [...text.matchAll(/^(\d+)[.)]\s+(.+)$/gm)];
  const nums = steps.map((s) => Number(s[1]));
  const allOnes = nums.every((n) => n === 1);
  const sequential = nums.every((n, i) => n === i + 1);
  if (steps.length >= 3 && section && (allOnes || sequential)) {
    const body = steps.map((s, i) => `${allOnes ? i + 1 : s[1]}. ${s[2]}`).join('\n');
    const ev = steps[0]?.[0] ?? '';
    add(`What are the steps to ${lcFirst(section)}?`, body, ev, 'runbook_steps', 'runbook:steps', section);
    add(`What is the first step to ${lcFirst(section)}?`, steps[0]?.[2] ?? '', ev, 'runbook_steps', 'runbook:first_step', section);
  }
  const when = /^Use this when (.+?)\.?$/m.exec(text);
  if (when && section) add(`When should the runbook "${section}" be used?`, `Use it when ${when[1]}.`, when[0], 'runbook_trigger', 'runbook:trigger', section);

  // FAQ: question line followed by its answer line (free text: no template)
  for (const m of text.matchAll(/^([A-Z][^\n?]{8,200}\?)\n(?!\s*\n)([^\n]{3,400})$/gm)) {
    add((m[1] ?? '').trim(), (m[2] ?? '').trim(), m[0], 'faq');
  }

  // key: value facts (not definitions, not table rows, not log lines); list items may start lower case
  for (const m of text.matchAll(/^(?:([-*])\s+)?([A-Za-z][A-Za-z0-9 /()-]{2,40}):\s+([^\n]{1,160})$/gm)) {
    const key = (m[2] ?? '').trim();
    const val = (m[3] ?? '').trim().replace(/\.$/, '');
    if (!m[1] && !/^[A-Z]/.test(key)) continue;
    if (/^(Use this when|Note|Warning|https?)/i.test(key) || /\*\*/.test(m[0])) continue;
    if (/^(Window|Highest level|Services|Error codes|First error|First warning)$/.test(key)) continue; // log summaries, handled below
    const k = lcFirst(key);
    const person = /^[a-z]+\.[a-z]+$|\(([a-z]+\.[a-z]+)\)|^[A-Z][a-z]+ [A-Z][a-z]+\b/.test(val) && !/\d/.test(val);
    const plural = /[^s]s$/.test(k.split(' of ')[0]?.split(' ').pop() ?? '');
    const be = plural ? 'are' : 'is';
    add(`${person ? 'Who' : 'What'} ${be} the ${k}?`, `The ${k} ${be} ${val}.`, m[0], 'key_value', person ? 'key_value:who' : 'key_value:what', key);
  }

  // prose facts (rules, deadlines, schedules, objectives): the sentence is the answer
  for (const sentence of proseSentences(text)) {
    const q = proseQuestion(sentence);
    if (q) add(q.question, sentence, sentence, 'prose_fact', q.template);
  }

  // log incident summaries, asked the way a user knows them: service, day and time, error code
  if (/^Incident \d+/.test(section)) {
    const win = /^- Window: (\S+) to (\S+)/m.exec(text);
    const lvl = /^- Highest level: (.+)$/m.exec(text);
    const codes = /^- Error codes: (.+)$/m.exec(text);
    const svcs = /^- Services: (.+)$/m.exec(text);
    const firstErr = /^- First (?:error|warning): (.+)$/m.exec(text);
    const a = win ? isoParts(win[1] as string) : null;
    const b = win ? isoParts(win[2] as string) : null;
    const log = (chunk.sectionPath[0] ?? '').replace(/^Log:\s*/, '');
    const services = svcs?.[1] ?? log.replace(/\.log.*$/, '');
    if (win && a && b) {
      const span = a.time === b.time ? `around ${a.time} UTC` : `between ${a.time} and ${b.time} UTC`;
      const ans = [
        `On ${a.date} ${span}, ${services} logged ${lvl ? `${lvl[1]}-level problems` : 'problems'}${codes ? ` with ${codes[1]}` : ''}.`,
        firstErr ? `The first one was: ${strip((firstErr[1] as string).replace(/^(?:[\w.-]+=\S+\s+)+/, ''))}.` : '',
      ]
        .filter(Boolean)
        .join(' ');
      add(`What went wrong with ${services} on ${a.date} ${span}?`, ans, win[0], 'log_incident', 'log:what_happened', services);
      const code = codes?.[1]?.split(/,\s*/)[0];
      const first = firstErr ? strip((firstErr[1] as string).replace(/^(?:[\w.-]+=\S+\s+)+/, '')) : '';
      if (code && first)
        add(`What did the logs show for ${code} on ${services} on ${a.date} ${span}?`, `The first error was "${first}"${lvl ? `; the highest level was ${lvl[1]}` : ''}.`, firstErr?.[0] ?? win[0], 'log_incident', 'log:error_code', services);
    }
  }
  // de-duplicate questions within the chunk
  const seen = new Set<string>();
  return out.filter((p) => (seen.has(p.question) ? false : (seen.add(p.question), true)));
}
