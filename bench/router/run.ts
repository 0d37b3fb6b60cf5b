// bench/router: how fast the semantic router decides, in Node (onnxruntime-web WASM, 1 thread).
//
//   npx tsx bench/router/run.ts [--rounds 7] [--batch 32] [--no-minilm] [--baseline <router.json>] [--json]
//   npx lorafleet bench router ...
//
// Encoders:
//   embedded  the shipped router (router/default: hashed features → ONNX bag-of-rows encoder)
//   baseline  --baseline: another router file (e.g. an earlier shipped router), rounds interleaved with embedded's
//   minilm    a BERT-shaped ONNX graph of all-MiniLM-L6-v2's size (6 layers, hidden 384, 12 heads,
//             FFN 1536, vocab 30522; random weights — the cost is the shape, not the values), mean
//             pooling, with the shipped router's routes capped at 20 utterances each (embedding them at load is the slow part)
// Queries: the 92 held-out requests (router/testdata/heldout.jsonl), each round over all of them.
//   single   router.route(text) one after another: per-query latency p50/p99, queries/s
//   batched  router.routeBatch(32 texts): latency per query = batch time / batch size, queries/s
// Each round gives p50, p99 and qps; the table shows the median over rounds and the spread
// (min–max). Host load (1-minute load average, cores) is recorded before and after: the machine is
// shared, and load only ever adds time.
import { cpus, loadavg } from 'node:os';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadRouter, type Router } from '../../router/index.ts';
import { words } from '../../router/features.ts';
import { bertOnnx, MINILM_L6, randomBertWeights, wordpieceTokenizerJson } from '../../tests/helpers/bert-onnx.ts';
import { runIfMain } from '../common.ts';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

interface RoundStats {
  p50: number;
  p99: number;
  qps: number;
  /** Fastest query (single) or fastest batch per query (batched). */
  best: number;
}
interface Row {
  encoder: string;
  mode: 'single' | 'batched';
  batch: number;
  rounds: RoundStats[];
}

function quantile(xs: number[], q: number): number {
  const s = xs.slice().sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i];
}
const median = (xs: number[]) => quantile(xs, 0.5);

async function warmUp(router: Router, queries: string[], batch: number): Promise<void> {
  // One pass each way (first runs allocate and JIT).
  for (const q of queries.slice(0, 8)) await router.route(q);
  await router.routeBatch(queries.slice(0, batch));
}

async function timeRound(router: Router, queries: string[], batch: number): Promise<{ single: RoundStats; batched: RoundStats }> {
  const lat: number[] = [];
  const t0 = performance.now();
  for (const q of queries) {
    const t = performance.now();
    await router.route(q);
    lat.push(performance.now() - t);
  }
  const total = performance.now() - t0;
  const single = { p50: median(lat), p99: quantile(lat, 0.99), qps: (queries.length / total) * 1000, best: Math.min(...lat) };
  const per: number[] = [];
  const t1 = performance.now();
  for (let i = 0; i < queries.length; i += batch) {
    const chunk = queries.slice(i, i + batch);
    const t = performance.now();
    await router.routeBatch(chunk);
    const ms = performance.now() - t;
    for (let k = 0; k < chunk.length; k++) per.push(ms / chunk.length);
  }
  const totalB = performance.now() - t1;
  return { single, batched: { p50: median(per), p99: quantile(per, 0.99), qps: (queries.length / totalB) * 1000, best: Math.min(...per) } };
}

/** Rounds interleaved across the routers (round r of each before round r+1 of any), so that load
 *  changes hit every router alike. */
async function timeRouters(routers: { name: string; router: Router }[], queries: string[], rounds: number, batch: number, log: (s: string) => void): Promise<Row[]> {
  for (const { router } of routers) await warmUp(router, queries, batch);
  const single = routers.map(() => [] as RoundStats[]);
  const batched = routers.map(() => [] as RoundStats[]);
  for (let r = 0; r < rounds; r++) {
    for (const [i, { name, router }] of routers.entries()) {
      const t = await timeRound(router, queries, batch);
      single[i]!.push(t.single);
      batched[i]!.push(t.batched);
      log(`  ${name} round ${r + 1}/${rounds}: single p50 ${t.single.p50.toFixed(3)} ms, ${t.single.qps.toFixed(0)} q/s; batched ${t.batched.qps.toFixed(0)} q/s`);
    }
  }
  return routers.flatMap(({ name }, i) => [
    { encoder: name, mode: 'single' as const, batch: 1, rounds: single[i]! },
    { encoder: name, mode: 'batched' as const, batch, rounds: batched[i]! },
  ]);
}

