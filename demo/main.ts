// The lorafleet demo: a chat UI over the server's OpenAI-compatible API, where every message goes
// through the pipeline's router (/demo-api/route), then to the chosen adapter with the constraint its
// task uses (tools for tool calls, guided_choice for labels, a JSON schema for entities); the
// adapter-pool panel polls the server's pool; the simulator fires concurrent mixed-adapter and
// base-only requests and charts tokens/s live.
import Chart from 'chart.js/auto';

type Msg = { role: 'system' | 'user' | 'assistant'; content: string };
interface Info {
  model: string;
  adapters: string[];
  system: { chat: string; tool: string; ner: string };
  classifierSystem: Record<string, string>;
  labelSets: { name: string; labels: string[] }[];
  tools: { name: string; description: string; parameters: { required?: string[]; properties?: Record<string, unknown> } }[];
  entities: unknown;
  device: { description?: string; vendor?: string; isCpu?: boolean };
}
interface Decision { route: string | null; adapter: string; score: number; reason: string; scores: Record<string, number> }

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
let info: Info;

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

async function api<T>(path: string, body?: unknown): Promise<{ data: T; headers: Headers }> {
  const r = await fetch(path, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const data = (await r.json()) as T & { error?: { message: string } };
  if (!r.ok) throw new Error(data.error?.message ?? `HTTP ${r.status}`);
  return { data, headers: r.headers };
}

function entityTypes(): string[] {
  const e = info.entities as unknown;
  if (Array.isArray(e)) return e.map((x: { type?: string; name?: string }) => x.type ?? x.name ?? '').filter(Boolean);
  return Object.keys((e as Record<string, unknown>) ?? {});
}

/** The text a classifier / NER request is about: after "…:" if the user wrote an instruction. */
const payload = (t: string) => (/^(classify|extract|label|tag|find)[^:]*:\s*/i.test(t) ? t.replace(/^[^:]*:\s*/, '').replace(/^"(.*)"$/, '$1') : t);

function labelSetFor(text: string): { name: string; labels: string[] } {
  const sets = info.labelSets ?? [];
  return sets.find((s) => new RegExp(`\\b${s.name}\\b`, 'i').test(text)) ?? sets[0]!;
}

/** The request for a route: its adapter, system prompt and output constraint. */
export function requestFor(route: string | null, adapter: string, text: string): Record<string, unknown> {
  const user = (content: string): Msg => ({ role: 'user', content });
  switch (route) {
    case 'tool':
      return { model: adapter, messages: [{ role: 'system', content: info.system.tool }, user(text)], tools: info.tools.map((t) => ({ type: 'function', function: t })), tool_choice: 'required', parallel_tool_calls: false, max_tokens: 128, temperature: 0 };
    case 'classifier': {
      const set = labelSetFor(text);
      return { model: adapter, messages: [{ role: 'system', content: info.classifierSystem[set.name] }, user(payload(text))], guided_choice: set.labels, max_tokens: 12, temperature: 0, _labelSet: set.name };
    }
    case 'ner': {
      // the entity list as a regex in the data engine's spelling (see cli/pipeline/evaluate.ts nerRegex)
      const item = `\\{"type":"(${entityTypes().join('|')})","text":"[^"\\\\]{1,48}","start":[0-9]{1,4},"end":[0-9]{1,4}\\}`;
      return { model: adapter, messages: [{ role: 'system', content: info.system.ner }, user(payload(text))], guided_regex: `\\[(${item}(,${item}){0,5})?\\]`, max_tokens: 200, temperature: 0 };
    }
    default:
      return { model: adapter, messages: [{ role: 'system', content: info.system.chat }, user(text)], max_tokens: 64, temperature: 0 };
  }
}

const COLORS: Record<string, string> = { ERROR_CODE: '#ffd6a5', SERVICE: '#caffbf', USER: '#9bf6ff', TEAM: '#bdb2ff', ALERT: '#ffadad' };

function renderEntities(text: string, raw: string): string {
  let ents: { type: string; text: string; start: number; end: number }[];
  try {
    ents = JSON.parse(raw);
    if (!Array.isArray(ents)) throw new Error('not a list');
  } catch (e) {
    return `<span class="badge warn">entities did not parse</span> <code>${esc(raw)}</code>`;
  }
  // highlight by offsets when they match the text, else by the first occurrence of the entity text
  const spans = ents.map((e) => (text.slice(e.start, e.end) === e.text ? e : { ...e, start: text.indexOf(e.text), end: text.indexOf(e.text) + e.text.length })).filter((e) => e.start >= 0).sort((a, b) => a.start - b.start);
  let html = '', at = 0;
  for (const e of spans) {
    if (e.start < at) continue;
    html += esc(text.slice(at, e.start)) + `<mark style="background:${COLORS[e.type] ?? '#eee'}" data-entity="${esc(e.type)}">${esc(text.slice(e.start, e.end))}<sub>${esc(e.type)}</sub></mark>`;
    at = e.end;
  }
  return `<div data-kind="entities" data-count="${ents.length}">${html + esc(text.slice(at))}</div><div class="meta">${ents.length} entit${ents.length === 1 ? 'y' : 'ies'}: <code>${esc(raw)}</code></div>`;
}

function validateCall(name: string, args: Record<string, unknown>): string | null {
  const t = info.tools.find((x) => x.name === name);
  if (!t) return `unknown tool ${name}`;
  for (const k of t.parameters.required ?? []) if (!(k in args)) return `missing ${k}`;
  for (const k of Object.keys(args)) if (t.parameters.properties && !(k in t.parameters.properties)) return `unexpected ${k}`;
  return null;
}

function add(cls: string, html: string): HTMLElement {
  const d = document.createElement('div');
  d.className = `msg ${cls}`;
  d.innerHTML = html;
  $('log').appendChild(d);
  $('log').scrollTop = 1e9;
  return d;
}

async function send(text: string): Promise<void> {
  add('user', esc(text));
  const bot = add('bot', '<span class="meta">routing…</span>');
  try {
    const t0 = performance.now();
    const { data: d } = await api<Decision>('/demo-api/route', { messages: [{ role: 'user', content: text }] });
    const req = requestFor(d.route, d.adapter, text);
    const labelSet = req._labelSet as string | undefined;
    delete req._labelSet;
    const { data: c } = await api<{ choices: { message: { content: string | null; tool_calls?: { function: { name: string; arguments: string } }[] }; finish_reason: string }[]; usage: { completion_tokens: number } }>('/v1/chat/completions', req);
    const m = c.choices[0]!.message;
    const ms = performance.now() - t0;
    let body: string;
    if (d.route === 'tool' && m.tool_calls?.length) {
      body = m.tool_calls.map((tc) => {
        const args = JSON.parse(tc.function.arguments) as Record<string, unknown>;
        const bad = validateCall(tc.function.name, args);
        return `<div class="tool" data-kind="tool_call" data-name="${esc(tc.function.name)}" data-valid="${bad ? 'false' : 'true'}">🔧 ${esc(tc.function.name)}(${esc(JSON.stringify(args))}) ${bad ? `<span class="badge warn">${esc(bad)}</span>` : '<span class="badge">valid</span>'}</div>`;
      }).join('');
    } else if (d.route === 'tool') {
      body = `<div class="tool" data-kind="tool_call_incomplete" data-finish="${esc(c.choices[0]!.finish_reason)}"><span class="badge warn">no complete call (${esc(c.choices[0]!.finish_reason)})</span> ${esc(m.content ?? '')}</div>`;
    } else if (d.route === 'classifier') {
      body = `<span class="label" data-kind="label" data-label-set="${esc(labelSet ?? '')}">${esc(m.content ?? '')}</span> <span class="meta">${esc(labelSet ?? '')}</span>`;
    } else if (d.route === 'ner') {
      body = renderEntities(payload(text), m.content ?? '');
    } else body = `<div data-kind="text">${esc(m.content ?? '')}</div>`;
    bot.innerHTML = `<div class="meta"><span class="badge route" data-route="${esc(d.route ?? '(none)')}">route ${esc(d.route ?? '(none)')}</span><span class="badge" data-adapter="${esc(d.adapter)}">${esc(d.adapter)}</span> score ${d.score.toFixed(2)} · ${c.usage.completion_tokens} tokens · ${ms.toFixed(0)} ms</div>${body}`;
    bot.dataset.done = '1';
  } catch (e) {
    bot.innerHTML = `<span class="badge warn">error</span> ${esc((e as Error).message)}`;
    bot.dataset.done = '1';
  }
  void refreshPool();
}

async function refreshPool(): Promise<void> {
  try {
    const { data } = await api<{ stats: Record<string, number> | null; adapters: { name: string; tier: string; pins: number }[]; scheduler: Record<string, number> }>('/demo-api/pool');
    const s = data.stats;
    const mb = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
    $('pool-body').innerHTML = `<table>${data.adapters.map((a) => `<tr><td>${esc(a.name)}</td><td><span class="badge" data-tier="${a.tier}">${a.tier}</span></td><td>${a.pins ? `${a.pins} running` : ''}</td></tr>`).join('')}</table>` +
      (s ? `<p>GPU ${mb(s.gpuBytesUsed)} / ${mb(s.gpuBytesCapacity)} · CPU ${mb(s.cpuBytes)} · stored ${mb(s.persistentBytes)}<br>hits ${s.hits} · misses ${s.misses} · loads ${s.loads} · evictions ${s.evictions} · CPU hits ${s.cpuHits}</p>` : '<p>no LoRA pool</p>') +
      `<p>IndexedDB tier: used by the in-browser engine; this page talks to the server, whose persistent tier is the adapters directory.</p>`;
  } catch (e) {
    $('pool-body').textContent = `pool: ${(e as Error).message}`;
  }
}

// ---- simulator
let chart: Chart | null = null;
async function simulate(): Promise<void> {
  const users = Number(($('sim-users') as HTMLInputElement).value) || 8;
  const maxTokens = Number(($('sim-tokens') as HTMLInputElement).value) || 24;
  const status = $('sim-status');
  chart ??= new Chart($('sim-chart') as HTMLCanvasElement, { type: 'line', data: { datasets: [] }, options: { animation: false, parsing: false, maintainAspectRatio: false, scales: { x: { type: 'linear', title: { display: true, text: 's' } }, y: { title: { display: true, text: 'tokens/s' }, min: 0 } } } });
  chart.data.datasets = [];
  const prompts = ['Restart the billing-worker', 'What is the api-gateway latency objective?', 'Classify the sentiment: the rollout went fine', 'Extract the entities: scheduler paged amara.okafor'];
  const results: Record<string, number> = {};
  for (const mode of ['mixed', 'base'] as const) {
    const ds = { label: mode === 'mixed' ? `mixed adapters (${users} users)` : `base only (${users} users)`, data: [] as { x: number; y: number }[], borderColor: mode === 'mixed' ? '#f28e2b' : '#4e79a7', pointRadius: 0 };
    chart.data.datasets.push(ds);
    let tokens = 0;
    const t0 = performance.now();
    const tick = setInterval(() => {
      const s = (performance.now() - t0) / 1000;
      ds.data.push({ x: s, y: tokens / s });
      chart!.update();
    }, 250);
    status.textContent = `${mode}: running…`;
    await Promise.all(Array.from({ length: users }, async (_, i) => {
      const adapter = mode === 'base' ? info.model : info.adapters[i % info.adapters.length]!;
      const r = await fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: adapter, messages: [{ role: 'user', content: prompts[i % prompts.length] }], max_tokens: maxTokens, temperature: 1, seed: i, stream: true, stream_options: { include_usage: true } }) });
      const rd = r.body!.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { done, value } = await rd.read();
        if (done) break;
        for (const line of dec.decode(value).split('\n')) if (line.startsWith('data: {') && line.includes('"delta"') && line.includes('"content"')) tokens++;
      }
    }));
    clearInterval(tick);
    const s = (performance.now() - t0) / 1000;
    ds.data.push({ x: s, y: tokens / s });
    results[mode] = tokens / s;
    chart.update();
  }
  status.textContent = `mixed ${results.mixed!.toFixed(1)} tok/s · base ${results.base!.toFixed(1)} tok/s · ratio ${(results.mixed! / results.base!).toFixed(2)}`;
  status.dataset.done = '1';
  void refreshPool();
}

