// `npm start` = `lorafleet start`: the pipeline on the shipped Harborline sample (or --docs) with
// the embedded stories260K (or --model), then the server on the result: the OpenAI-compatible API
// (model "auto" goes through the built router), the demo (demo/, built with Vite into dist/demo
// on first start) and the pipeline report. Prints the URLs; Ctrl-C stops.
import { existsSync } from 'node:fs';
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createEngine } from '../engine/api/engine.ts';
import { EngineHost } from '../engine/server/host.ts';
import { startServer } from '../engine/server/node.ts';
import { loadRouter } from '../router/load.ts';
import { loadPipelineConfig } from './pipeline/config.ts';
import { runPipeline } from './pipeline.ts';
import { SYSTEM } from './pipeline/sets.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const SAMPLE_DOCS = join(ROOT, 'trainer/data/samples/harborline');
const USAGE = `usage: lorafleet start [--docs <dir>] [--model <dir|url>] [--out <dir>] [--config <file>] [--host 127.0.0.1] [--port 8080] [--no-serve]
  defaults: --docs trainer/data/samples/harborline, --out .lorafleet/harborline, the embedded stories260K
`;

const MIME: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png', '.wasm': 'application/wasm', '.safetensors': 'application/octet-stream' };

/** Newest modification time of the files under `dir` (recursive; 0 when absent). */
async function newest(dir: string): Promise<number> {
  let t = 0;
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? await newest(p) : (await stat(p)).mtimeMs);
  }
  return t;
}

/** Build the demo with Vite (dev dependency) into dist/demo unless a build newer than its sources (demo/ and the library it bundles) is there. */
export async function buildDemo(force = false): Promise<string> {
  const outDir = join(ROOT, 'dist/demo');
  const built = join(outDir, 'index.html');
  if (!force && existsSync(built)) {
    const t = (await stat(built)).mtimeMs;
    const src = await Promise.all(['demo', 'engine', 'shaders', 'trainer/train', 'trainer/worker', 'router'].map((d) => newest(join(ROOT, d))));
    if (src.every((m) => m <= t)) return outDir;
  }
  const vite = await import('vite');
  await vite.build({ configFile: join(ROOT, 'demo/vite.config.ts'), logLevel: 'warn' });
  return outDir;
}

