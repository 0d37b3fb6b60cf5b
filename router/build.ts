/**
 * `route build`: routes for the four adapters from the data engine's formatted sets
 * (`<work>/sets/<set>.{train,val}.jsonl`, trainer/data/README.md), the embedded encoder trained on
 * the training utterances, thresholds fitted on the validation rows. Node only.
 *
 * Set → route: tool* → tool (tool_adapter; only rows whose answer is a <tool_call>: the rows where
 * no tool is needed are Q&A and go to chat), classification* → classifier, ner* or entit* → ner,
 * chat*, qa*, general* → chat; dpo and unknown sets are skipped (reported).
 *
 * Classification and NER rows come in two shapes: "bare" (the task in the system prompt, only the
 * text in the user turn — indistinguishable from any other request when the router sees the user
 * turn) and "instruction" (the user turn asks for the task: "what is the sentiment of …"). A row
 * is bare when its user turn equals its `text` field. Bare rows are used only when the router
 * embeds the system prompt (`--system`); otherwise instruction rows are used, and a set with none
 * gets instruction-style utterances made from its texts with the templates below (reported).
 */
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { defaultFeatureSpec, fnv1a, words, type FeatureSpec } from './features.ts';
import { SEED_UTTERANCES } from './seeds.ts';
import { exportHashedOnnx, prng, trainHashedEncoder, type HashedTrainOptions } from './hashed.ts';
import { HashedEncoder, RouterError, type Encoder } from './encoder.ts';
import { loadEncoder } from './load.ts';
import { Router, type EvalReport, type FitReport, type LabeledExample } from './router.ts';
import { formatZodError, parseRouterFile, requestText, type RouterFile, type RouterFileInput } from './schema.ts';

export const DEFAULT_ROUTES = [
  { name: 'tool', adapter: 'tool_adapter', description: 'Requests that call a tool: look up users, error codes, restart services, service status, paging.' },
  { name: 'classifier', adapter: 'classifier_adapter', description: 'Requests to classify a text (intent, sentiment, severity, …).' },
  { name: 'ner', adapter: 'ner_adapter', description: 'Requests to extract entities (services, users, error codes, …) from a text.' },
  { name: 'chat', adapter: 'chat_adapter', description: 'Questions about the domain documentation and general chat.' },
] as const;
export type RouteName = (typeof DEFAULT_ROUTES)[number]['name'];

export function routeForSet(set: string): RouteName | null {
  const s = set.toLowerCase();
  if (/^dpo/.test(s)) return null;
  if (/^tool/.test(s)) return 'tool';
  if (/^(classification|classify|cls)/.test(s)) return 'classifier';
  if (/^(ner|entit)/.test(s)) return 'ner';
  if (/^(chat|qa|general)/.test(s)) return 'chat';
  return null;
}

const MessageSchema = z.object({ role: z.string(), content: z.string() }).passthrough();
const RowSchema = z
  .object({
    messages: z.array(MessageSchema).min(1),
    text: z.string().optional(),
    label_set: z.string().optional(),
    entities: z.array(z.object({ type: z.string() }).passthrough()).optional(),
  })
  .passthrough();
type Row = z.infer<typeof RowSchema>;

export interface SetRows {
  set: string;
  split: 'train' | 'val';
  file: string;
  rows: Row[];
}

export async function readSets(dataDir: string): Promise<SetRows[]> {
  const dir = existsSync(join(dataDir, 'sets')) ? join(dataDir, 'sets') : dataDir;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    throw new RouterError(`route build: cannot read the data directory ${dir} (expected <work>/sets/<set>.{train,val}.jsonl from 'lorafleet data')`);
  }
  const out: SetRows[] = [];
  for (const n of names.sort()) {
    const m = /^(.+)\.(train|val)\.jsonl$/.exec(n);
    if (!m) continue;
    const file = join(dir, n);
    const rows: Row[] = [];
    (await readFile(file, 'utf8')).split('\n').forEach((line, i) => {
      if (!line.trim()) return;
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch (e) {
        throw new RouterError(`${file}:${i + 1}: not valid JSON: ${(e as Error).message}`);
      }
      if (routeForSet(m[1]) === null) return; // dpo & co: other row shapes, not read
      const r = RowSchema.safeParse(raw);
      if (!r.success) throw new RouterError(`${file}:${i + 1}: not a messages row\n${formatZodError(`${file}:${i + 1}`, r.error)}`);
      rows.push(r.data);
    });
    out.push({ set: m[1], split: m[2] as 'train' | 'val', file, rows });
  }
  if (!out.length) throw new RouterError(`route build: no <set>.{train,val}.jsonl files in ${dir}`);
  return out;
}