// ---- fine-tune tab
function tuneTab(): void {
  const gpu = 'gpu' in navigator;
  $('tune-msg').innerHTML = `<div class="notice" data-kind="tune-unavailable"><b>In-browser fine-tuning is not available in this build.</b> It needs the trainer inside the WebGPU worker engine (<code>lorafleet/worker</code>, the library issue), which has not landed yet. Train adapters with <code>lorafleet train --config …</code> or <code>lorafleet pipeline</code>; load them into this running server with <code>POST /v1/load_lora_adapter</code>.<br>WebGPU in this browser: ${gpu ? 'available' : 'missing (Chrome/Edge 113+, or Chromium with --enable-unsafe-webgpu)'}.</div>`;
}

async function main(): Promise<void> {
  document.querySelectorAll<HTMLButtonElement>('nav button').forEach((b) =>
    b.addEventListener('click', () => {
      document.querySelectorAll('nav button').forEach((x) => x.classList.toggle('on', x === b));
      document.querySelectorAll('.tab').forEach((t) => t.classList.toggle('on', t.id === `tab-${b.dataset.tab}`));
    }),
  );
  try {
    info = (await api<Info>('/demo-api/info')).data;
  } catch (e) {
    $('status').textContent = `server not reachable: ${(e as Error).message}`;
    return;
  }
  $('status').textContent = `${info.model} + ${info.adapters.join(', ')} · ${info.device.description || info.device.vendor || 'WebGPU'}${info.device.isCpu ? ' (CPU adapter)' : ''}`;
  const ex = ['Restart the billing-worker, it stopped responding.', 'What is the api-gateway latency objective?', 'Classify the sentiment: the new dashboard is great', 'Extract the entities: HL-4031 on scheduler, paged amara.okafor'];
  for (const t of ex) {
    const b = document.createElement('button');
    b.textContent = t;
    b.addEventListener('click', () => void send(t));
    $('examples').appendChild(b);
  }
  $('chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const i = $('chat-input') as HTMLInputElement;
    if (i.value.trim()) void send(i.value.trim());
    i.value = '';
  });
  $('sim-run').addEventListener('click', () => void simulate());
  tuneTab();
  document.body.dataset.ready = '1';
  await refreshPool();
  setInterval(() => void refreshPool(), 3000);
}

void main();
