/**
 * `lorafleet data <ingest|chunk|dedupe|synth|format|run|report> …` — also runnable directly:
 *   npx tsx trainer/data/cli.ts run trainer/data/samples/harborline --out /tmp/hl --tokenizer ../shared/models/stories260K
 */
import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { KeepPolicy } from './dedupe.ts';
import { renderReport, type Stats } from './report.ts';
import { runAll, stageChunk, stageDedupe, stageFormat, stageIngest, stageSynth, type SynthOptions } from './pipeline.ts';

const HELP = `lorafleet data — raw domain documents to training sets

  data ingest <dir> --out <work> [--log-year YYYY] [--max-file-mb 10]
  data chunk --out <work> --tokenizer <dir with tokenizer.json> [--target 256] [--overlap 32]
  data dedupe --out <work> [--keep canonical|newest|first]   which copy of a duplicate survives
  data synth --out <work> [--chunks <file>] [--domain <domain.json>]   offline extractive generator (no teacher)
  data synth --out <work> --teacher-url <http://host/v1> --model <name> [--api-key K] [--judge-model M]
             [--concurrency 4] [--pairs 4] [--threshold 4] [--max-attempts 4] [--cache <dir>] [--with-extractive]
  data format --out <work> --domain <domain.json> [--val 0.15] [--seed 7]
  data run <dir> --out <work> [--domain <dir>/domain.json] --tokenizer <dir> [all options above]
  data report --out <work>                                   re-render report.md

Every stage reads and writes <work>; report.md there is updated after each stage.
The API key may also come from OPENAI_API_KEY.`;

const OPTIONS = {
  out: { type: 'string', short: 'o' },
  tokenizer: { type: 'string' },
  target: { type: 'string' },
  overlap: { type: 'string' },
  'log-year': { type: 'string' },
  'max-file-mb': { type: 'string' },
  keep: { type: 'string' },
  chunks: { type: 'string' },
  domain: { type: 'string' },
  'teacher-url': { type: 'string' },
  model: { type: 'string' },
  'judge-model': { type: 'string' },
  'api-key': { type: 'string' },
  concurrency: { type: 'string' },
  pairs: { type: 'string' },
  threshold: { type: 'string' },
  'max-attempts': { type: 'string' },
  'backoff-ms': { type: 'string' },
  cache: { type: 'string' },
  'with-extractive': { type: 'boolean' },
  val: { type: 'string' },
  seed: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} as const;

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${v}`);
  return n;
}

export async function dataCli(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(`${HELP}\n`);
    return cmd ? 0 : 1;
  }
  const { values: v, positionals } = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true });
  if (v.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const work = v.out;
  if (!work) {
    process.stderr.write('data: --out <work dir> is required\n');
    return 2;
  }
  const common = { work: resolve(work), quiet: v.quiet };
  const teacher: SynthOptions['teacher'] = v['teacher-url']
    ? {
        baseURL: v['teacher-url'],
        model: v.model ?? 'teacher',
        judgeModel: v['judge-model'],
        apiKey: v['api-key'],
        concurrency: num(v.concurrency, 'concurrency'),
        pairsPerChunk: num(v.pairs, 'pairs'),
        threshold: num(v.threshold, 'threshold'),
        maxAttempts: num(v['max-attempts'], 'max-attempts'),
        backoffMs: num(v['backoff-ms'], 'backoff-ms'),
        cacheDir: v.cache ? resolve(v.cache) : undefined,
      }
    : undefined;
  const chunkOpts = { tokenizer: v.tokenizer, targetTokens: num(v.target, 'target'), overlapTokens: num(v.overlap, 'overlap') };
  const fmtOpts = { valFraction: num(v.val, 'val'), seed: num(v.seed, 'seed') };
  const keepPolicy = (x: string | undefined): KeepPolicy | undefined => {
    if (x === undefined) return undefined;
    if (x !== 'canonical' && x !== 'newest' && x !== 'first') throw new Error(`--keep must be canonical, newest or first, got ${x}`);
    return x;
  };
  const mbytes = (x: string | undefined) => {
    const n = num(x, 'max-file-mb');
    return n === undefined ? undefined : Math.round(n * 1024 * 1024);
  };
  const clean = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as T;
  const say = (s: string) => {
    if (!v.quiet) process.stderr.write(`${s}\n`);
  };
  switch (cmd) {
    case 'ingest': {
      const input = positionals[0];
      if (!input) throw new Error('data ingest <dir> --out <work>');
      const docs = await stageIngest(resolve(input), clean({ ...common, logYear: num(v['log-year'], 'log-year'), maxFileBytes: mbytes(v['max-file-mb']) }));
      say(`ingested ${docs.length} documents → ${join(common.work, 'docs.jsonl')}`);
      return 0;
    }
    case 'chunk': {
      const chunks = await stageChunk(clean({ ...common, ...chunkOpts }));
      say(`${chunks.length} chunks → ${join(common.work, 'chunks.jsonl')}`);
      return 0;
    }
    case 'dedupe':
      await stageDedupe(clean({ ...common, chunks: v.chunks, keep: keepPolicy(v.keep) }));
      return 0;
    case 'synth': {
      const pairs = await stageSynth(clean({ ...common, chunks: v.chunks, teacher: teacher && clean(teacher), withExtractive: v['with-extractive'], domain: v.domain ? resolve(v.domain) : undefined }));
      say(`${pairs.length} Q&A pairs → ${join(common.work, 'qa.jsonl')}`);
      return 0;
    }
    case 'format': {
      if (!v.domain) throw new Error('data format needs --domain <domain.json>');
      const res = await stageFormat(clean({ ...common, ...fmtOpts, domain: resolve(v.domain), chunks: v.chunks }));
      for (const s of res.sets) say(`${s.name.padEnd(26)} ${String(s.train.length).padStart(5)} train ${String(s.val.length).padStart(5)} val`);
      say(`report → ${join(common.work, 'report.md')}`);
      return 0;
    }
    case 'run': {
      const input = positionals[0];
      if (!input) throw new Error('data run <dir> --out <work>');
      const res = await runAll(
        resolve(input),
        clean({ ...common, ...chunkOpts, ...fmtOpts, domain: v.domain ? resolve(v.domain) : undefined, logYear: num(v['log-year'], 'log-year'), maxFileBytes: mbytes(v['max-file-mb']), keep: keepPolicy(v.keep), teacher: teacher && clean(teacher), withExtractive: v['with-extractive'] }),
      );
      for (const s of res.sets) say(`${s.name.padEnd(26)} ${String(s.train.length).padStart(5)} train ${String(s.val.length).padStart(5)} val`);
      say(`report → ${join(common.work, 'report.md')}`);
      return 0;
    }
    case 'report': {
      const s = JSON.parse(await readFile(join(common.work, 'stats.json'), 'utf8')) as Stats;
      process.stdout.write(renderReport(s));
      return 0;
    }
    default:
      process.stderr.write(`data: unknown subcommand '${cmd}'\n\n${HELP}\n`);
      return 2;
  }
}

function isEntry(): boolean {
  try {
    return Boolean(process.argv[1]) && realpathSync(process.argv[1] as string) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) {
  dataCli(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`data: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