const lastUser = (r: Row) => [...r.messages].reverse().find((m) => m.role === 'user')?.content;
const lastAssistant = (r: Row) => [...r.messages].reverse().find((m) => m.role === 'assistant')?.content;
const isBare = (r: Row) => r.text !== undefined && lastUser(r)?.trim() === r.text.trim();

// Instruction-style utterances for sets that only have bare rows.
const CLS_TEMPLATES = [
  (l: string, t: string) => `What is the ${l} of this message: ${t}`,
  (l: string, t: string) => `Classify the ${l} of the following text: ${t}`,
  (l: string, t: string) => `Which ${l} label fits this? "${t}"`,
  (l: string, t: string) => `Tell me the ${l}: ${t}`,
  (l: string, t: string) => `Label this text by ${l}: ${t}`,
];
const ENTITY_NAMES: Record<string, string> = { ERROR_CODE: 'error codes', SERVICE: 'services', USER: 'users', TEAM: 'teams', ALERT: 'alerts' };
const NER_TEMPLATES = [
  (k: string, t: string) => `Extract the ${k} in: ${t}`,
  (k: string, t: string) => `Find the ${k} mentioned in this text: ${t}`,
  (k: string, t: string) => `Which ${k} appear here? "${t}"`,
  (k: string, t: string) => `List the named entities (${k}) in the following: ${t}`,
  (k: string, t: string) => `Tag the ${k} in this log line: ${t}`,
];