async function minilmRouter(queries: string[]): Promise<{ router: Router; dir: string }> {
  const base = JSON.parse(await readFile(here('../../router/default/router.json'), 'utf8'));
  const routes = base.routes.map((r: { utterances: string[] }) => ({ ...r, utterances: r.utterances.slice(0, 20) }));
  const vocab = new Set<string>();
  for (const t of [...queries, ...routes.flatMap((r: { utterances: string[] }) => r.utterances)]) for (const w of words(t)) for (const p of w.split(/[^\p{L}\p{N}]+/u)) if (p) vocab.add(p);
  const list = [...vocab];
  while (list.length < MINILM_L6.vocab - 4) list.push(`[unused${list.length}]`);
  const dir = await mkdtemp(join(tmpdir(), 'lorafleet-bench-minilm-'));
  await writeFile(join(dir, 'model.onnx'), bertOnnx(randomBertWeights(MINILM_L6, 1)));
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(wordpieceTokenizerJson(list)));
  await writeFile(join(dir, 'router.json'), JSON.stringify({ ...base, encoder: { type: 'hf', dir: '.', pooling: 'mean', maxLength: 128 }, routes }));
  return { router: await loadRouter(join(dir, 'router.json')), dir };
}

const f = (x: number, d = 3) => x.toFixed(d);
const spread = (xs: number[], d = 3) => `${f(median(xs), d)} (${f(Math.min(...xs), d)}–${f(Math.max(...xs), d)})`;

export async function run(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: { rounds: { type: 'string' }, batch: { type: 'string' }, 'no-minilm': { type: 'boolean' }, baseline: { type: 'string' }, json: { type: 'boolean' }, out: { type: 'string' } },
  });
  const rounds = Number(v.rounds ?? 7);
  const batch = Number(v.batch ?? 32);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const queries = (await readFile(here('../../router/testdata/heldout.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { text: string }).text);
  const started = new Date().toISOString();
  const load0 = loadavg()[0];
  const t0 = performance.now();
  const rows: Row[] = [];
  const tl = performance.now();
  const emb = await loadRouter(here('../../router/default/router.json'));
  const embLoadMs = performance.now() - tl;
  log(`embedded router loaded in ${embLoadMs.toFixed(0)} ms (${emb.routes.reduce((a, r) => a + r.utterances.length, 0)} utterances, dim ${emb.encoder.dim})`);
  const base = v.baseline ? await loadRouter(v.baseline) : null;
  rows.push(...(await timeRouters([{ name: 'embedded', router: emb }, ...(base ? [{ name: 'baseline', router: base }] : [])], queries, rounds, batch, log)));
  await emb.dispose();
  await base?.dispose();
  let minilmLoadMs: number | undefined;
  if (!v['no-minilm']) {
    const tm = performance.now();
    const { router, dir } = await minilmRouter(queries);
    minilmLoadMs = performance.now() - tm;
    log(`MiniLM-shaped router built and loaded in ${(minilmLoadMs / 1000).toFixed(1)} s`);
    rows.push(...(await timeRouters([{ name: 'minilm-shape', router }], queries, Math.max(3, Math.ceil(rounds / 2)), batch, log)));
    await router.dispose();
    await rm(dir, { recursive: true, force: true });
  }
  const load1 = loadavg()[0];
  const secs = (performance.now() - t0) / 1000;
  const result = { started, seconds: secs, cores: cpus().length, load1Before: load0, load1After: load1, queries: queries.length, embLoadMs, minilmLoadMs, rows };
  if (v.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  const md = [
    '# bench/router results',
    '',
    `${started} · ${secs.toFixed(0)} s · Node ${process.version}, onnxruntime-web WASM (1 thread) · ${cpus().length} cores, 1-min load ${load0.toFixed(1)} before / ${load1.toFixed(1)} after`,
    '',
    `${queries.length} held-out requests per round; median over rounds (min–max). single = route(text) one after another; batched = routeBatch(${batch}), latency per query = batch time / ${batch}. Latency includes featurising/tokenising, the ONNX run, scoring against every utterance and the decision.`,
    '',
    '| encoder | mode | rounds | p50 ms/query | p99 ms/query | queries/s | best ms/query |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.encoder} | ${r.mode} | ${r.rounds.length} | ${spread(r.rounds.map((x) => x.p50))} | ${spread(r.rounds.map((x) => x.p99))} | ${spread(r.rounds.map((x) => x.qps), 0)} | ${f(Math.min(...r.rounds.map((x) => x.best)))} |`),
    '',
    'best = the fastest query (single) or batch (batched, per query) over all rounds: what the code costs when the process is not preempted. With a 1-minute load far above the core count, a batch (several ms) is preempted more often than a single query (a fraction of a ms), so the batched medians and every p99 here measure the other processes as much as the router.',
    '',
    ...(v.baseline ? [`baseline = ${v.baseline} (rounds interleaved with embedded's).`, ''] : []),
    `Load: embedded router ${embLoadMs.toFixed(0)} ms (session + embedding every utterance)${minilmLoadMs !== undefined ? `; MiniLM-shaped ${(minilmLoadMs / 1000).toFixed(1)} s (building the random 90 MB graph and embedding the routes' 80 utterances)` : ''}.`,
    '',
  ].join('\n');
  const out = v.out ?? here('./results.md');
  await writeFile(out, md);
  await writeFile(out.replace(/\.md$/, '.json'), `${JSON.stringify(result, null, 1)}\n`);
  log(md);
  return 0;
}

runIfMain(import.meta.url, run);