/** A cache revision for a served model dir: changes when its files do (the worker caches by revision). */
async function revisionOf(dir: string): Promise<string> {
  let h = 0x811c9dc5;
  for (const f of (await readdir(dir)).sort()) {
    const s = await stat(join(dir, f));
    for (const ch of `${f}:${s.size}:${Math.round(s.mtimeMs)};`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

async function fileResponse(root: string, rel: string): Promise<Response | null> {
  const p = resolve(root, rel || 'index.html');
  const real = await realpath(p).catch(() => null);
  const rr = await realpath(root);
  if (!real || (real !== rr && !real.startsWith(rr + sep))) return null;
  const s = await stat(real);
  if (s.isDirectory()) return fileResponse(root, join(rel, 'index.html'));
  return new Response(new Uint8Array(await readFile(real)), { headers: { 'content-type': MIME[extname(real)] ?? 'application/octet-stream', 'content-length': String(s.size) } });
}

export interface DemoServerOptions {
  /** Base model (the Domain-Base) dir or URL. */
  model: string;
  /** Served adapters by name → PEFT dir. */
  adapters: Record<string, string>;
  adaptersDir?: string;
  /** router.json built by the pipeline. */
  router: string;
  /** domain.json (tools, label sets, entity types for the demo's constraints). */
  domain: string;
  reportDir?: string;
  host?: string;
  port?: number;
  log?: (e: Record<string, unknown>) => void;
}

/**
 * The server of `npm start`: OpenAI/vLLM API + router for model "auto" + the demo + the report.
 * The demo runs its own engine in the browser's WebGPU worker: /demo-api/info tells it the model
 * (served in the hub layout under /demo-hub, cached in the worker's IndexedDB by revision), the
 * adapters' PEFT files and the router (/demo-files/…), and the domain's tools, label sets and entities.
 */
export async function serveDemo(o: DemoServerOptions) {
  const adapters = o.adapters;
  const router = await loadRouter(o.router);
  const log = o.log ?? ((e: Record<string, unknown>) => {
    if (e.level !== 'info' || e.msg !== 'request') process.stdout.write(JSON.stringify(e.ts ? e : { ts: new Date().toISOString(), ...e }) + '\n');
  });
  const host = await EngineHost.start({ create: () => createEngine({ model: o.model, adapters, lora: { maxRank: 64, maxSlots: 8 } }), log });
  const srv = await startServer(host, {
    hostname: o.host ?? '127.0.0.1', port: o.port ?? 8080, adaptersDir: o.adaptersDir, modelRoot: o.model, adapterRoots: adapters, maxLoras: 8, log,
    router: async (messages) => {
      const d = await router.route(messages);
      return { route: d.route, adapter: d.adapter, score: d.score, fallback: router.config.fallback.adapter };
    },
  });
  // the demo, its data and the report beside the API (registered before the first request)
  const demoDir = await buildDemo();
  const domain = JSON.parse(await readFile(o.domain, 'utf8')) as Record<string, unknown>;
  const modelDir = /^https?:\/\//i.test(o.model) ? null : resolve(o.model);
  const modelName = (modelDir ?? o.model).replace(/\/+$/, '').split('/').pop()!.replace(/[^\w.-]/g, '_') || 'model';
  const modelRev = modelDir ? await revisionOf(modelDir) : 'main';
  const routerDir = dirname(resolve(o.router));
  const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'];
  srv.app.get('/demo-api/info', (c) =>
    c.json({
      // a hub URL is given to the worker as is; a local dir is served in the hub layout below
      model: modelDir ? { name: modelName, url: `/demo-hub/lorafleet/${modelName}`, revision: modelRev } : { name: modelName, url: o.model, revision: 'main' },
      adapters: Object.fromEntries(Object.keys(adapters).map((n) => [n, Object.fromEntries(ADAPTER_FILES.map((f) => [f, `/demo-files/adapters/${encodeURIComponent(n)}/${f}`]))])),
      router: `/demo-files/router/${basename(o.router)}`,
      domain: {
        system: { chat: SYSTEM.chat, tool: SYSTEM.tool, ner: SYSTEM.ner },
        classifierSystem: Object.fromEntries(((domain.labelSets as { name: string; labels: string[] }[]) ?? []).map((l) => [l.name, SYSTEM.classifier(l.name, l.labels)])),
        labelSets: domain.labelSets,
        tools: ((domain.tools as { name: string; description: string; parameters: unknown }[]) ?? []).map((t) => ({ name: t.name, description: t.description, parameters: t.parameters })),
        entities: domain.entities,
      },
    }),
  );
  if (modelDir) {
    srv.app.get(`/demo-hub/lorafleet/${modelName}/resolve/:rev/:file`, async (c) => (await fileResponse(modelDir, c.req.param('file'))) ?? c.text('Entry not found', 404));
  }
  srv.app.get('/demo-files/adapters/:name/:file', async (c) => {
    const dir = adapters[c.req.param('name')];
    const file = c.req.param('file');
    return (dir && ADAPTER_FILES.includes(file) ? await fileResponse(dir, file) : null) ?? c.notFound();
  });
  srv.app.get('/demo-files/router/:file', async (c) => (await fileResponse(routerDir, c.req.param('file'))) ?? c.notFound());
  srv.app.get('/report', async (c) => (o.reportDir ? await fileResponse(o.reportDir, 'report.html') : null) ?? c.notFound());
  srv.app.get('/', (c) => c.redirect('/demo/'));
  srv.app.get('/demo', (c) => c.redirect('/demo/'));
  srv.app.get('/demo/*', async (c) => (await fileResponse(demoDir, c.req.path.slice('/demo/'.length))) ?? c.notFound());
  return Object.assign(srv, { modelName: host.engine!.modelName });
}

export async function startCli(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { docs: { type: 'string' }, model: { type: 'string' }, out: { type: 'string' }, config: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '8080' }, 'no-serve': { type: 'boolean' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (e) {
    process.stderr.write(`lorafleet start: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const out = resolve(values.out ?? join(ROOT, '.lorafleet/harborline'));
  const docs = values.docs ?? SAMPLE_DOCS;
  const t0 = performance.now();
  const r = await runPipeline({ docs, out, model: values.model, config: await loadPipelineConfig(values.config), quiet: values.quiet });
  process.stderr.write(`pipeline finished in ${((performance.now() - t0) / 1000).toFixed(1)} s (cached stages included)\n`);
  if (values['no-serve']) return 0;

  const adapters: Record<string, string> = {};
  for (const name of await readdir(r.adaptersDir)) adapters[name] = await realpath(join(r.adaptersDir, name));
  const srv = await serveDemo({ model: r.domainBase, adapters, adaptersDir: r.adaptersDir, router: r.router, domain: join(resolve(docs), 'domain.json'), reportDir: join(out, 'report'), host: values.host, port: Number(values.port) });
  process.stdout.write(`\nlorafleet is serving ${srv.modelName} with ${Object.keys(adapters).join(', ')}\n  demo:    ${srv.url}/demo/\n  API:     ${srv.url}/v1 (OpenAI-compatible; model "auto" = the router)\n  report:  ${srv.url}/report  (${r.report?.md})\n  metrics: ${srv.url}/metrics\n`);
  await new Promise<void>((res) => {
    const stop = () => srv.close(5000).then(res, res);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}
