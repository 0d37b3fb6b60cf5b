// The lorafleet demo: everything runs in this browser. The engine (stories260K, or the pipeline's
// Domain-Base when `lorafleet start` serves this page, with the pipeline's adapters) runs in a WebGPU
// worker ('lorafleet/worker'); the router (lorafleet/router, onnxruntime-web) runs in the page and
// answers model "auto". Tabs: chat (route + adapter per message; tool calls / labels / entities
// rendered as such), the multi-user simulator (sim.ts), in-browser fine-tuning (tune.ts); the
// adapter-pool panel shows the worker's tiers (GPU pages, CPU copies, IndexedDB).
import { createWorkerEngine, LorafleetError, type ChatCompletion, type ChatMessage, type RouteDecision, type WorkerEngine } from 'lorafleet';
import { loadRouter, type Router } from 'lorafleet/router';
import { esc, lastUser, pageRouteFn, renderAnswer, requestFor, settleEach, type DomainInfo } from './tasks.ts';
import { setupSimulator } from './sim.ts';
import { setupTune } from './tune.ts';
import type { Demo } from './demo.ts';

/** GET /demo-api/info (cli/start.ts); absent when the page is served some other way. */
interface ServerInfo {
  model: { name: string; url: string; revision: string } | null;
  adapters: Record<string, Record<string, string>>;
  router: string | null;
  domain: DomainInfo | null;
}


const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function notice(kind: string, html: string): void {
  const n = $('notice');
  n.innerHTML = `<div class="notice" data-kind="${kind}">${html}</div>`;
  n.hidden = false;
}

async function serverInfo(): Promise<ServerInfo | null> {
  try {
    const r = await fetch(new URL('../demo-api/info', location.href));
    return r.ok ? ((await r.json()) as ServerInfo) : null;
  } catch {
    return null;
  }
}

async function adapterBytes(files: Record<string, string>): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const [f, url] of Object.entries(files)) {
    const r = await fetch(new URL(url, location.href));
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    out[f] = new Uint8Array(await r.arrayBuffer());
  }
  return out;
}

const mb = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;

