/**
 * Logs → Markdown incidents/sessions.
 * Parses ISO-8601, "YYYY-MM-DD HH:MM:SS,mmm", syslog ("Mar 14 02:11:09 host svc[pid]:"), epoch ("ts=1710382269")
 * and JSON-lines records. Continuation lines (stack traces) join the previous record. Timestamps are normalised to
 * ISO-8601 UTC; ANSI colours, DEBUG/TRACE chatter and health checks are dropped; consecutive repeats collapse to "(×N)".
 * Records are grouped by session/trace/request id when present, otherwise by quiet gaps; a group with WARN or worse
 * is an incident, the rest are sessions.
 */
export interface LogRecord {
  ts: Date | null;
  level: string;
  service: string;
  message: string;
  key: string | null;
  repeat: number;
}

export interface LogGroup {
  kind: 'incident' | 'session';
  key: string | null;
  records: LogRecord[];
}

const LEVELS: Record<string, string> = {
  trace: 'TRACE', debug: 'DEBUG', dbg: 'DEBUG', info: 'INFO', notice: 'INFO', warn: 'WARN', warning: 'WARN',
  error: 'ERROR', err: 'ERROR', crit: 'FATAL', critical: 'FATAL', fatal: 'FATAL', alert: 'FATAL', emerg: 'FATAL',
};
const RANK: Record<string, number> = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4, FATAL: 5 };
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const KEY_RE = /\b(?:session(?:_id)?|sid|trace(?:_id)?|request(?:_id)?|req(?:_id)?|incident(?:_id)?)[=:]\s*"?([\w.-]+)/i;
const LEVEL_RE = /\b(TRACE|DEBUG|DBG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRIT|CRITICAL|FATAL|ALERT|EMERG)\b:?/i;

function normLevel(s: string | undefined): string {
  return LEVELS[(s ?? '').toLowerCase()] ?? 'INFO';
}

export function parseTimestamp(s: string, year: number): { ts: Date; rest: string } | null {
  let m = /^\[?(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,6}))?\s*(Z|[+-]\d{2}:?\d{2}|UTC)?\]?\s*/.exec(s);
  if (m) {
    const frac = (m[3] ?? '0').padEnd(3, '0').slice(0, 3);
    let tz = m[4] ?? 'Z';
    if (tz === 'UTC') tz = 'Z';
    if (/^[+-]\d{4}$/.test(tz)) tz = `${tz.slice(0, 3)}:${tz.slice(3)}`;
    const d = new Date(`${m[1]}T${m[2]}.${frac}${tz}`);
    if (!Number.isNaN(d.getTime())) return { ts: d, rest: s.slice(m[0].length) };
  }
  m = /^([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})\s+/.exec(s);
  if (m) {
    const mon = MONTHS.indexOf((m[1] ?? '').toLowerCase());
    if (mon >= 0) {
      const d = new Date(Date.UTC(year, mon, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])));
      return { ts: d, rest: s.slice(m[0].length) };
    }
  }
  m = /^\[?(?:ts=)?(1\d{9})(?:\.(\d{1,3}))?\]?\s+/.exec(s);
  if (m) return { ts: new Date(Number(m[1]) * 1000 + Number((m[2] ?? '0').padEnd(3, '0'))), rest: s.slice(m[0].length) };
  return null;
}

export function parseLogLine(line: string, year: number): LogRecord | null {
  const t = line.trim();
  if (t.startsWith('{')) {
    try {
      const o = JSON.parse(t) as Record<string, unknown>;
      const tsRaw = o.ts ?? o.time ?? o.timestamp ?? o['@timestamp'];
      const ts = typeof tsRaw === 'number' ? new Date(tsRaw < 1e12 ? tsRaw * 1000 : tsRaw) : typeof tsRaw === 'string' ? new Date(tsRaw) : null;
      const key = [o.session, o.session_id, o.trace_id, o.request_id, o.incident].find((v) => typeof v === 'string') as string | undefined;
      const msg = String(o.msg ?? o.message ?? '');
      return {
        ts: ts && !Number.isNaN(ts.getTime()) ? ts : null,
        level: normLevel(String(o.level ?? o.severity ?? 'info')),
        service: String(o.service ?? o.svc ?? o.logger ?? ''),
        message: msg,
        key: key ?? KEY_RE.exec(msg)?.[1] ?? null,
        repeat: 1,
      };
    } catch {
      /* not JSON after all; fall through */
    }
  }
  const p = parseTimestamp(t, year);
  if (!p) return null;
  let rest = p.rest;
  let level = 'INFO';
  let service = '';
  const lm = LEVEL_RE.exec(rest.slice(0, 40));
  if (lm) {
    level = normLevel(lm[1]);
    rest = (rest.slice(0, lm.index) + rest.slice(lm.index + lm[0].length)).trim();
  }
  const sm = /^(?:\[([\w.-]+)\]|([\w.-]+)\[\d+\]:|([\w.-]+):)\s*/.exec(rest) ?? /^\S+\s+([\w.-]+)\[\d+\]:\s*/.exec(rest);
  if (sm) {
    service = sm[1] ?? sm[2] ?? sm[3] ?? '';
    rest = rest.slice(sm[0].length);
    if (!lm) {
      const lm2 = LEVEL_RE.exec(rest.slice(0, 12));
      if (lm2 && lm2.index === 0) {
        level = normLevel(lm2[1]);
        rest = rest.slice(lm2[0].length).trim();
      }
    }
  }
  return { ts: p.ts, level, service, message: rest.trim(), key: KEY_RE.exec(rest)?.[1] ?? null, repeat: 1 };
}

