// Stage cache for `lorafleet pipeline`: every stage owns <out>/<stage>/ and a manifest
// <out>/.stages/<stage>.json = { key, state: running | done, seconds, summary }. The key is the
// SHA-256 of the stage name, its settings, the keys of the stages it reads and the bytes of any
// input files it names. A rerun with the same key skips a done stage; a running one (killed) is
// entered again with its directory kept, so the trainer resumes from its newest checkpoint; a
// changed key wipes the directory and starts over.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile, rename } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { z } from 'zod';

export const ManifestSchema = z.object({
  stage: z.string(),
  key: z.string(),
  state: z.enum(['running', 'done']),
  startedAt: z.string(),
  seconds: z.number().optional(),
  summary: z.record(z.unknown()).optional(),
});
export type Manifest = z.infer<typeof ManifestSchema>;

export interface StageRecord {
  stage: string;
  key: string;
  skipped: boolean;
  resumed: boolean;
  seconds: number;
  summary: Record<string, unknown>;
}

/** SHA-256 over every file under `path` (relative names + bytes), in sorted order. */
export async function hashPath(path: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (p: string): Promise<void> => {
    const s = await stat(p);
    if (s.isDirectory()) {
      for (const e of (await readdir(p)).sort()) await walk(join(p, e));
    } else {
      h.update(relative(path, p) || '.');
      h.update('\0');
      h.update(await readFile(p));
      h.update('\0');
    }
  };
  await walk(path);
  return h.digest('hex');
}

/** Bumped when a stage's code changes what it writes (old caches then rerun). */
export const PIPELINE_VERSION = 4;

export function stageKey(stage: string, settings: unknown, parts: string[]): string {
  return createHash('sha256').update(JSON.stringify({ v: PIPELINE_VERSION, stage, settings, parts })).digest('hex').slice(0, 32);
}

async function writeJsonAtomic(path: string, v: unknown): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(v, null, 2));
  await rename(tmp, path);
}

export class StageRunner {
  readonly records: StageRecord[] = [];
  constructor(
    readonly out: string,
    private readonly say: (m: string) => void,
  ) {}

  dir(stage: string): string {
    return join(this.out, stage);
  }

  async manifest(stage: string): Promise<Manifest | null> {
    const p = join(this.out, '.stages', `${stage}.json`);
    if (!existsSync(p)) return null;
    const r = ManifestSchema.safeParse(JSON.parse(await readFile(p, 'utf8')));
    if (!r.success) throw new Error(`${p}: corrupt stage manifest (${r.error.issues[0]?.path.join('.')}: ${r.error.issues[0]?.message}); delete it to rerun the stage`);
    return r.data;
  }

  /**
   * Run `fn` for `stage` unless a done manifest with the same key exists. `fn` gets the stage
   * directory (kept when resuming a killed run of the same key) and returns a JSON summary.
   */
  async run(stage: string, key: string, fn: (dir: string, resuming: boolean) => Promise<Record<string, unknown>>): Promise<StageRecord> {
    await mkdir(join(this.out, '.stages'), { recursive: true });
    const dir = this.dir(stage);
    const m = await this.manifest(stage);
    if (m && m.key === key && m.state === 'done') {
      const rec = { stage, key, skipped: true, resumed: false, seconds: m.seconds ?? 0, summary: m.summary ?? {} };
      this.say(`${stage.padEnd(16)} cached (${key.slice(0, 12)}, ran ${(m.seconds ?? 0).toFixed(1)} s)`);
      this.records.push(rec);
      return rec;
    }
    const resuming = !!m && m.key === key && m.state === 'running' && existsSync(dir);
    if (!resuming) await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const startedAt = new Date().toISOString();
    await writeJsonAtomic(join(this.out, '.stages', `${stage}.json`), { stage, key, state: 'running', startedAt } satisfies Manifest);
    this.say(`${stage.padEnd(16)} ${resuming ? 'resuming' : 'running'} (${key.slice(0, 12)})`);
    const t0 = performance.now();
    const summary = await fn(dir, resuming);
    const seconds = (performance.now() - t0) / 1000;
    await writeJsonAtomic(join(this.out, '.stages', `${stage}.json`), { stage, key, state: 'done', startedAt, seconds, summary } satisfies Manifest);
    this.say(`${stage.padEnd(16)} done in ${seconds.toFixed(1)} s`);
    const rec = { stage, key, skipped: false, resumed: resuming, seconds, summary };
    this.records.push(rec);
    return rec;
  }
}
