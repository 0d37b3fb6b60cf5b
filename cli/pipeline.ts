// `lorafleet pipeline --docs <dir> [--model <dir|url>] --out <dir> [--teacher-url <url>] [--config <file>]`
//
// Raw documents → served adapters, as library calls (no subprocesses):
//   ingest → chunk → dedupe → synth → format            trainer/data (the data engine)
//   sets                                                  adapter datasets fitted to the model (cli/pipeline/sets.ts)
//   cpt → merge                                           LoRA on the raw domain text, merged into the Domain-Base
//   chat, tool, classifier, ner                          SFT adapters on the Domain-Base
//   dpo_tool, dpo_chat                                    DPO (or ORPO) from the tool / chat SFT adapters
//   router                                                router/ build on the data engine's sets
//   eval → report                                         every adapter vs the Domain-Base on held-out rows
// Each stage caches its outputs under <out>/<stage>/ by a hash of its inputs and settings
// (cli/pipeline/stage.ts): a rerun skips finished stages; a killed run resumes (training from its
// newest checkpoint). <out>/adapters/ then holds the four served adapters by name, so
//   lorafleet serve --model <out>/domain-base --adapters <out>/adapters
// serves them (and `npm start` does both).
import { existsSync, realpathSync } from 'node:fs';
import { cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Runtime } from '../shaders/gpu/runtime.ts';
import { openModelSource } from '../engine/model/source.ts';
import { createEngine } from '../engine/api/engine.ts';
import { stageChunk, stageDedupe, stageFormat, stageIngest, stageSynth } from '../trainer/data/pipeline.ts';
import { loadDomain } from '../trainer/data/domain.ts';
import { Progress } from '../trainer/data/progress.ts';
import { validateTrainConfig } from '../trainer/train/config.ts';
import { runTraining } from '../trainer/train/run.ts';
import { mergeAdapter } from '../trainer/train/merge.ts';
import { NodeIO } from '../trainer/train/node-io.ts';
import { buildRouter } from '../router/build.ts';
import { StageRunner, hashPath, stageKey, type StageRecord } from './pipeline/stage.ts';
import { COMMON_DEFAULTS, STAGE_DEFAULTS, loadPipelineConfig, type PipelineConfig, type TrainStage } from './pipeline/config.ts';
import { buildAdapterSets, type LabelSets, type SetRow } from './pipeline/sets.ts';
import { evalChat, evalClassifier, evalNer, evalTool, type Example, type TaskScores, type ToolDef } from './pipeline/evaluate.ts';
import { writeReport, type PipelineReport } from './pipeline/report.ts';

export const PIPELINE_USAGE = `usage: lorafleet pipeline --docs <dir> --out <dir> [--model <dir|url>] [--teacher-url <url> --teacher-model <name>]
                         [--domain <domain.json>] [--config <file.yaml|json>] [--quiet]
  --docs      raw domain documents (and domain.json, unless --domain)
  --model     base model: HF dir or hub URL (default: the embedded stories260K)
  --out       work/output dir: one folder per stage, adapters/, domain-base/, router/, report/
  --config    overrides: data.*, train.* (every training stage), stages.<cpt|chat|tool|classifier|ner|dpo_tool|dpo_chat>.*
              (the trainer's config keys), preference: dpo|orpo, router.*, eval.max_rows
`;

/** The embedded stories260K's directory (Node). */
export const EMBEDDED_MODEL_DIR = fileURLToPath(new URL('../engine/model/embedded/stories260K', import.meta.url));

export interface PipelineOptions {
  docs: string;
  out: string;
  model?: string;
  domain?: string;
  teacherUrl?: string;
  teacherModel?: string;
  apiKey?: string;
  config?: PipelineConfig;
  quiet?: boolean;
  /** Stop after this stage (tests, partial runs). */
  until?: string;
  /** A WebGPU runtime to use (kept open); default: one acquired for the run and destroyed after it. */
  rt?: Runtime;
  say?: (m: string) => void;
}

export interface PipelineResult {
  out: string;
  records: StageRecord[];
  domainBase: string;
  adaptersDir: string;
  router: string;
  report?: { md: string; html: string };
}

