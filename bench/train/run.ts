// bench/train: training tokens/s ÷ forward-only tokens/s on the same shapes (one micro-batch of
// packed rows; forward-only = the trainer's forward without saving, i.e. logps(train: false)), peak
// activation bytes the backend held with and without per-layer recomputation, and — with
// --against <checkout> — the same step of another checkout's trainer (e.g. main before a change)
// in the same process, interleaved round by round, so that both see the same host load.
// Median and spread over rounds; host load recorded. Writes bench/train/results.md.
//
//   npx tsx bench/train/run.ts [--model <dir>] [--rows 8x64,10x100] [--rounds 3] [--against /path/to/other/checkout] [--no-write]
//
// --rows: per case, <rows>x<tokens per row> (one document per row, every token a target).
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { parseArgs } from 'node:util';
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { execSync } from 'node:child_process';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { GpuModel } from '../../engine/forward/gpu-model.ts';
import { LocalDirSource } from '../../engine/model/source.ts';
import { LORA_MODULES } from '../../engine/lora/hook.ts';
import { scalingFor } from '../../engine/lora/peft.ts';
import { GpuTrainBackend } from '../../trainer/train/gpu-backend.ts';
import { initLora } from '../../trainer/train/backend.ts';
import { Rng } from '../../shaders/lib/random.ts';

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const spread = (a: number[]) => `${Math.min(...a).toFixed(0)}–${Math.max(...a).toFixed(0)}`;

interface Step { logps(rows: unknown[], o: { adapter: boolean; train: boolean }): Promise<unknown>; backward(w: Float64Array[]): Promise<void>; clipGradients(n: number): Promise<number>; optimizerStep(lr: number, h: object): Promise<void>; peakBytes(): number; destroy(): void }