async function boot(): Promise<Demo | null> {
  if (!navigator.gpu) {
    notice('webgpu-missing', '<b>WebGPU is not available in this browser.</b> The engine runs on WebGPU in a worker: use Chrome or Edge 113+ (or Chromium with <code>--enable-unsafe-webgpu</code>; Safari 18+ / Firefox with WebGPU enabled).');
    return null;
  }
  const info = await serverInfo();
  const status = $('status');
  status.textContent = 'loading the engine in a WebGPU worker…';
  // the router and each adapter load on their own: one that fails is left out and named, the rest boots
  const routerUrl = info?.router ? new URL(info.router, location.href).href : null;
  const routerLoad = await settleEach<Router>(routerUrl ? { router: () => loadRouter(routerUrl) } : {});
  const router: Router | null = routerLoad.ok.router ?? null;

  // model "auto": the router's decision (decided once per message; see send()); an adapter the
  // worker does not hold falls back to the router's fallback adapter, else the base (the library does that)
  const decided = new Map<string, RouteDecision>();
  let engine: WorkerEngine;
  const routeFn = router ? pageRouteFn(router, decided) : null;
  const adapterLoad = await settleEach(Object.fromEntries(Object.entries(info?.adapters ?? {}).map(([name, files]) => [name, () => adapterBytes(files)])));
  const adapters: Record<string, Record<string, Uint8Array>> = adapterLoad.ok;
  const failed = { ...routerLoad.failed, ...adapterLoad.failed };
  const worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module' });
  try {
    engine = await createWorkerEngine(worker, {
      ...(info?.model ? { model: new URL(info.model.url, location.href).href, hub: { revision: info.model.revision } } : {}),
      adapters,
      lora: { store: 'indexeddb', maxRank: 64, maxSlots: 8 },
      ...(routeFn ? { router: routeFn } : {}),
      onProgress: (p) => (status.textContent = `${p.phase === 'download' ? 'downloading' : 'uploading to the GPU'} ${p.file ?? p.tensor ?? ''} ${mb(p.loadedBytes)}${p.totalBytes ? ` / ${mb(p.totalBytes)}` : ''}`),
    });
  } catch (e) {
    worker.terminate();
    const code = e instanceof LorafleetError ? e.code : '';
    if (code === 'webgpu_unavailable') notice('webgpu-missing', `<b>WebGPU is not available here.</b> ${esc((e as Error).message)}`);
    else if (code === 'model_too_large') notice('model-too-large', `<b>The model does not fit this device.</b> ${esc((e as Error).message)}`);
    else notice('engine-error', `<b>The engine did not start.</b> ${esc((e as Error).message)}`);
    status.textContent = 'no engine';
    return null;
  }
  const base = engine.modelName;
  const picker = $('chat-model') as HTMLSelectElement;
  const addModel = (name: string) => {
    if ([...picker.options].some((o) => o.value === name)) return;
    const o = document.createElement('option');
    o.value = o.textContent = name;
    picker.appendChild(o);
  };
  if (router) addModel('auto');
  for (const m of engine.models()) addModel(m);
  const g = engine.gpu;
  status.textContent = `${base}${info?.model ? ' (from the server)' : ' (embedded)'} + ${Object.keys(adapters).length ? Object.keys(adapters).join(', ') : 'no adapters'} · router: ${router ? 'yes' : 'none'} · WebGPU in a worker: ${g.description || g.vendor || 'adapter'}${g.isCpu ? ' (CPU adapter)' : ''}`;
  if (Object.keys(failed).length)
    notice('partial', `<b>Started without ${Object.keys(failed).map(esc).join(', ')}</b> (they did not load): ${Object.entries(failed).map(([n, m]) => `${esc(n)}: ${esc(m)}`).join('; ')}`);
  if (!info) notice('standalone', 'Served without <code>lorafleet start</code>: the embedded stories260K, no adapters, no router. Run <code>npm start</code> for the pipeline’s adapters and router; the fine-tune tab works either way.');
  return { engine, base, domain: info?.domain ?? null, router, decided, addModel, refreshPool: () => refreshPool(engine) };
}

async function refreshPool(engine: WorkerEngine): Promise<void> {
  try {
    const p = await engine.pool();
    const tierName = { gpu: 'GPU', cpu: 'CPU', stored: p.store === 'indexeddb' ? 'IndexedDB' : 'source' } as const;
    const s = p.stats;
    $('pool-body').innerHTML =
      `<table>${p.adapters.map((a) => `<tr><td>${esc(a.name)}</td><td><span class="badge tier-${a.tier}" data-tier="${a.tier}">${tierName[a.tier]}</span></td><td>${a.pins ? `${a.pins} running` : ''}</td></tr>`).join('') || '<tr><td>no adapters</td></tr>'}</table>` +
      (s
        ? `<p>GPU pages ${mb(s.gpuBytesUsed)} / ${mb(s.gpuBytesCapacity)} (${s.pages - s.pagesFree}/${s.pages} pages, ${s.resident} resident)<br>CPU tier ${mb(s.cpuBytes)} · IndexedDB ${mb(s.persistentBytes)}</p><p data-kind="pool-counters">hits ${s.hits} · misses ${s.misses} · GPU loads ${s.loads} · evictions ${s.evictions} · CPU hits ${s.cpuHits} · IndexedDB loads ${s.persistentLoads}</p>`
        : '<p>no LoRA pool</p>');
    const m = engine.metrics();
    $('pool-sched').textContent = `scheduler: ${m.running} running, ${m.queueDepth} waiting · KV ${m.kvTotalBlocks - m.kvFreeBlocks}/${m.kvTotalBlocks} blocks · ${m.tokensDecoded} tokens decoded`;
  } catch (e) {
    $('pool-body').textContent = `pool: ${(e as Error).message}`;
  }
}

