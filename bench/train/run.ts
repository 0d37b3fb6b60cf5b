// bench/train: training tokens/s ÷ forward-only tokens/s on the same shapes (one micro-batch of
// T tokens; forward-only = the trainer's forward without saving, i.e. logps(train: false)), and peak
// activation bytes the backend held with and without per-layer recomputation. Interleaved rounds,
// median and spread; host load recorded. Writes bench/train/results.md.
//
//   npx tsx bench/train/run.ts [--model <dir>] [--T 128] [--rounds 3]
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { parseArgs } from 'node:util';
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { GpuModel } from '../../engine/forward/gpu-model.ts';
import { LocalDirSource } from '../../engine/model/source.ts';
import { LORA_MODULES } from '../../engine/lora/hook.ts';
import { scalingFor } from '../../engine/lora/peft.ts';
import { GpuTrainBackend } from '../../trainer/train/gpu-backend.ts';
import { initLora } from '../../trainer/train/backend.ts';
import { Rng } from '../../shaders/lib/random.ts';

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { model: { type: 'string' }, T: { type: 'string' }, rounds: { type: 'string' } } });
  const dir = values.model ?? new URL('../../../shared/models/stories260K', import.meta.url).pathname;
  const T = Number(values.T ?? 128), rounds = Number(values.rounds ?? 3);
  const rt = await Runtime.create();
  const model = await GpuModel.load(rt, new LocalDirSource(dir));
  const c = model.config;
  const setup = { r: 16, alpha: 32, useRslora: false, scaling: scalingFor(32, 16, false), modules: [...LORA_MODULES], dropout: 0 };
  const init = initLora(c, 16, setup.modules, 1);
  const tokens = [1, ...new Rng(3).ints(T - 1, c.vocabSize - 3).map((t) => t + 3)];
  const row = { tokens, labels: [...tokens], docStarts: [0] };
  const load0 = loadavg()[0]!;
  const res: Record<string, number[]> = { fwd: [], train: [], trainRecompute: [] };
  const peak: Record<string, number> = {};
  const backends = { train: new GpuTrainBackend(rt, model, setup, init), trainRecompute: new GpuTrainBackend(rt, model, setup, init, { recompute: true }) };
  const w = [Float64Array.from({ length: T - 1 }, () => -1 / (T - 1))];
  for (let i = 0; i < rounds + 1; i++) {
    let t0 = performance.now();
    await backends.train.logps([row], { adapter: true, train: false });
    const fwd = performance.now() - t0;
    const times: Record<string, number> = {};
    for (const [k, be] of Object.entries(backends)) {
      t0 = performance.now();
      await be.logps([row], { adapter: true, train: true });
      await be.backward(w);
      await be.clipGradients(1);
      await be.optimizerStep(1e-4, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
      times[k] = performance.now() - t0;
      peak[k] = be.peakBytes();
    }
    if (i === 0) continue; // warm-up (shader compiles)
    res.fwd!.push(T / (fwd / 1000));
    res.train!.push(T / (times.train! / 1000));
    res.trainRecompute!.push(T / (times.trainRecompute! / 1000));
  }
  const ratio = median(res.train!) / median(res.fwd!);
  const ratioR = median(res.trainRecompute!) / median(res.fwd!);
  const spread = (a: number[]) => `${Math.min(...a).toFixed(0)}–${Math.max(...a).toFixed(0)}`;
  const md = [
    `# bench/train results`,
    ``,
    `Model ${dir.split('/').at(-1)} (hidden ${c.hiddenSize}, ${c.numLayers} layers, vocab ${c.vocabSize}), one micro-batch of T = ${T} tokens, LoRA r = 16 on all 7 projections;`,
    `${rt.info.vendor} ${rt.info.architecture} (${rt.info.isCpu ? 'CPU / SwiftShader' : 'GPU'}), host load ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}; ${rounds} interleaved rounds after a warm-up, median (min–max).`,
    ``,
    `| measure | tokens/s | ratio to forward |`,
    `| --- | --- | --- |`,
    `| forward only (logps, no saving) | ${median(res.fwd!).toFixed(0)} (${spread(res.fwd!)}) | 1 |`,
    `| train step (forward + backward + clip + AdamW) | ${median(res.train!).toFixed(0)} (${spread(res.train!)}) | ${ratio.toFixed(2)} |`,
    `| train step, per-layer recompute | ${median(res.trainRecompute!).toFixed(0)} (${spread(res.trainRecompute!)}) | ${ratioR.toFixed(2)} |`,
    ``,
    `Peak activation bytes the backend held: ${(peak.train! / 1024).toFixed(0)} KiB saved-activations, ${(peak.trainRecompute! / 1024).toFixed(0)} KiB with recompute (${(peak.trainRecompute! / peak.train!).toFixed(2)}×); base weights ${(model.weightBytes / 1024).toFixed(0)} KiB.`,
    ``,
  ].join('\n');
  console.log(md);
  await writeFile(new URL('./results.md', import.meta.url), md);
  for (const be of Object.values(backends)) be.destroy();
  model.destroy();
}

if (import.meta.url === `file://${process.argv[1]}`) await run(process.argv.slice(2));