function entityKinds(r: Row): string {
  const types = [...new Set((r.entities ?? []).map((e) => e.type))];
  if (!types.length) return 'entities';
  const names = types.map((t) => ENTITY_NAMES[t] ?? `${t.toLowerCase().replace(/_/g, ' ')}s`);
  return names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

export function instructionUtterances(route: 'classifier' | 'ner', r: Row, perRow = 2): string[] {
  const text = r.text ?? lastUser(r) ?? '';
  if (!text.trim()) return [];
  const h = fnv1a(text);
  const out: string[] = [];
  for (let i = 0; i < perRow; i++) {
    if (route === 'classifier') {
      const l = r.label_set ?? 'category';
      out.push(CLS_TEMPLATES[(h + i) % CLS_TEMPLATES.length](l, text));
    } else out.push(NER_TEMPLATES[(h + i) % NER_TEMPLATES.length](entityKinds(r), text));
  }
  return out;
}

/** "Restart a service …" lines from a tool row's system prompt (`Tools:` followed by a JSON list of OpenAI tool specs). */
export function toolDescriptions(r: Row): string[] {
  const sys = r.messages.find((m) => m.role === 'system')?.content ?? '';
  const at = sys.indexOf('[', sys.search(/Tools:/i));
  if (at < 0 || sys.search(/Tools:/i) < 0) return [];
  let list: unknown;
  try {
    list = JSON.parse(sys.slice(at, sys.lastIndexOf(']') + 1));
  } catch {
    return [];
  }
  if (!Array.isArray(list)) return [];
  const out: string[] = [];
  for (const t of list) {
    const f = (t as { function?: { name?: unknown; description?: unknown } })?.function;
    if (f && typeof f.description === 'string' && f.description.trim()) out.push(f.description.trim());
  }
  return out;
}

/**
 * The call of a tool row as a keyword request: the tool's name in words and its short string
 * arguments ("get service status ledger-db", "page oncall Payments critical"). The data's tool
 * requests are few templates per tool; this gives the tool route each tool's own vocabulary with
 * every argument value the data has, worded as the model's answer names it.
 */
export function toolCallUtterance(answer: string): string | null {
  const m = /<tool_call>([\s\S]*?)<\/tool_call>/.exec(answer);
  if (!m) return null;
  let call: unknown;
  try {
    call = JSON.parse(m[1]!);
  } catch {
    return null;
  }
  const c = call as { name?: unknown; arguments?: unknown };
  if (typeof c?.name !== 'string' || !c.name.trim()) return null;
  const args = c.arguments && typeof c.arguments === 'object' ? Object.values(c.arguments as Record<string, unknown>) : [];
  const vals = args.filter((v): v is string => typeof v === 'string' && v.trim() !== '' && v.trim().split(/\s+/).length <= 2);
  return [c.name.replace(/[_-]+/g, ' ').trim(), ...vals].join(' ');
}

export interface Collected {
  train: Record<RouteName, string[]>;
  val: Record<RouteName, string[]>;
  notes: string[];
}

/** Router utterances per route and split (texts as the router embeds them). */
export function collectUtterances(sets: SetRows[], opts: { system?: boolean; toolCalls?: boolean } = {}): Collected {
  const empty = () => ({ tool: [], classifier: [], ner: [], chat: [] }) as Record<RouteName, string[]>;
  const res: Collected = { train: empty(), val: empty(), notes: [] };
  const seen = { train: new Set<string>(), val: new Set<string>() };
  const add = (split: 'train' | 'val', route: RouteName, text: string) => {
    const k = words(text).join(' ');
    if (!k || seen[split].has(`${route}\u0000${k}`)) return;
    seen[split].add(`${route}\u0000${k}`);
    res[split][route].push(text);
  };
  const embedText = (r: Row) => requestText(r.messages, { system: !!opts.system });
  for (const s of sets) {
    const route = routeForSet(s.set);
    if (!route) {
      res.notes.push(`${s.file}: set '${s.set}' is not routed (skipped)`);
      continue;
    }
    if (route === 'tool') {
      // The tools' descriptions in the system prompt say what the tool route is for.
      if (s.split === 'train') {
        const descs = new Set<string>();
        for (const r of s.rows) for (const d of toolDescriptions(r)) descs.add(d);
        for (const d of descs) add('train', 'tool', d);
      }
      let direct = 0;
      for (const r of s.rows) {
        if (!lastUser(r)?.trim()) continue;
        if ((lastAssistant(r) ?? '').includes('<tool_call>')) {
          add(s.split, 'tool', embedText(r));
          const k = opts.toolCalls && s.split === 'train' ? toolCallUtterance(lastAssistant(r)!) : null;
          if (k) add('train', 'tool', k);
        } else {
          add(s.split, 'chat', embedText(r));
          direct++;
        }
      }
      if (direct) res.notes.push(`${s.file}: ${direct} rows answered without a tool → chat`);
    } else if (route === 'classifier' || route === 'ner') {
      const instr = s.rows.filter((r) => !isBare(r) && lastUser(r)?.trim());
      const bare = s.rows.filter((r) => isBare(r) && lastUser(r)?.trim());
      if (opts.system) {
        for (const r of s.rows) if (lastUser(r)?.trim()) add(s.split, route, embedText(r));
      } else {
        for (const r of instr) add(s.split, route, embedText(r));
        if (!instr.length && bare.length) {
          for (const r of bare) for (const u of instructionUtterances(route, r)) add(s.split, route, u);
          res.notes.push(`${s.file}: no instruction-style rows; ${bare.length} bare rows turned into instruction-style utterances with the router's templates`);
        } else if (bare.length) res.notes.push(`${s.file}: ${bare.length} bare rows not used (the router sees the user turn only), ${instr.length} instruction rows used`);
      }
    } else {
      for (const r of s.rows) if (lastUser(r)?.trim()) add(s.split, 'chat', embedText(r));
    }
  }
  return res;
}

export interface BuildOptions {
  data: string;
  out: string;
  /** Hugging Face sentence-embedding export dir to use instead of training the embedded encoder. */
  encoderDir?: string;
  system?: boolean;
  dim?: number;
  buckets?: number;
  epochs?: number;
  seed?: number;
  /** Cap on utterances kept per route (sampled, deterministic). */
  maxPerRoute?: number;
  topK?: number;
  aggregate?: 'mean' | 'max';
  fallbackAdapter?: string;
  /** Add each tool training row's call as a keyword utterance to the tool route (toolCallUtterance; default true). */
  toolCalls?: boolean;
  /** Add router/seeds.ts's generic utterances to the training utterances (default true). */
  seeds?: boolean;
  /** At most this many training utterances per template skeleton (see skeleton(); 0 = no cap; default 3). */
  perTemplate?: number;
  /** fit() margin: thresholds are lowered by this much below the validation optimum (default 0.3: validation rows are worded like the training rows and score higher than real requests). */
  margin?: number;
  features?: Partial<FeatureSpec>;
  train?: HashedTrainOptions;
}

export interface BuildResult {
  router: Router;
  file: RouterFile;
  fit: FitReport;
  evalVal: EvalReport;
  counts: Record<string, { train: number; val: number }>;
  notes: string[];
  encoderPath?: string;
}

/**
 * An utterance's template skeleton: identifier-like tokens (with digits or inner . _ -, or camelCase)
 * masked. "Restart scheduler, it stopped responding." and "Restart notifier, …" differ only by the
 * service; the data engine expands each template over every entity, and such copies would otherwise
 * outweigh a route's other wordings (in training and in its top-k).
 */
export function skeleton(u: string): string {
  return u
    .replace(/[\p{L}\p{N}]+(?:[._'’-][\p{L}\p{N}]+)+|\p{L}*\p{N}[\p{L}\p{N}]*|\p{Lu}?\p{Ll}+\p{Lu}[\p{L}]*/gu, '#')
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim();
}

/** At most `cap` utterances per skeleton (the first ones, in order). */
export function capTemplates(us: string[], cap: number): string[] {
  const n = new Map<string, number>();
  return us.filter((u) => {
    const k = skeleton(u);
    const c = n.get(k) ?? 0;
    n.set(k, c + 1);
    return c < cap;
  });
}

function sample<T>(xs: T[], n: number, seed: number): T[] {
  if (xs.length <= n) return xs;
  const r = prng(seed);
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, n);
}

export async function buildRouter(o: BuildOptions): Promise<BuildResult> {
  const sets = await readSets(resolve(o.data));
  const col = collectUtterances(sets, { system: o.system, toolCalls: o.toolCalls !== false });
  const seed = o.seed ?? 7;
  // No validation rows for a route: hold out 15 % of its training utterances.
  for (const { name } of DEFAULT_ROUTES) {
    if (!col.train[name].length) throw new RouterError(`route build: no rows for route '${name}' in ${o.data} (need a ${name === 'classifier' ? 'classification-*' : name} set)`);
    if (!col.val[name].length && col.train[name].length >= 4) {
      const shuffled = sample(col.train[name], col.train[name].length, seed);
      const k = Math.max(1, Math.round(shuffled.length * 0.15));
      col.val[name] = shuffled.slice(0, k);
      col.train[name] = shuffled.slice(k);
      col.notes.push(`route ${name}: no validation rows; held out ${k} training utterances for fitting`);
    }
  }
  if (o.perTemplate !== 0) for (const { name } of DEFAULT_ROUTES) col.train[name] = capTemplates(sample(col.train[name], col.train[name].length, seed), o.perTemplate ?? 3);
  if (o.seeds !== false) for (const { name } of DEFAULT_ROUTES) col.train[name].push(...SEED_UTTERANCES[name]);
  const maxPer = o.maxPerRoute ?? 400;
  const routes = DEFAULT_ROUTES.map((r, i) => ({ ...r, adapter: r.name === 'chat' && o.fallbackAdapter ? o.fallbackAdapter : r.adapter, utterances: sample(col.train[r.name], maxPer, seed + i) }));
  const outPath = resolve(o.out);
  await mkdir(dirname(outPath), { recursive: true });
  let encoder: Encoder;
  let encoderSpec: RouterFileInput['encoder'];
  let encoderPath: string | undefined;
  if (o.encoderDir) {
    const dir = resolve(o.encoderDir);
    encoderSpec = { type: 'hf', dir: relative(dirname(outPath), dir) || '.' };
    encoder = await loadEncoder(parseRouterFile({ version: 1, encoder: encoderSpec, routes: [{ name: 'x', adapter: 'x', utterances: ['x'] }] }).encoder, outPath);
  } else {
    const spec = defaultFeatureSpec(o.buckets ?? 1 << 16, o.features);
    const examples = routes.flatMap((r) => r.utterances.map((text) => ({ text, label: r.name })));
    const w = trainHashedEncoder(examples, spec, { dim: o.dim ?? 32, epochs: o.epochs, seed, margin: 0.4, ...o.train });
    const bytes = exportHashedOnnx(w);
    encoderPath = outPath.replace(/\.json$/i, '') + '.encoder.onnx';
    await writeFile(encoderPath, bytes);
    encoderSpec = { type: 'hashed', model: basename(encoderPath), dim: w.dim, features: spec };
    encoder = await HashedEncoder.create(bytes, spec, w.dim, encoderPath);
  }
  const file = parseRouterFile({
    version: 1,
    encoder: encoderSpec,
    embed: { system: !!o.system },
    scoring: { aggregate: o.aggregate ?? 'mean', topK: o.topK ?? 3 },
    fallback: { adapter: o.fallbackAdapter ?? 'chat_adapter' },
    routes,
  });
  const router = await Router.create(file, encoder);
  const val: LabeledExample[] = DEFAULT_ROUTES.flatMap((r) => col.val[r.name].map((text) => ({ text, route: r.name })));
  const fit = await router.fit(val, { margin: o.margin ?? 0.3 });
  const evalVal = await router.evaluate(val);
  await writeFile(outPath, `${JSON.stringify(router.config, null, 1)}\n`);
  const counts = Object.fromEntries(DEFAULT_ROUTES.map((r) => [r.name, { train: routes.find((x) => x.name === r.name)!.utterances.length, val: col.val[r.name].length }]));
  return { router, file: router.config, fit, evalVal, counts, notes: col.notes, encoderPath };
}
