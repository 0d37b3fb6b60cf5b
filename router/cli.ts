/**
 * `lorafleet route …` — also runnable directly: npx tsx router/cli.ts --router r.json "restart the scheduler"
 */
import { realpathSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { buildRouter } from './build.ts';
import { RouterError } from './encoder.ts';
import { loadRouter } from './load.ts';
import { NONE, type EvalReport, type LabeledExample, type Router } from './router.ts';
import { ChatMessageSchema, formatZodError, type ChatMessage } from './schema.ts';

const HELP = `lorafleet route — pick the adapter for a request

  route --router <router.json> "<text>" [--system <prompt>] [--json]
  route --router <router.json> --input <requests.jsonl>       rows {"text"} or {"messages"}; one JSON line out per row
  route build --data <data work dir> --out <router.json> [--encoder-dir <HF ONNX export>] [--with-system]
              [--no-seeds] [--seed N] [--dim N] [--margin M]
  route fit  --router <router.json> --data <labelled.jsonl> [--out <router.json>] [--margin M]
  route eval --router <router.json> --data <labelled.jsonl> [--json]

Labelled rows: {"text" | "messages", "route": <name> | null} (or "adapter": <adapter>).
'build' trains the embedded encoder (<out>.encoder.onnx beside <out>) on the data engine's sets and
fits thresholds on their validation rows (--with-system: embed the system prompt too); 'fit' writes the thresholds into the router file (or --out).`;

const OPTIONS = {
  router: { type: 'string', short: 'r' },
  input: { type: 'string', short: 'i' },
  data: { type: 'string', short: 'd' },
  out: { type: 'string', short: 'o' },
  system: { type: 'string' },
  json: { type: 'boolean' },
  'with-system': { type: 'boolean' },
  'encoder-dir': { type: 'string' },
  'no-seeds': { type: 'boolean' },
  seed: { type: 'string' },
  dim: { type: 'string' },
  margin: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new RouterError(`--${name} must be a number, got ${v}`);
  return n;
}

const RequestRowSchema = z.union([z.object({ text: z.string() }).passthrough(), z.object({ messages: z.array(ChatMessageSchema).min(1) }).passthrough()]);
const LabelledRowSchema = z
  .object({
    text: z.string().optional(),
    messages: z.array(ChatMessageSchema).min(1).optional(),
    route: z.string().nullable().optional(),
    adapter: z.string().optional(),
  })
  .passthrough()
  .refine((r) => r.text !== undefined || r.messages !== undefined, 'a row needs "text" or "messages"')
  .refine((r) => r.route !== undefined || r.adapter !== undefined, 'a row needs "route" (a route name or null) or "adapter"');

async function readJsonl<T>(file: string, schema: z.ZodType<T>): Promise<T[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new RouterError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const rows: T[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (e) {
      throw new RouterError(`${file}:${i + 1}: not valid JSON: ${(e as Error).message}`);
    }
    const r = schema.safeParse(raw);
    if (!r.success) throw new RouterError(formatZodError(`${file}:${i + 1}`, r.error));
    rows.push(r.data);
  });
  if (!rows.length) throw new RouterError(`${file}: no rows`);
  return rows;
}