const NOISE = /\b(health[- ]?check|heartbeat|keep-?alive|GET \/(?:healthz?|ready|live|metrics)\b)/i;

export function maskVolatile(s: string): string {
  return s
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, '<uuid>')
    .replace(/\b0x[0-9a-f]+\b/gi, '<hex>')
    .replace(/\b\d+(\.\d+)?(ms|s)?\b/g, '<n>');
}

export function parseLog(text: string, opts: { year?: number; gapMinutes?: number } = {}): { groups: LogGroup[]; dropped: number } {
  const year = opts.year ?? new Date().getUTCFullYear();
  const gapMs = (opts.gapMinutes ?? 10) * 60_000;
  // eslint-disable-next-line no-control-regex
  const lines = text.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '').split(/\r?\n/);
  const recs: LogRecord[] = [];
  let dropped = 0;
  for (const line of lines) {
    if (!line.trim()) continue;
    const r = parseLogLine(line, year);
    if (r) recs.push(r);
    else if (recs.length) {
      const last = recs[recs.length - 1] as LogRecord;
      last.message += `\n    ${line.trim()}`; // continuation (stack trace)
    } else dropped++;
  }
  const kept: LogRecord[] = [];
  for (const r of recs) {
    if ((RANK[r.level] ?? 2) <= 1 || (NOISE.test(r.message) && (RANK[r.level] ?? 2) <= 2)) {
      dropped++;
      continue;
    }
    const prev = kept[kept.length - 1];
    if (prev && prev.service === r.service && prev.level === r.level && maskVolatile(prev.message) === maskVolatile(r.message)) {
      prev.repeat++;
      continue;
    }
    kept.push(r);
  }
  // group: by key when present; unkeyed records join the open group (if within gap) or start a new one
  const groups: LogGroup[] = [];
  const byKey = new Map<string, LogGroup>();
  let open: LogGroup | null = null;
  let lastTs = -Infinity;
  for (const r of kept) {
    const t = r.ts?.getTime() ?? lastTs;
    if (r.key) {
      let g = byKey.get(r.key);
      if (!g) {
        g = { kind: 'session', key: r.key, records: [] };
        byKey.set(r.key, g);
        groups.push(g);
      }
      g.records.push(r);
    } else {
      if (!open || t - lastTs > gapMs) {
        open = { kind: 'session', key: null, records: [] };
        groups.push(open);
      }
      open.records.push(r);
      lastTs = t;
    }
  }
  for (const g of groups) g.kind = g.records.some((r) => (RANK[r.level] ?? 2) >= 3) ? 'incident' : 'session';
  // quiet activity (no WARN or worse) close in time forms one session instead of many one-request groups
  const t0 = (g: LogGroup) => g.records[0]?.ts?.getTime() ?? 0;
  const t1 = (g: LogGroup) => g.records[g.records.length - 1]?.ts?.getTime() ?? 0;
  const merged: LogGroup[] = [];
  for (const g of groups.sort((a, b) => t0(a) - t0(b))) {
    const prev = merged[merged.length - 1];
    if (prev && prev.kind === 'session' && g.kind === 'session' && t0(g) - t1(prev) <= gapMs) {
      prev.records.push(...g.records);
      if (prev.key !== g.key) prev.key = null;
    } else merged.push(g);
  }
  return { groups: merged, dropped };
}

function iso(d: Date | null): string {
  return d ? d.toISOString().replace('.000Z', 'Z') : '?';
}

export function logToMarkdown(name: string, text: string, opts: { year?: number } = {}): { title: string; markdown: string; meta: Record<string, unknown> } {
  const { groups, dropped } = parseLog(text, opts);
  const out: string[] = [`# Log: ${name}`, ''];
  let n = 0;
  for (const g of groups) {
    n++;
    const recs = g.records;
    const worst = recs.reduce((a, r) => ((RANK[r.level] ?? 2) > (RANK[a] ?? 2) ? r.level : a), 'INFO');
    const services = [...new Set(recs.map((r) => r.service).filter(Boolean))];
    const codes = [...new Set(recs.flatMap((r) => r.message.match(/\b[A-Z]{2,4}-\d{4}\b/g) ?? []))];
    const first = recs[0]?.ts ?? null;
    const last = recs[recs.length - 1]?.ts ?? null;
    const label = g.kind === 'incident' ? 'Incident' : 'Session';
    out.push(`## ${label} ${n}: ${iso(first)}${g.key ? ` (${g.key})` : ''}`, '');
    out.push(`- Window: ${iso(first)} to ${iso(last)}, ${recs.reduce((a, r) => a + r.repeat, 0)} events`);
    out.push(`- Highest level: ${worst}`);
    if (services.length) out.push(`- Services: ${services.join(', ')}`);
    if (codes.length) out.push(`- Error codes: ${codes.join(', ')}`);
    const firstBad = recs.find((r) => (RANK[r.level] ?? 2) >= 4) ?? recs.find((r) => (RANK[r.level] ?? 2) >= 3);
    if (firstBad) out.push(`- First ${firstBad.level === 'WARN' ? 'warning' : 'error'}: ${firstBad.message.split('\n')[0]}`);
    out.push('', '```log');
    for (const r of recs) {
      out.push(`${iso(r.ts)} ${r.level.padEnd(5)} ${r.service ? `[${r.service}] ` : ''}${r.message}${r.repeat > 1 ? ` (x${r.repeat})` : ''}`);
    }
    out.push('```', '');
  }
  return {
    title: `Log ${name}`,
    markdown: out.join('\n'),
    meta: { groups: groups.length, incidents: groups.filter((g) => g.kind === 'incident').length, droppedLines: dropped },
  };
}
