// Shared bench plumbing: where a benchmark's model directory comes from, and how the adapter is logged.
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Runtime } from '../shaders/gpu/runtime.ts';
import { writeRandomModel, type PresetName } from '../tests/helpers/random-model.ts';

/**
 * The model dir for a bench entry: `realDir` when there is no preset, else a random-weight model
 * of that preset's real shapes, written once into `cacheDir/<preset>` (a `.complete` marker
 * makes an interrupted write start over).
 */
export async function benchModelDir(preset: PresetName | null | undefined, realDir: string, cacheDir: string, log: (s: string) => void): Promise<string> {
  if (!preset) return realDir;
  const dir = join(cacheDir, preset);
  if (!existsSync(join(dir, '.complete'))) {
    log(`writing random ${preset} model to ${dir} ...`);
    await writeRandomModel(dir, preset, { seed: 1 });
    writeFileSync(join(dir, '.complete'), '');
  }
  return dir;
}

export function adapterLine(rt: Runtime): string {
  const i = rt.info;
  return `adapter: ${i.vendor} ${i.architecture} ${i.description} (${i.backend}, cpu=${i.isCpu})`;
}

/** Runs a bench's `run(argv)` when its file is the process's entry (`npx tsx bench/<name>/run.ts ...`). */
export function runIfMain(moduleUrl: string, run: (argv: string[]) => Promise<number | void>): void {
  const entry = process.argv[1];
  if (!entry || pathToFileURL(resolve(entry)).href !== moduleUrl) return;
  run(process.argv.slice(2)).then(
    (code) => process.exit(typeof code === 'number' ? code : 0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