async function labelled(router: Router, file: string): Promise<LabeledExample[]> {
  const rows = await readJsonl(file, LabelledRowSchema);
  return rows.map((r, i) => {
    let route: string | null;
    if (r.route !== undefined) route = r.route;
    else {
      const hit = router.routes.find((x) => x.adapter === r.adapter);
      if (!hit && r.adapter !== router.config.fallback.adapter) throw new RouterError(`${file}:${i + 1}: adapter '${r.adapter}' is served by no route`);
      route = hit ? hit.name : null;
    }
    return { text: r.text, messages: r.messages as ChatMessage[] | undefined, route };
  });
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function renderEval(r: EvalReport): string {
  const lines = [`accuracy ${pct(r.accuracy)} (${Math.round(r.accuracy * r.n)}/${r.n}), adapter accuracy ${pct(r.adapterAccuracy)}`, '', 'route        precision  recall  support'];
  for (const [name, m] of Object.entries(r.perRoute)) lines.push(`${name.padEnd(12)} ${pct(m.precision).padStart(9)} ${pct(m.recall).padStart(7)} ${String(m.support).padStart(8)}`);
  lines.push('', `confusion (rows: expected, columns: routed)`, `${''.padEnd(12)} ${r.confusion.labels.map((l) => l.padStart(12)).join('')}`);
  r.confusion.matrix.forEach((row, i) => {
    if (r.confusion.labels[i] === NONE && row.every((x) => x === 0)) return;
    lines.push(`${r.confusion.labels[i].padEnd(12)} ${row.map((x) => String(x).padStart(12)).join('')}`);
  });
  if (r.errors.length) {
    lines.push('', 'misrouted:');
    for (const e of r.errors.slice(0, 20)) lines.push(`  ${e.expected} → ${e.got} (${e.score.toFixed(3)}): ${e.text.slice(0, 100)}`);
    if (r.errors.length > 20) lines.push(`  … ${r.errors.length - 20} more`);
  }
  return `${lines.join('\n')}\n`;
}

export async function routeCli(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  if (v.help || (argv.length === 0)) {
    process.stdout.write(`${HELP}\n`);
    return argv.length === 0 ? 1 : 0;
  }
  const sub = positionals[0];
  const out = (s: string) => process.stdout.write(s);
  if (sub === 'build') {
    if (!v.data || !v.out) throw new RouterError('route build needs --data <data work dir> and --out <router.json>');
    const res = await buildRouter({
      data: v.data,
      out: v.out,
      encoderDir: v['encoder-dir'],
      system: v['with-system'],
      seeds: !v['no-seeds'],
      seed: num(v.seed, 'seed'),
      dim: num(v.dim, 'dim'),
      margin: num(v.margin, 'margin'),
    });
    for (const n of res.notes) process.stderr.write(`note: ${n}\n`);
    for (const [name, c] of Object.entries(res.counts)) process.stderr.write(`${name.padEnd(12)} ${String(c.train).padStart(5)} utterances ${String(c.val).padStart(5)} validation\n`);
    process.stderr.write(`thresholds ${JSON.stringify(res.fit.thresholds)}\nvalidation: ${renderEval(res.evalVal)}`);
    out(`${resolve(v.out)}${res.encoderPath ? `\n${res.encoderPath}` : ''}\n`);
    await res.router.dispose();
    return 0;
  }
  if (!v.router) throw new RouterError('route needs --router <router.json>');
  const router = await loadRouter(resolve(v.router));
  try {
    if (sub === 'fit' || sub === 'eval') {
      if (!v.data) throw new RouterError(`route ${sub} needs --data <labelled.jsonl>`);
      const ex = await labelled(router, resolve(v.data));
      if (sub === 'eval') {
        const r = await router.evaluate(ex);
        out(v.json ? `${JSON.stringify(r)}\n` : renderEval(r));
        return 0;
      }
      const f = await router.fit(ex, { margin: num(v.margin, 'margin') });
      const dest = resolve(v.out ?? v.router);
      await writeFile(dest, `${JSON.stringify(router.config, null, 1)}\n`);
      out(`${JSON.stringify(f)}\n`);
      process.stderr.write(`thresholds written to ${dest}\n`);
      return 0;
    }
    if (v.input) {
      const rows = await readJsonl(resolve(v.input), RequestRowSchema);
      for (let i = 0; i < rows.length; i += 64) {
        const batch = rows.slice(i, i + 64).map((r) => ('messages' in r ? (r.messages as ChatMessage[]) : (r as { text: string }).text));
        const ds = await router.routeBatch(batch);
        out(ds.map((d) => JSON.stringify({ route: d.route, adapter: d.adapter, score: d.score, reason: d.reason })).join('\n') + '\n');
      }
      return 0;
    }
    const text = positionals.join(' ');
    if (!text.trim()) throw new RouterError('route: give the request text (or --input <jsonl>)');
    const input: string | ChatMessage[] = v.system !== undefined ? [{ role: 'system', content: v.system }, { role: 'user', content: text }] : text;
    const d = await router.route(input);
    if (v.json) out(`${JSON.stringify(d)}\n`);
    else {
      out(`route: ${d.route ?? NONE}  adapter: ${d.adapter}  score: ${d.score.toFixed(3)}  (${d.reason}${d.tied ? `: ${d.tied.join(', ')}` : ''})\n`);
      out(`scores: ${Object.entries(d.scores).map(([k, s]) => `${k} ${s.toFixed(3)}`).join('  ')}\n`);
    }
    return 0;
  } finally {
    await router.dispose();
  }
}

function isEntry(): boolean {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) {
  routeCli(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`route: ${e.message}\n`);
      process.exit(1);
    },
  );
}
