// The pipeline report: report.md and one self-contained report.html (chart.js inlined from the
// installed package, data as JSON in the page; no network needed to open it).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { TaskScores, Example } from './evaluate.ts';
import type { LabelSets } from './sets.ts';

export interface PipelineReport {
  generatedAt: string;
  model: string;
  machine: { cpus: string; memoryGiB: number; loadavg: number[]; node: string; platform: string };
  adapter: { vendor: string; architecture: string; device: string; description: string };
  stages: { stage: string; seconds: number; skipped: boolean; resumed: boolean; summary: Record<string, unknown> }[];
  losses: Record<string, { train: [number, number][]; eval: [number, number][]; log: Record<string, number>[] }>;
  eval: Record<string, Record<string, TaskScores>>;
  examples: Record<string, Example[]>;
  router: { counts: Record<string, { train: number; val: number }>; eval: { n: number; accuracy: number; adapterAccuracy: number; confusion: { labels: string[]; matrix: number[][] }; perRoute: Record<string, { precision: number; recall: number; support: number }> } } | null;
  labelSets: LabelSets;
}

const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '–' : `${(x * 100).toFixed(1)} %`);
const f4 = (x: number | undefined | null) => (x === undefined || x === null ? '–' : x.toFixed(4));
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The headline metric rows: task, metric, model → value. */
export function headline(r: PipelineReport): { task: string; metric: string; values: Record<string, number> }[] {
  const rows: { task: string; metric: string; values: Record<string, number> }[] = [];
  const metrics: Record<string, string[]> = { classifier: ['accuracy', 'in_label_set'], tool: ['validity', 'complete', 'name_exact', 'args_exact'], tool_unconstrained: ['validity', 'name_exact', 'args_exact'], ner: ['f1', 'f1_type_text', 'parse_rate'], chat: ['exact', 'substring'] };
  for (const [task, ms] of Object.entries(metrics)) {
    const byModel = r.eval[task];
    if (!byModel) continue;
    for (const m of ms) rows.push({ task, metric: m, values: Object.fromEntries(Object.entries(byModel).map(([k, v]) => [k, v[m]!])) });
  }
  const ppl = (s: string, which: 'eval_first' | 'eval_last') => (r.stages.find((x) => x.stage === s)?.summary[which] as { eval_perplexity?: number } | null)?.eval_perplexity;
  const c0 = ppl('chat', 'eval_first'), c1 = ppl('chat', 'eval_last'), c2 = ppl('dpo_chat', 'eval_last');
  if (c0 !== undefined) rows.push({ task: 'chat', metric: 'perplexity (held-out, trainer eval)', values: { 'domain-base': c0, ...(c1 !== undefined ? { chat_sft: c1 } : {}), ...(c2 !== undefined ? { chat_adapter: c2 } : {}) } });
  return rows;
}

