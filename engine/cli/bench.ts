// `lorafleet bench <name> [options]`: runs bench/<name>/run.ts's exported `run(argv)`.
const BENCHES = ['kernels', 'decode', 'multi-lora'] as const;

const USAGE = `usage: lorafleet bench <${BENCHES.join('|')}> [--json] [bench options]\n`;

export async function benchCli(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(USAGE);
    return name ? 0 : 2;
  }
  if (!(BENCHES as readonly string[]).includes(name)) {
    process.stderr.write(`lorafleet bench: unknown bench '${name}'\n${USAGE}`);
    return 2;
  }
  let mod: { run?: (argv: string[]) => Promise<number | void> };
  try {
    mod = (await import(`../../bench/${name}/run.ts`)) as typeof mod;
  } catch (e) {
    process.stderr.write(`lorafleet bench ${name}: cannot load bench/${name}/run.ts (${(e as Error).message})\n`);
    return 1;
  }
  if (typeof mod.run !== 'function') {
    process.stderr.write(`lorafleet bench ${name}: bench/${name}/run.ts does not export run(argv)\n`);
    return 1;
  }
  const code = await mod.run(rest);
  return typeof code === 'number' ? code : 0;
}