/** Another checkout's runtime, model and backend (same constructor signatures), loaded from its sources. */
async function loadCheckout(dir: string, modelDir: string) {
  const imp = (p: string) => import(`${dir}/${p}`);
  await imp('engine/node-install.ts');
  const [{ Runtime: R }, { GpuModel: M }, { LocalDirSource: S }, { GpuTrainBackend: B }] = await Promise.all([
    imp('shaders/gpu/runtime.ts'), imp('engine/forward/gpu-model.ts'), imp('engine/model/source.ts'), imp('trainer/train/gpu-backend.ts'),
  ]);
  const rt = await R.create();
  const model = await M.load(rt, new S(modelDir));
  let rev = '';
  try { rev = execSync(`git -C ${dir} rev-parse --short HEAD`, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); } catch { /* not a git checkout */ }
  return { rt, model, make: (setup: object, init: object, opts?: object) => new B(rt, model, setup, init, opts) as Step, rev };
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { model: { type: 'string' }, rows: { type: 'string' }, T: { type: 'string' }, rounds: { type: 'string' }, against: { type: 'string' }, 'no-write': { type: 'boolean' } } });
  const dir = values.model ?? new URL('../../../shared/models/stories260K', import.meta.url).pathname;
  const rounds = Number(values.rounds ?? 3);
  const specs = (values.rows ?? (values.T ? `1x${values.T}` : '8x64,10x100')).split(',').map((s) => s.split('x').map(Number) as [number, number]);
  const rt = await Runtime.create();
  const model = await GpuModel.load(rt, new LocalDirSource(dir));
  const other = values.against ? await loadCheckout(values.against, dir) : null;
  const c = model.config;
  const setup = { r: 16, alpha: 32, useRslora: false, scaling: scalingFor(32, 16, false), modules: [...LORA_MODULES], dropout: 0 };
  const init = initLora(c, 16, setup.modules, 1);
  let rev = '';
  try { rev = execSync('git rev-parse --short HEAD', { cwd: new URL('.', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); } catch { /* not a git checkout */ }
  const load0 = loadavg()[0]!;
  const md = [
    `# bench/train results`,
    ``,
    `Model ${dir.split('/').at(-1)} (hidden ${c.hiddenSize}, ${c.numLayers} layers, vocab ${c.vocabSize}), LoRA r = 16 on all 7 projections, one micro-batch of packed rows per step`,
    `(forward + backward + clip + AdamW); ${rt.info.vendor} ${rt.info.architecture} (${rt.info.isCpu ? 'CPU / SwiftShader' : 'GPU'}); ${rounds} interleaved rounds after a warm-up, median (min–max).`,
    `This checkout${rev ? ` (${rev})` : ''}${other ? `; baseline: ${values.against}${other.rev ? ` (${other.rev})` : ''}, same process, same rounds` : ''}.`,
  ];
  for (const [nRows, len] of specs) {
    const T = nRows * len;
    const rows = Array.from({ length: nRows }, (_, i) => {
      const tokens = [1, ...new Rng(3 + i).ints(len - 1, c.vocabSize - 3).map((t) => t + 3)];
      return { tokens, labels: [...tokens], docStarts: [0] };
    });
    const w = rows.map(() => Float64Array.from({ length: len - 1 }, () => -1 / ((len - 1) * nRows)));
    const backends: Record<string, Step> = { train: new GpuTrainBackend(rt, model, setup, init) as Step, trainRecompute: new GpuTrainBackend(rt, model, setup, init, { recompute: true }) as Step };
    if (other) backends.baseline = other.make(setup, init);
    const res: Record<string, number[]> = { fwd: [], ...Object.fromEntries(Object.keys(backends).map((k) => [k, []])) };
    // process CPU time per step (SwiftShader's worker threads are this process's): the work a step
    // costs, which other processes' load barely changes (wall time does)
    const cpu: Record<string, number[]> = Object.fromEntries(Object.keys(backends).map((k) => [k, []]));
    const peak: Record<string, number> = {};
    const caseLoad0 = loadavg()[0]!;
    for (let i = 0; i < rounds + 1; i++) {
      let t0 = performance.now();
      await backends.train!.logps(rows, { adapter: true, train: false });
      const fwd = performance.now() - t0;
      if (i > 0) res.fwd!.push(T / (fwd / 1000));
      for (const [k, be] of Object.entries(backends)) {
        t0 = performance.now();
        const u0 = process.cpuUsage();
        await be.logps(rows, { adapter: true, train: true });
        await be.backward(w);
        await be.clipGradients(1);
        await be.optimizerStep(1e-4, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
        const u = process.cpuUsage(u0);
        if (i > 0) { // round 0: warm-up (shader compiles)
          res[k]!.push(T / ((performance.now() - t0) / 1000));
          cpu[k]!.push((u.user + u.system) / 1000);
        }
        peak[k] = be.peakBytes();
      }
    }
    const f = median(res.fwd!);
    const line = (label: string, k: string) => `| ${label} | ${median(res[k]!).toFixed(0)} (${spread(res[k]!)}) | ${(median(res[k]!) / f).toFixed(2)} | ${median(cpu[k]!).toFixed(0)} (${spread(cpu[k]!)}) |`;
    md.push(
      ``,
      `## ${nRows} rows × ${len} tokens (T = ${T}), host load ${caseLoad0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}`,
      ``,
      `| measure | tokens/s | ratio to forward | CPU ms per step (process) |`,
      `| --- | --- | --- | --- |`,
      `| forward only (logps, no saving) | ${f.toFixed(0)} (${spread(res.fwd!)}) | 1 | |`,
      line('train step', 'train'),
      line('train step, per-layer recompute', 'trainRecompute'),
    );
    if (other) {
      // per round speed-up (the two ran back to back in each round)
      const ups = res.train!.map((v, i) => v / res.baseline![i]!);
      const cups = cpu.train!.map((v, i) => cpu.baseline![i]! / v);
      md.push(line(`train step, baseline (${other.rev || 'other checkout'})`, 'baseline'), ``,
        `Train step speed-up over the baseline: ${median(ups).toFixed(2)}× in tokens/s (per round ${Math.min(...ups).toFixed(2)}–${Math.max(...ups).toFixed(2)}), ${median(cups).toFixed(2)}× in CPU time per step (per round ${Math.min(...cups).toFixed(2)}–${Math.max(...cups).toFixed(2)}).`);
    }
    md.push(``, `Peak activation bytes the backend held: ${(peak.train! / 1024).toFixed(0)} KiB saved-activations, ${(peak.trainRecompute! / 1024).toFixed(0)} KiB with recompute (${(peak.trainRecompute! / peak.train!).toFixed(2)}×); base weights ${(model.weightBytes / 1024).toFixed(0)} KiB.`);
    for (const be of Object.values(backends)) be.destroy();
  }
  md.push(``, `Host load at the start ${load0.toFixed(1)}, at the end ${loadavg()[0]!.toFixed(1)} (2 shared cores).`, ``);
  const text = md.join('\n');
  console.log(text);
  if (!values['no-write']) await writeFile(new URL('./results.md', import.meta.url), text);
  model.destroy();
  other?.model.destroy();
}

if (import.meta.url === `file://${process.argv[1]}`) await run(process.argv.slice(2));