export function renderMarkdown(r: PipelineReport): string {
  const L: string[] = [];
  L.push(`# lorafleet pipeline report`, '', `Generated ${r.generatedAt}. Base model: \`${r.model}\`.`, '');
  L.push(`Machine: ${r.machine.cpus}, ${r.machine.memoryGiB} GiB, load average ${r.machine.loadavg.join(' / ')}, Node ${r.machine.node}, ${r.machine.platform}.`);
  L.push(`WebGPU adapter: ${[r.adapter.vendor, r.adapter.architecture, r.adapter.device, r.adapter.description].filter(Boolean).join(' · ')}.`, '');
  L.push('## Stages', '', '| stage | time (s) | this run | summary |', '| --- | ---: | --- | --- |');
  let total = 0;
  for (const s of r.stages) {
    total += s.seconds;
    const sum = Object.entries(s.summary).filter(([k]) => !['eval_first', 'eval_last', 'confusion', 'perRoute', 'fit', 'results', 'labelSets'].includes(k)).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : typeof v === 'number' ? +v.toFixed(4) : v}`).join('; ');
    L.push(`| ${s.stage} | ${s.seconds.toFixed(1)} | ${s.skipped ? 'cached' : s.resumed ? 'resumed' : 'ran'} | ${cell(sum).slice(0, 400)} |`);
  }
  L.push(`| **total** | **${total.toFixed(1)}** | | (times are of the run that produced each stage) |`, '');
  L.push('## Adapters vs the un-adapted Domain-Base (held-out rows)', '');
  L.push('Constrained decoding: classifier = guided_choice over the label set; tool = tools + tool_choice "required" (tool grammar, one call); NER = guided_regex of the entity list (`nerRegex`). A tool row counts as valid only when a complete call came out (`complete` = no max_tokens cut inside the call). `tool_unconstrained` is the same tool rows decoded greedily without the grammar. `*_sft` = the SFT adapter before DPO/ORPO.', '');
  const rows = headline(r);
  const models = [...new Set(rows.flatMap((x) => Object.keys(x.values)))];
  L.push(`| task | metric | ${models.join(' | ')} |`, `| --- | --- | ${models.map(() => '---:').join(' | ')} |`);
  for (const x of rows) L.push(`| ${x.task} | ${x.metric} | ${models.map((m) => (x.values[m] === undefined ? '' : x.metric.startsWith('perplexity') ? x.values[m]!.toFixed(2) : pct(x.values[m]))).join(' | ')} |`);
  const n = Object.entries(r.eval).map(([t, v]) => `${t} ${Object.values(v)[0]?.n ?? 0}`).join(', ');
  L.push('', `Rows evaluated: ${n}.`, '');
  const dpo = (s: string) => r.stages.find((x) => x.stage === s)?.summary as { eval_first?: Record<string, number> | null; eval_last?: Record<string, number> | null } | undefined;
  for (const s of ['dpo_tool', 'dpo_chat']) {
    const d = dpo(s);
    if (d?.eval_first) L.push(`- ${s}: held-out reward margin ${f4(d.eval_first['eval_rewards/margins'])} → ${f4(d.eval_last?.['eval_rewards/margins'])}, reward accuracy ${pct(d.eval_first['eval_rewards/accuracies'])} → ${pct(d.eval_last?.['eval_rewards/accuracies'])}, eval loss ${f4(d.eval_first.eval_loss)} → ${f4(d.eval_last?.eval_loss)}`);
  }
  L.push('', '## Training', '', '| stage | first loss | last loss | held-out loss step 0 → last |', '| --- | ---: | ---: | --- |');
  for (const [s, l] of Object.entries(r.losses)) L.push(`| ${s} | ${f4(l.train[0]?.[1])} | ${f4(l.train.at(-1)?.[1])} | ${l.eval.length ? `${f4(l.eval[0]![1])} → ${f4(l.eval.at(-1)![1])}` : '–'} |`);
  if (r.router) {
    L.push('', '## Router', '', `Held-out requests: ${r.router.eval.n}; route accuracy ${pct(r.router.eval.accuracy)}, adapter accuracy ${pct(r.router.eval.adapterAccuracy)}.`, '');
    const c = r.router.eval.confusion;
    L.push(`| true \\ predicted | ${c.labels.join(' | ')} |`, `| --- | ${c.labels.map(() => '---:').join(' | ')} |`);
    c.matrix.forEach((row, i) => L.push(`| ${c.labels[i]} | ${row.join(' | ')} |`));
  }
  L.push('', '## Examples (first rows of each evaluation)', '');
  for (const [k, ex] of Object.entries(r.examples)) {
    L.push(`**${k}**`, '', '| input | expected | got |', '| --- | --- | --- |');
    for (const e of ex.slice(0, 3)) L.push(`| ${cell(e.input).slice(0, 100)} | ${cell(e.expected).slice(0, 120)} | ${cell(e.got).slice(0, 120)} |`);
    L.push('');
  }
  return L.join('\n') + '\n';
}

function mdToHtmlTables(md: string): string {
  // the Markdown above is tables, headings, bullets and paragraphs: a small renderer for exactly that
  const out: string[] = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.startsWith('|')) {
      const rows: string[][] = [];
      while (i < lines.length && lines[i]!.startsWith('|')) rows.push(lines[i++]!.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|')));
      i--;
      const [head, , ...body] = rows;
      const fmt = (c: string) => esc(c).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>').replace(/`(.+?)`/g, '<code>$1</code>');
      out.push(`<table><thead><tr>${head!.map((c) => `<th>${fmt(c)}</th>`).join('')}</tr></thead><tbody>${body.map((r) => `<tr>${r.map((c) => `<td>${fmt(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`);
    } else if (l.startsWith('# ')) out.push(`<h1>${esc(l.slice(2))}</h1>`);
    else if (l.startsWith('## ')) out.push(`<h2>${esc(l.slice(3))}</h2>`);
    else if (l.startsWith('- ')) out.push(`<li>${esc(l.slice(2))}</li>`);
    else if (l.trim()) out.push(`<p>${esc(l).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>').replace(/`(.+?)`/g, '<code>$1</code>')}</p>`);
  }
  return out.join('\n');
}

export async function renderHtml(r: PipelineReport, md: string): Promise<string> {
  let chartJs = '';
  try {
    // the package's exports map hides dist/ files: resolve its main entry (dist/chart.cjs) and take the UMD build beside it
    chartJs = await readFile(join(dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
  } catch {
    chartJs = ''; // charts are left out (tables stay) when chart.js is not installed
  }
  const data = JSON.stringify({ stages: r.stages.map((s) => ({ stage: s.stage, seconds: s.seconds })), losses: Object.fromEntries(Object.entries(r.losses).map(([k, v]) => [k, { train: v.train, eval: v.eval }])), headline: headline(r), router: r.router?.eval.confusion ?? null }).replace(/</g, '\\u003c');
  return `<!doctype html><html><head><meta charset="utf-8"><title>lorafleet pipeline report</title>
<style>body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top;max-width:380px;overflow-wrap:anywhere}th{background:#f2f2f2}.charts{display:grid;grid-template-columns:1fr 1fr;gap:18px}.charts div{border:1px solid #ddd;padding:8px}code{background:#f4f4f4;padding:0 3px}</style>
</head><body>
<div class="charts"><div><canvas id="stages"></canvas></div><div><canvas id="metrics"></canvas></div><div><canvas id="losses"></canvas></div><div><canvas id="evals"></canvas></div></div>
${mdToHtmlTables(md)}
<script>${chartJs}</script>
<script>
const D=${data};
if (window.Chart) {
  const C=['#4e79a7','#f28e2b','#e15759','#76b7b2','#59a14f','#edc948','#b07aa1','#ff9da7','#9c755f','#bab0ac'];
  new Chart(document.getElementById('stages'),{type:'bar',data:{labels:D.stages.map(s=>s.stage),datasets:[{label:'seconds per stage',data:D.stages.map(s=>s.seconds),backgroundColor:C[0]}]},options:{indexAxis:'y',animation:false,plugins:{title:{display:true,text:'stage durations (s)'}}}});
  const hl=D.headline.filter(h=>!h.metric.startsWith('perplexity'));
  const models=[...new Set(hl.flatMap(h=>Object.keys(h.values)))];
  new Chart(document.getElementById('metrics'),{type:'bar',data:{labels:hl.map(h=>h.task+' '+h.metric),datasets:models.map((m,i)=>({label:m,data:hl.map(h=>h.values[m]??null),backgroundColor:C[i%C.length]}))},options:{animation:false,scales:{y:{min:0,max:1}},plugins:{title:{display:true,text:'held-out metrics: adapters vs Domain-Base'}}}});
  const ls=Object.entries(D.losses);
  new Chart(document.getElementById('losses'),{type:'line',data:{datasets:ls.map(([k,v],i)=>({label:k,data:v.train.map(([x,y])=>({x,y})),borderColor:C[i%C.length],pointRadius:0}))},options:{animation:false,parsing:false,scales:{x:{type:'linear',title:{display:true,text:'step'}},y:{title:{display:true,text:'train loss'}}},plugins:{title:{display:true,text:'training loss'}}}});
  new Chart(document.getElementById('evals'),{type:'line',data:{datasets:ls.filter(([k,v])=>v.eval.length).map(([k,v],i)=>({label:k,data:v.eval.map(([x,y])=>({x,y})),borderColor:C[i%C.length]}))},options:{animation:false,parsing:false,scales:{x:{type:'linear',title:{display:true,text:'step'}},y:{title:{display:true,text:'held-out loss'}}},plugins:{title:{display:true,text:'held-out loss (step 0 = before training)'}}}});
}
</script></body></html>
`;
}

export async function writeReport(dir: string, r: PipelineReport): Promise<{ md: string; html: string }> {
  await mkdir(dir, { recursive: true });
  const md = renderMarkdown(r);
  const mdPath = join(dir, 'report.md');
  const htmlPath = join(dir, 'report.html');
  await writeFile(mdPath, md);
  await writeFile(htmlPath, await renderHtml(r, md));
  await writeFile(join(dir, 'report.json'), JSON.stringify(r, null, 2));
  return { md: mdPath, html: htmlPath };
}
