// Sampling / row-reduction bench: argmax, topk, softmax, rmsnorm and GPU sampling (every phase
// combination) on one logits row of vocab V, as best wall-clock ms per call and as a ratio
// against argmax (one pass over the row) measured in the same run. Interleaved rounds, best
// round kept, so load spikes from other processes hit every case alike.
//
//   npx tsx bench/sampling/run.ts [--vocab 49152,151936] [--rows 1] [--rounds 8]
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { cpus, loadavg } from 'node:os';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { randomArray } from '../../shaders/lib/check.ts';
import { argmax } from '../../shaders/argmax/argmax.ts';
import { topk } from '../../shaders/topk/topk.ts';
import { softmax } from '../../shaders/softmax/softmax.ts';
import { rmsnorm } from '../../shaders/rmsnorm/rmsnorm.ts';
import { sample, packSampleParams, type SampleParams } from '../../shaders/sample/sample.ts';

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const VOCABS = (opt('--vocab') ?? '49152,151936').split(',').map(Number);
const ROWS = Number(opt('--rows') ?? 1);
const ROUNDS = Number(opt('--rounds') ?? 8);

const SAMPLE_CASES: Record<string, SampleParams> = {
  greedy: { temperature: 0 },
  temperature: { temperature: 1, seed: 1 },
  'top-k 40': { temperature: 1, topK: 40, seed: 2 },
  'top-p 0.9': { temperature: 1, topP: 0.9, seed: 3 },
  'top-k 40 + top-p 0.95': { temperature: 0.8, topK: 40, topP: 0.95, seed: 4 },
};

const rt = await Runtime.create();
console.log(`${rt.info.description || rt.info.vendor} · ${cpus().length} cores · load ${loadavg().map((l) => l.toFixed(1)).join(' ')} · rows ${ROWS}`);
for (const V of VOCABS) {
  const x = rt.upload(randomArray(ROWS * V, 3, 4));
  const tmp = rt.createBuffer(ROWS * V * 4);
  const w = rt.upload(randomArray(V, 4));
  const out = rt.createBuffer(Math.max(ROWS * V, 64) * 4);
  const ids = rt.createBuffer(ROWS * 64 * 4);
  const cases: Array<[string, () => void]> = [
    ['argmax', () => argmax(rt, x, ROWS, V, ids)],
    ['topk 20', () => topk(rt, x, ROWS, V, 20, out, ids)],
    ['softmax (copy + in place)', () => { rt.copy(x, 0, tmp, 0, ROWS * V * 4); softmax(rt, tmp, ROWS, V); }],
    ['rmsnorm (as a row of V)', () => rmsnorm(rt, x, w, out, ROWS, V, 1e-5)],
  ];
  for (const [name, prm] of Object.entries(SAMPLE_CASES)) {
    const rows = Array.from({ length: ROWS }, (_, r) => ({ ...prm, step: r }));
    const gp = rt.upload(new Uint8Array(packSampleParams(rows)));
    cases.push([`sample ${name}`, () => sample(rt, x, ROWS, V, gp, ids, { rowParams: rows })]);
    if (name === 'top-k 40 + top-p 0.95') cases.push([`sample ${name} (no rowParams hint)`, () => sample(rt, x, ROWS, V, gp, ids)]);
  }
  const best = new Map<string, number>();
  for (const [, f] of cases) { f(); await rt.sync(); } // compile + warm up
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, f] of cases) {
      const t = performance.now();
      f();
      await rt.sync();
      best.set(name, Math.min(best.get(name) ?? Infinity, performance.now() - t));
    }
  }
  const base = best.get('argmax')!;
  console.log(`\nvocab ${V}`);
  for (const [name] of cases) console.log(`  ${name.padEnd(44)} ${best.get(name)!.toFixed(2).padStart(8)} ms  ${(best.get(name)! / base).toFixed(1).padStart(6)}× argmax`);
  for (const b of [x, tmp, w, out, ids]) rt.destroy(b);
}
rt.destroyAll();