/** At most `max` rows spread evenly over `rows` (validation files are ordered by template: the first N would be a few templates). */
export const spread = <T>(rows: T[], max: number): T[] => (rows.length <= max ? rows : Array.from({ length: max }, (_, i) => rows[Math.floor((i * rows.length) / max)]!));
/** Drop undefined fields: the data engine's option spreads treat a present-but-undefined key as a value. */
const clean = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as T;
const readJsonl = async (p: string): Promise<SetRow[]> => (await readFile(p, 'utf8')).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as SetRow);
const readLog = async (p: string): Promise<Record<string, number>[]> => (existsSync(p) ? (await readFile(p, 'utf8')).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, number>) : []);

export async function runPipeline(o: PipelineOptions): Promise<PipelineResult> {
  const say = o.say ?? ((m: string) => process.stderr.write(`${m}\n`));
  const quiet = !!o.quiet;
  const cfg = o.config ?? (await loadPipelineConfig(undefined));
  const out = resolve(o.out);
  const docs = resolve(o.docs);
  if (!existsSync(docs)) throw new Error(`--docs ${o.docs}: no such directory`);
  const domain = resolve(o.domain ?? join(docs, 'domain.json'));
  if (!existsSync(domain)) throw new Error(`no domain spec: pass --domain (looked for ${domain})`);
  await loadDomain(domain); // validated before any stage: a bad spec fails fast, naming file and field
  const model = o.model ? (/^[a-z]+:\/\//i.test(o.model) ? o.model : resolve(o.model)) : EMBEDDED_MODEL_DIR;
  await mkdir(out, { recursive: true });
  const st = new StageRunner(out, say);
  const stop = (name: string) => o.until === name;
  const result: PipelineResult = { out, records: st.records, domainBase: join(out, 'domain-base'), adaptersDir: join(out, 'adapters'), router: join(out, 'router', 'router.json') };
  const io = new NodeIO();
  let rt: Runtime | null = o.rt ?? null; // one device for every training stage and the evaluation (shader pipelines compile once)
  try {
  const modelKey = /^[a-z]+:\/\//i.test(model) ? model : await hashPath(model);
  const tokenizerDir = /^[a-z]+:\/\//i.test(model) ? undefined : model;

  // ---- data engine
  const d = cfg.data;
  const kIngest = stageKey('ingest', { logYear: null }, [await hashPath(docs)]);
  await st.run('ingest', kIngest, async (dir) => {
    const r = await stageIngest(docs, { work: dir, quiet });
    return { documents: r.length };
  });
  if (stop('ingest')) return result;
  const kChunk = stageKey('chunk', { target: d.target_tokens ?? 256, overlap: d.overlap_tokens ?? 32 }, [kIngest, modelKey]);
  await st.run('chunk', kChunk, async (dir) => {
    const r = await stageChunk(clean({ work: dir, quiet, docs: join(out, 'ingest', 'docs.jsonl'), tokenizer: tokenizerDir, targetTokens: d.target_tokens, overlapTokens: d.overlap_tokens }));
    return { chunks: r.length };
  });
  const kDedupe = stageKey('dedupe', { keep: d.keep ?? 'canonical' }, [kChunk]);
  await st.run('dedupe', kDedupe, async (dir) => {
    await cp(join(out, 'ingest', 'docs.jsonl'), join(dir, 'docs.jsonl')); // the canonical-copy ranking reads mtimes from it
    const r = await stageDedupe(clean({ work: dir, quiet, chunks: join(out, 'chunk', 'chunks.jsonl'), keep: d.keep }));
    return { kept: r.length };
  });
  const teacher = o.teacherUrl ? { baseURL: o.teacherUrl, model: o.teacherModel ?? d.teacher_model ?? 'teacher', apiKey: o.apiKey, concurrency: d.teacher_concurrency, cacheDir: join(out, '.teacher-cache') } : undefined;
  const kSynth = stageKey('synth', { teacher: teacher ? { url: teacher.baseURL, model: teacher.model } : null }, [kDedupe, await hashPath(domain)]);
  await st.run('synth', kSynth, async (dir) => {
    const r = await stageSynth(clean({ work: dir, quiet, chunks: join(out, 'dedupe', 'chunks.dedup.jsonl'), domain, teacher: teacher && clean(teacher), withExtractive: !!teacher }));
    return { pairs: r.length };
  });
  const kFormat = stageKey('format', { val: d.val ?? null, seed: d.seed ?? null }, [kSynth]);
  await st.run('format', kFormat, async (dir) => {
    const r = await stageFormat(clean({ work: dir, quiet, domain, qa: join(out, 'synth', 'qa.jsonl'), chunks: join(out, 'dedupe', 'chunks.dedup.jsonl'), valFraction: d.val, seed: d.seed }));
    return Object.fromEntries(r.sets.map((s) => [s.name, { train: s.train.length, val: s.val.length }]));
  });
  const kSets = stageKey('sets', { v: 1 }, [kFormat]);
  const setsRec = await st.run('sets', kSets, async (dir) => (await buildAdapterSets(join(out, 'format', 'sets'), join(out, 'dedupe', 'chunks.dedup.jsonl'), domain, dir)) as unknown as Record<string, unknown>);
  const labelSets = (setsRec.summary as { labelSets: LabelSets }).labelSets;
  if (stop('sets')) return result;

  // ---- training
  const sets = join(out, 'sets');
  const keys: Record<string, string> = {};
  const trainStage = async (stage: TrainStage, base: { dir: string; key: string }, data: { train: string; val?: string; type: 'completion' | 'chat_template' | 'preference' }, from?: { dir: string; key: string }) => {
    const defaults: Record<string, unknown> = { ...COMMON_DEFAULTS, ...STAGE_DEFAULTS[stage] };
    const method = stage.startsWith('dpo') ? cfg.preference : (defaults.method as string);
    // the DPO defaults' reference settings mean nothing to ORPO (no reference model): dropped with preference: orpo
    if (method !== 'dpo') for (const k of ['rl_adapter_ref_model', 'precompute_ref_log_probs', 'rpo_alpha']) delete defaults[k];
    const raw: Record<string, unknown> = { ...defaults, method, ...cfg.train, ...(cfg.stages[stage] ?? {}) };
    const maxSteps = typeof raw.max_steps === 'number' ? raw.max_steps : undefined;
    const tc = validateTrainConfig(
      {
        ...raw,
        method,
        base_model: base.dir,
        datasets: [{ path: data.train, type: data.type }],
        ...(data.val ? { test_datasets: [{ path: data.val, type: data.type }] } : {}),
        ...(from ? { lora_model_dir: from.dir } : {}),
        output_dir: st.dir(stage),
        eval_steps: raw.eval_steps ?? maxSteps ?? 1000,
        save_steps: raw.save_steps ?? Math.max(2, Math.ceil((maxSteps ?? 8) / 4)),
      },
      `pipeline stage ${stage}`,
    );
    const { output_dir: _o, base_model: _b, lora_model_dir: _l, ...settings } = tc;
    const key = stageKey(stage, settings, [base.key, from?.key ?? '', keys.sets!]);
    keys[stage] = key;
    const device = (rt ??= await Runtime.create());
    {
      await st.run(stage, key, async (_dir, resuming) => {
        let bar: Progress | null = null;
        const r = await runTraining({
          config: tc, baseDir: '', io, rt: device, openSource: (p) => openModelSource(p), resume: resuming,
          say: (m) => quiet || say(`  ${m}`),
          onProgress: (step, total, loss) => {
            bar ??= new Progress(stage, total, !quiet);
            bar.update(step, `loss ${loss.toFixed(4)}`);
          },
        });
        const log = await readLog(join(st.dir(stage), 'train_log.jsonl'));
        const evals = log.filter((e) => e.eval_loss !== undefined);
        return { method: tc.method, steps: r.steps, resumedFrom: r.resumedFrom, trainItems: r.trainItems, evalItems: r.evalItems, first_loss: log.find((e) => e.loss !== undefined)?.loss, last_loss: [...log].reverse().find((e) => e.loss !== undefined)?.loss, eval_first: evals[0] ?? null, eval_last: evals.at(-1) ?? null };
      });
    }
    return { dir: st.dir(stage), key };
  };
  keys.sets = kSets;
  const baseRef = { dir: model, key: modelKey };
  const cpt = await trainStage('cpt', baseRef, { train: join(sets, 'cpt.jsonl'), type: 'completion' });
  if (stop('cpt')) return result;
  const kMerge = stageKey('domain-base', {}, [cpt.key, modelKey]);
  await st.run('domain-base', kMerge, async (dir) => {
    const r = await mergeAdapter(openModelSource(model), openModelSource(cpt.dir), io, dir);
    return { merged: r.merged, tensors: r.tensors };
  });
  const dbase = { dir: st.dir('domain-base'), key: kMerge };
  if (stop('domain-base')) return result;
  const sft: Record<string, { dir: string; key: string }> = {};
  for (const t of ['chat', 'tool', 'classifier', 'ner'] as const) {
    sft[t] = await trainStage(t, dbase, { train: join(sets, `${t}.train.jsonl`), val: join(sets, `${t}.val.jsonl`), type: 'chat_template' });
    if (stop(t)) return result;
  }
  const pref: Record<string, { dir: string; key: string }> = {};
  for (const [stage, src, set] of [['dpo_tool', 'tool', 'dpo-tool'], ['dpo_chat', 'chat', 'dpo-chat']] as const) {
    const val = join(sets, `${set}.val.jsonl`);
    pref[src] = await trainStage(stage, dbase, { train: join(sets, `${set}.train.jsonl`), val: (await readFile(val, 'utf8')).trim() ? val : undefined, type: 'preference' }, sft[src]);
    if (stop(stage)) return result;
  }
  // the served adapters by name
  const served: Record<string, string> = { chat_adapter: pref.chat!.dir, tool_adapter: pref.tool!.dir, classifier_adapter: sft.classifier!.dir, ner_adapter: sft.ner!.dir };
  await rm(result.adaptersDir, { recursive: true, force: true });
  await mkdir(result.adaptersDir, { recursive: true });
  for (const [name, dir] of Object.entries(served)) await symlink(join('..', dir.split('/').pop()!), join(result.adaptersDir, name));

  // ---- router
  const kRouter = stageKey('router', cfg.router, [kFormat]);
  await st.run('router', kRouter, async (dir) => {
    const r = await buildRouter({ data: join(out, 'format', 'sets'), out: join(dir, 'router.json'), epochs: cfg.router.epochs, dim: cfg.router.dim, seed: cfg.router.seed });
    return { counts: r.counts, fit: r.fit, eval: { n: r.evalVal.n, accuracy: r.evalVal.accuracy, adapterAccuracy: r.evalVal.adapterAccuracy, confusion: r.evalVal.confusion, perRoute: r.evalVal.perRoute } };
  });
  if (stop('router')) return result;

  // ---- evaluation
  const kEval = stageKey('eval', cfg.eval, [kMerge, ...Object.values(sft).map((x) => x.key), ...Object.values(pref).map((x) => x.key)]);
  await st.run('eval', kEval, async (dir) => {
    const dom = JSON.parse(await readFile(domain, 'utf8')) as { tools?: (ToolDef & { queries?: unknown })[]; entities?: { type?: string; name?: string }[] | Record<string, unknown> };
    const tools: ToolDef[] = (dom.tools ?? []).map((t) => ({ name: t.name, description: t.description, parameters: t.parameters }));
    const types = Array.isArray(dom.entities) ? dom.entities.map((e) => e.type ?? e.name ?? '').filter(Boolean) : Object.keys(dom.entities ?? {});
    const max = cfg.eval.max_rows;
    const val = async (t: string) => spread(await readJsonl(join(sets, `${t}.val.jsonl`)), max);
    rt ??= await Runtime.create();
    const engine = await createEngine({
      device: rt,
      model: dbase.dir,
      adapters: { ...served, tool_sft: sft.tool!.dir, chat_sft: sft.chat!.dir },
      lora: { maxRank: 64, maxSlots: 8 },
    });
    const base = engine.modelName;
    const results: Record<string, Record<string, TaskScores>> = {};
    const examples: Record<string, Example[]> = {};
    const bar = new Progress('eval', 10, !quiet);
    let done = 0;
    const step = async (task: string, who: string, f: (ex: Example[]) => Promise<TaskScores>) => {
      const ex: Example[] = [];
      (results[task] ??= {})[who] = await f(ex);
      examples[`${task}/${who}`] = ex;
      bar.update(++done, `${task} ${who}`);
    };
    try {
      const cls = await val('classifier');
      await step('classifier', 'domain-base', (ex) => evalClassifier(engine, base, cls, labelSets, ex));
      await step('classifier', 'classifier_adapter', (ex) => evalClassifier(engine, 'classifier_adapter', cls, labelSets, ex));
      const tool = await val('tool');
      await step('tool', 'domain-base', (ex) => evalTool(engine, base, tool, tools, {}, ex));
      await step('tool', 'tool_sft', (ex) => evalTool(engine, 'tool_sft', tool, tools, {}, ex));
      await step('tool', 'tool_adapter', (ex) => evalTool(engine, 'tool_adapter', tool, tools, {}, ex));
      if (cfg.eval.unconstrained_tool) await step('tool_unconstrained', 'tool_adapter', (ex) => evalTool(engine, 'tool_adapter', tool, tools, { constrained: false }, ex));
      const ner = await val('ner');
      await step('ner', 'domain-base', (ex) => evalNer(engine, base, ner, types, ex));
      await step('ner', 'ner_adapter', (ex) => evalNer(engine, 'ner_adapter', ner, types, ex));
      const chat = await val('chat');
      await step('chat', 'domain-base', (ex) => evalChat(engine, base, chat, ex));
      await step('chat', 'chat_sft', (ex) => evalChat(engine, 'chat_sft', chat, ex));
      await step('chat', 'chat_adapter', (ex) => evalChat(engine, 'chat_adapter', chat, ex));
    } finally {
      await engine.destroy();
    }
    await writeFile(join(dir, 'eval.json'), JSON.stringify({ results, examples }, null, 2));
    return { results };
  });

  // ---- report (always rewritten: it also records which stages were cached in this run)
  rt ??= await Runtime.create();
  const rep = await collectReport(out, st.records, model, labelSets, rt);
  result.report = await writeReport(join(out, 'report'), rep);
  say(`report → ${result.report.md} and ${result.report.html}`);
  say(`serve it: lorafleet serve --model ${result.domainBase} --adapters ${result.adaptersDir}`);
  return result;
  } finally {
    if (!o.rt) rt?.destroyAll();
  }
}

async function collectReport(out: string, records: StageRecord[], model: string, labelSets: LabelSets, rt: Runtime): Promise<PipelineReport> {
  const losses: PipelineReport['losses'] = {};
  for (const r of records) {
    const log = await readLog(join(out, r.stage, 'train_log.jsonl'));
    if (log.length) losses[r.stage] = { train: log.filter((e) => e.loss !== undefined).map((e) => [e.step!, e.loss!]), eval: log.filter((e) => e.eval_loss !== undefined).map((e) => [e.step!, e.eval_loss!]), log };
  }
  const ev = existsSync(join(out, 'eval', 'eval.json')) ? (JSON.parse(await readFile(join(out, 'eval', 'eval.json'), 'utf8')) as { results: PipelineReport['eval']; examples: PipelineReport['examples'] }) : null;
  const router = records.find((r) => r.stage === 'router')?.summary as PipelineReport['router'];
  const info = rt.info;
  const os = await import('node:os');
  return {
    generatedAt: new Date().toISOString(),
    model,
    machine: { cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`, memoryGiB: Math.round(os.totalmem() / 2 ** 30), loadavg: os.loadavg().map((x) => Math.round(x * 10) / 10), node: process.version, platform: `${os.platform()} ${os.release()}` },
    adapter: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description },
    stages: records.map((r) => ({ stage: r.stage, seconds: r.seconds, skipped: r.skipped, resumed: r.resumed, summary: r.summary })),
    losses,
    eval: ev?.results ?? {},
    examples: ev?.examples ?? {},
    router: router ?? null,
    labelSets,
  };
}

export async function pipelineCli(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        docs: { type: 'string' }, out: { type: 'string' }, model: { type: 'string' }, domain: { type: 'string' }, config: { type: 'string' },
        'teacher-url': { type: 'string' }, 'teacher-model': { type: 'string' }, 'api-key': { type: 'string' }, until: { type: 'string' },
        quiet: { type: 'boolean', short: 'q' }, help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(`lorafleet pipeline: ${(e as Error).message}\n${PIPELINE_USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(PIPELINE_USAGE);
    return 0;
  }
  if (!values.docs || !values.out) {
    process.stderr.write(`lorafleet pipeline: --docs and --out are required\n${PIPELINE_USAGE}`);
    return 2;
  }
  const config = await loadPipelineConfig(values.config);
  const r = await runPipeline({ docs: values.docs, out: values.out, model: values.model, domain: values.domain, config, teacherUrl: values['teacher-url'], teacherModel: values['teacher-model'], apiKey: values['api-key'] ?? process.env.OPENAI_API_KEY, quiet: values.quiet, until: values.until });
  const total = r.records.reduce((a, x) => a + (x.skipped ? 0 : x.seconds), 0);
  process.stderr.write(`pipeline: ${r.records.filter((x) => !x.skipped).length} stages ran (${total.toFixed(1)} s), ${r.records.filter((x) => x.skipped).length} cached\n`);
  return 0;
}

export const isEntry = (url: string): boolean => {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(url));
  } catch {
    return false;
  }
};