function add(cls: string, html: string): HTMLElement {
  const d = document.createElement('div');
  d.className = `msg ${cls}`;
  d.innerHTML = html;
  $('log').appendChild(d);
  $('log').scrollTop = 1e9;
  return d;
}

async function send(demo: Demo, text: string, model: string): Promise<void> {
  add('user', esc(text));
  const bot = add('bot', '<span class="meta">routing…</span>');
  try {
    const t0 = performance.now();
    // the route decides the request's form (system prompt + constraint); the engine's model "auto"
    // then takes the same decision (routeFn reads it back) and reports it on the completion
    let route: string | null = null;
    let decision: RouteDecision | null = null;
    if (model === 'auto' && demo.router) {
      decision = await demo.router.route([{ role: 'user', content: text }]);
      route = decision.route;
    } else route = demo.router?.config.routes.find((r) => r.adapter === model)?.name ?? null;
    // the task's form for router adapters; a plain request for the base model and for adapters trained here
    const domain = model === demo.base || (model !== 'auto' && route === null) ? null : demo.domain;
    const { req, labelSet } = requestFor(domain, route, text, model);
    if (decision) demo.decided.set(lastUser(req.messages), decision); // the request's user turn (a payload for classifier / NER)
    bot.innerHTML = '<span class="meta">generating in the worker…</span>';
    const c = (await demo.engine.chat.completions.create({ ...req, stream: false })) as ChatCompletion;
    const ms = performance.now() - t0;
    const shownRoute = model === 'auto' ? (c.route?.route ?? '(none)') : route ?? '(none)';
    bot.innerHTML =
      `<div class="meta"><span class="badge route" data-route="${esc(shownRoute)}">route ${esc(shownRoute)}</span><span class="badge" data-adapter="${esc(c.model)}">${esc(c.model)}</span>` +
      `${c.route?.score !== undefined ? ` score ${c.route.score.toFixed(2)}` : ''} · ${c.usage.completion_tokens} tokens · ${ms.toFixed(0)} ms</div>` +
      renderAnswer(domain, route, text, c, labelSet);
  } catch (e) {
    bot.innerHTML = `<span class="badge warn">error</span> ${esc((e as Error).message)}`;
  }
  bot.dataset.done = '1';
  void demo.refreshPool();
}

async function main(): Promise<void> {
  document.querySelectorAll<HTMLButtonElement>('nav button').forEach((b) =>
    b.addEventListener('click', () => {
      document.querySelectorAll('nav button').forEach((x) => x.classList.toggle('on', x === b));
      document.querySelectorAll('.tab').forEach((t) => t.classList.toggle('on', t.id === `tab-${b.dataset.tab}`));
    }),
  );
  const demo = await boot();
  if (!demo) {
    document.body.dataset.ready = 'no-engine';
    return;
  }
  const ex = demo.domain
    ? ['Restart the billing-worker, it stopped responding.', 'What is the api-gateway latency objective?', 'Classify the sentiment: the new dashboard is great', 'Extract the entities: HL-4031 on scheduler, paged amara.okafor']
    : ['Once upon a time', 'Tell me a story about a red ship'];
  for (const t of ex) {
    const b = document.createElement('button');
    b.textContent = t;
    b.addEventListener('click', () => void send(demo, t, ($('chat-model') as HTMLSelectElement).value));
    $('examples').appendChild(b);
  }
  $('chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const i = $('chat-input') as HTMLInputElement;
    if (i.value.trim()) void send(demo, i.value.trim(), ($('chat-model') as HTMLSelectElement).value);
    i.value = '';
  });
  setupSimulator(demo);
  setupTune(demo);
  document.body.dataset.ready = '1';
  await demo.refreshPool();
  setInterval(() => void demo.refreshPool(), 1500);
}

void main();
