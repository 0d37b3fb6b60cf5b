// Dev-set comparison of `route build` variants (exploration, llm.c's dev/ habit): the data engine's
// offline run on the sample domain, then buildRouter per variant and build seed, evaluated on the dev
// sets only (router/testdata/dev*.jsonl — never the held-out set, which the accuracy test reads).
//   npx tsx bench/router/dev.ts [--seeds 7,3,11] [--work DIR] [--errors] [--with-defaults] ['name={"…BuildOptions…"}' …]
// Prints adapter accuracy per variant and seed, the mean, and per-route precision/recall (seed 7).
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAll } from '../../trainer/data/pipeline.ts';
import { buildRouter, type BuildOptions } from '../../router/build.ts';
import type { LabeledExample } from '../../router/router.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const args = process.argv.slice(2);
const opt = (k: string) => {
  const i = args.indexOf(k);
  return i >= 0 ? args.splice(i, 2)[1] : undefined;
};
const flag = (k: string) => {
  const i = args.indexOf(k);
  return i >= 0 ? (args.splice(i, 1), true) : false;
};
const seeds = (opt('--seeds') ?? '7,3,11').split(',').map(Number);
let work = opt('--work');
const showErrors = flag('--errors');
const withDefaults = flag('--with-defaults');
const variants: [string, Partial<BuildOptions>][] = [['defaults', {}]];
for (const a of args) {
  const at = a.indexOf('=');
  variants.push([a.slice(0, at), JSON.parse(a.slice(at + 1)) as Partial<BuildOptions>]);
}
if (args.length && !withDefaults) variants.shift();

const devFiles = ['dev.jsonl', 'dev2.jsonl', 'dev3.jsonl'].map((f) => join(root, 'router/testdata', f)).filter(existsSync);
const perFile = devFiles.map((f) => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LabeledExample));
const dev: LabeledExample[] = perFile.flat();
const tmp = await mkdtemp(join(tmpdir(), 'lorafleet-router-dev-'));
try {
  if (!work || !existsSync(join(work, 'sets'))) {
    work ??= join(tmp, 'data');
    const tokenizer = join(root, '..', 'shared/models/stories260K');
    await runAll(join(root, 'trainer/data/samples/harborline'), { work, quiet: true, tokenizer: existsSync(tokenizer) ? tokenizer : undefined });
  }
  console.log(`dev sets: ${devFiles.map((f) => f.split('/').pop()).join(' + ')} (${dev.length} requests); data: ${work}`);
  for (const [name, o] of variants) {
    const accs: number[] = [];
    const fileAcc = perFile.map(() => 0);
    let detail = '';
    for (const seed of seeds) {
      const res = await buildRouter({ data: work, out: join(tmp, `${name}-${seed}`, 'router.json'), seed, ...o });
      const rep = await res.router.evaluate(dev);
      accs.push(rep.adapterAccuracy);
      for (const [i, rows] of perFile.entries()) fileAcc[i]! += (await res.router.evaluate(rows)).adapterAccuracy / seeds.length;
      if (seed === seeds[0]) {
        detail = Object.entries(rep.perRoute).map(([r, p]) => `${r} ${(100 * p.precision).toFixed(1)}/${(100 * p.recall).toFixed(1)}`).join('  ');
        if (showErrors) detail += '\n' + rep.errors.map((e) => `    ${e.expected} → ${e.got} (${e.score.toFixed(3)}): ${e.text}`).join('\n');
      }
      await res.router.dispose();
    }
    const mean = accs.reduce((a, b) => a + b, 0) / accs.length;
    const files = fileAcc.map((a, i) => `${devFiles[i]!.split('/').pop()!.replace('.jsonl', '')} ${(100 * a).toFixed(1)}`).join(', ');
    console.log(`${name.padEnd(24)} ${accs.map((a) => (100 * a).toFixed(1)).join(' / ')}  mean ${(100 * mean).toFixed(1)} (${files})   P/R (seed ${seeds[0]}): ${detail}`);
  }
} finally {
  await rm(tmp, { recursive: true, force: true });
}
