/**
 * Writes harborline/docs/ops-handbook.pdf — a small, valid PDF written by hand (no PDF library): three pages,
 * a running header and footer on every page, headings set larger than the body, bullet lists and one page in
 * two columns. Regenerate with: npx tsx trainer/data/samples/make-pdf.ts
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

type Run = { x: number; y: number; size: number; bold?: boolean; text: string };

const W = 612;
const H = 792;

function wrap(text: string, width: number, size: number): string[] {
  const maxChars = Math.floor(width / (size * 0.5));
  const out: string[] = [];
  let cur = '';
  for (const w of text.split(' ')) {
    if (cur && (cur + ' ' + w).length > maxChars) {
      out.push(cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) out.push(cur);
  return out;
}

class Page {
  runs: Run[] = [];
  y = H - 90;
  constructor(
    readonly x0 = 72,
    readonly width = W - 144,
  ) {}
  heading(text: string, size = 16) {
    this.y -= size * 0.8;
    this.runs.push({ x: this.x0, y: this.y, size, bold: true, text });
    this.y -= size * 1.1;
  }
  para(text: string, size = 11) {
    for (const l of wrap(text, this.width, size)) {
      this.runs.push({ x: this.x0, y: this.y, size, text: l });
      this.y -= size * 1.35;
    }
    this.y -= size * 0.8;
  }
  bullet(text: string, size = 11) {
    const lines = wrap(text, this.width - 14, size);
    lines.forEach((l, i) => {
      this.runs.push({ x: this.x0 + (i ? 14 : 0), y: this.y, size, text: i ? l : `- ${l}` });
      this.y -= size * 1.35;
    });
  }
  gap(n = 8) {
    this.y -= n;
  }
}

function furniture(p: Run[], n: number, total: number) {
  p.push({ x: 72, y: H - 40, size: 9, text: 'Harborline Operations Handbook - Internal use only' });
  p.push({ x: 72, y: 40, size: 9, text: `Revision 7 - Page ${n} of ${total}` });
}

const pages: Run[][] = [];
{
  const p = new Page();
  p.heading('Harborline Operations Handbook', 24);
  p.gap(6);
  p.para('This handbook collects the operating rules for the Harborline platform: service level objectives, escalation and change management. It complements the runbooks and the error code reference.');
  p.heading('Service level objectives');
  p.para('Each tier 1 service has an availability objective of 99.95 percent over a rolling 30-day window. Tier 2 services target 99.9 percent and tier 3 services target 99.5 percent.');
  p.bullet('api-gateway latency objective: 95 percent of requests under 300 ms.');
  p.bullet('billing-worker freshness objective: invoices settled within 15 minutes of receipt.');
  p.bullet('notifier delivery objective: 99 percent of messages delivered within 2 minutes.');
  p.gap();
  p.heading('Escalation');
  p.para('An incident is declared when a critical or high alert is acknowledged. The incident commander is the primary on-call engineer until they hand over. Incidents that last longer than one hour are escalated to the head of operations, Amara Okafor.');
  pages.push(p.runs);
}
{
  const runs: Run[] = [];
  const top = new Page();
  top.heading('Change management');
  runs.push(...top.runs);
  const colW = (W - 144 - 24) / 2;
  const left = new Page(72, colW);
  left.y = top.y;
  left.heading('Standard changes', 13);
  left.para('Standard changes are pre-approved and low risk: scaling a service, replaying a queue or rotating an API key. They may be done at any time by an engineer.');
  left.para('Every standard change is logged in the change calendar with the hlctl command that was run.');
  const right = new Page(72 + colW + 24, colW);
  right.y = top.y;
  right.heading('Normal changes', 13);
  right.para('Normal changes need approval from a team lead and are made inside the maintenance window, Tuesday 03:00 to 04:00 UTC.');
  right.para('A normal change must list a rollback plan. Database schema changes always count as normal changes.');
  runs.push(...left.runs, ...right.runs);
  pages.push(runs);
}
{
  const p = new Page();
  p.heading('Contacts');
  p.para('The following contacts apply to every incident:');
  p.bullet('Head of operations: Amara Okafor (amara.okafor)');
  p.bullet('Payments lead on call: Jonas Weber (jonas.weber)');
  p.bullet('Database escalation: Li Wei (li.wei)');
  p.gap();
  p.heading('Post-incident review');
  p.para('A written review is due within five working days of any critical incident. The review lists the timeline, the customer impact, the root cause and at most five follow-up actions, each with an owner.');
  pages.push(p.runs);
}
pages.forEach((p, i) => furniture(p, i + 1, pages.length));

function esc(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\(/g, '\\(').replace(/\)/g, '\\)');
}

export function buildPdf(pageRuns: Run[][]): Buffer {
  const objs: string[] = [];
  const add = (s: string) => objs.push(s) - 1 + 1; // 1-based object numbers
  const catalog = add('');
  const pagesObj = add('');
  const fontR = add('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>');
  const fontB = add('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>');
  const info = add('<< /Title (Harborline Operations Handbook) /Producer (lorafleet make-pdf.ts) >>');
  const kids: number[] = [];
  for (const runs of pageRuns) {
    const content = runs.map((r) => `BT /${r.bold ? 'F2' : 'F1'} ${r.size} Tf 1 0 0 1 ${r.x.toFixed(2)} ${r.y.toFixed(2)} Tm (${esc(r.text)}) Tj ET`).join('\n');
    const c = add(`<< /Length ${Buffer.byteLength(content, 'latin1')} >>\nstream\n${content}\nendstream`);
    kids.push(add(`<< /Type /Page /Parent ${pagesObj} 0 R /MediaBox [0 0 ${W} ${H}] /Contents ${c} 0 R /Resources << /Font << /F1 ${fontR} 0 R /F2 ${fontB} 0 R >> >> >>`));
  }
  objs[catalog - 1] = `<< /Type /Catalog /Pages ${pagesObj} 0 R >>`;
  objs[pagesObj - 1] = `<< /Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(' ')}] /Count ${kids.length} >>`;
  let out = '%PDF-1.4\n%\xe2\xe3\xcf\xd3\n';
  const offsets: number[] = [];
  objs.forEach((o, i) => {
    offsets.push(Buffer.byteLength(out, 'latin1'));
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out, 'latin1');
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root ${catalog} 0 R /Info ${info} 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, 'harborline', 'docs', 'ops-handbook.pdf');
writeFileSync(target, buildPdf(pages));
console.log(`wrote ${target}`);
