// `lorafleet bench <name> [options]`: runs bench/<name>/run.ts's exported `run(argv)`
// (kernels, decode, multi-lora, ... — any bench directory that follows that convention).
import { readdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const benchRoot = join(dirname(fileURLToPath(import.meta.url)), '../bench');

function available(): string[] {
  try {
    return readdirSync(benchRoot, { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(benchRoot, d.name, 'run.ts')))
      .map((d) => d.name)
      .sort();
  } catch {
    return [];
  }
}

const usage = () => `usage: lorafleet bench <${available().join('|')}> [--json] [bench options]\n`;

export async function benchCli(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  if (!/^[\w-]+$/.test(name) || !available().includes(name)) {
    process.stderr.write(`lorafleet bench: unknown bench '${name}'\n${usage()}`);
    return 2;
  }
  const mod = (await import(`../bench/${name}/run.ts`)) as { run?: (argv: string[]) => Promise<number | void> };
  if (typeof mod.run !== 'function') {
    process.stderr.write(`lorafleet bench ${name}: bench/${name}/run.ts does not export run(argv)\n`);
    return 1;
  }
  const code = await mod.run(rest);
  return typeof code === 'number' ? code : 0;
}
