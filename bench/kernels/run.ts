// Kernel bench: matmul (prefill, M=128) and matvec (decode, M=1 and M=32) at LLM shapes, every
// variant × weight format, as GFLOP/s, GB/s and a ratio against v1 (the naive kernel) measured in
// the same run. Writes bench/kernels/results.md and results.json.
//
//   npx tsx bench/kernels/run.ts [--json] [--quick] [--no-write] [--variants v1,v2] [--formats f32,q8]
//                                [--m 1,32,128] [--shapes 0,1] [--v1-max-m 8]
//
// Timing: GPU timestamps (rt.setProfiling) when the adapter has timestamp-query, else wall clock
// around rt.sync(); process CPU time is recorded too. Each case is warmed up (pipeline compile +
// one run), then the variants are timed in interleaved rounds and the best round is kept, so a
// load spike from other processes hits every variant alike.
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { matmul, matmulBytes, MATMUL_VARIANTS, variantSupported } from '../../shaders/matmul/matmul.ts';
import { uploadWeight, destroyWeight, type WeightFormat, type GpuWeight } from '../../shaders/matmul/weights.ts';
import { randomArray } from '../../shaders/lib/check.ts';
import { runIfMain } from '../common.ts';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

/** [K, N] = in_features → out_features (SmolLM2-135M and Qwen2.5-0.5B MLP shapes). */
const ALL_SHAPES: Array<[number, number]> = [
  [576, 1536],
  [1536, 576],
  [896, 4864],
  [4864, 896],
];
const SHAPES = opt('--shapes') ? opt('--shapes')!.split(',').map((i) => ALL_SHAPES[Number(i)]) : ALL_SHAPES;
const Ms = (opt('--m') ?? '1,32,128').split(',').map(Number);
const FORMATS = (opt('--formats') ?? 'f32,f16,q8').split(',') as WeightFormat[];
const VARIANTS = (opt('--variants') ?? Object.keys(MATMUL_VARIANTS).join(',')).split(',');
const quick = flag('--quick');
/** Interleaved rounds per case (min is kept): small M is cheap and noisy, big prefill is expensive. */
const roundsFor = (M: number, flops: number) => (quick ? 1 : M <= 8 ? 3 : flops > 5e8 ? 1 : 2);
/** v1 (no reuse: time ∝ M·N·K) is timed at min(M, V1_MAX_M) rows and scaled by M / that. */
const V1_MAX_M = Number(opt('--v1-max-m') ?? 8);
/** Matvec variants (mv*: one x row per tile, so W is re-read per row) are benched at M <= this. */
const MATVEC_MAX_M = 8;

interface Row {
  shape: string;
  K: number;
  N: number;
  M: number;
  format: WeightFormat;
  variant: string;
  /** Best time per call (GPU timestamps, or wall clock without them). */
  ms: number;
  /** Best process CPU time per call (all SwiftShader worker threads + the host). */
  cpuMs: number;
  gflops: number;
  /** 2·M·N·K / (cpuMs / cores): what the kernel does per CPU-second, for loaded machines. */
  gflopsCpu: number;
  gbps: number;
  vsV1: number | null;
  vsV1Cpu: number | null;
  note?: string;
}

async function timeOnce(rt: Runtime, run: () => void, useTs: boolean): Promise<{ ms: number; cpuMs: number }> {
  await rt.sync();
  if (useTs) await rt.profile(true);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  run();
  let ms: number;
  if (useTs) ms = (await rt.profile(true)).reduce((s, r) => s + r.ms, 0);
  else {
    await rt.sync();
    ms = performance.now() - t0;
  }
  const c = process.cpuUsage(c0);
  return { ms, cpuMs: (c.user + c.system) / 1000 };
}

async function main() {
  const rt = await Runtime.create();
  const useTs = rt.setProfiling(true);
  const cores = cpus().length;
  const t0 = performance.now();
  const load0 = loadavg()[0];
  const rows: Row[] = [];
  const log = (s: string) => { if (!flag('--json')) console.log(s); };
  log(`adapter: ${rt.info.vendor} ${rt.info.architecture} ${rt.info.description} (${rt.info.backend}, cpu=${rt.info.isCpu}, subgroups=${rt.info.features.subgroups}); timing: ${useTs ? 'GPU timestamps' : 'wall clock'}; load average ${load0.toFixed(1)} on ${cores} cores`);

  for (const [K, N] of SHAPES) {
    const wData = randomArray(N * K, K + N, 0.05);
    for (const format of FORMATS) {
      const w: GpuWeight = uploadWeight(rt, `w${K}x${N}`, wData, N, K, format);
      for (const M of Ms) {
        const x = rt.upload(randomArray(M * K, M + K));
        const out = rt.createBuffer(M * N * 4, 'out');
        const flops = 2 * M * N * K;
        const bytes = matmulBytes(w, M);
        const vs = VARIANTS.filter((v) => variantSupported(rt, v) && (M <= MATVEC_MAX_M || !v.startsWith('mv')));
        const mOf = (v: string) => (v === 'v1' ? Math.min(M, V1_MAX_M) : M);
        const calls = vs.map((v) => () => matmul(rt, x, w, out, mOf(v), { variant: v }));
        // Warm-up: pipeline compile (same kernel for any M) and a first touch of the buffers.
        for (const v of vs) await timeOnce(rt, () => matmul(rt, x, w, out, 1, { variant: v }), useTs);
        const best = vs.map(() => ({ ms: Infinity, cpuMs: Infinity }));
        for (let r = 0; r < roundsFor(M, flops); r++)
          for (let i = 0; i < vs.length; i++) {
            const t = await timeOnce(rt, calls[i], useTs);
            best[i].ms = Math.min(best[i].ms, t.ms * (M / mOf(vs[i])));
            best[i].cpuMs = Math.min(best[i].cpuMs, t.cpuMs * (M / mOf(vs[i])));
          }
        const i1 = vs.indexOf('v1');
        for (let i = 0; i < vs.length; i++) {
          const { ms, cpuMs } = best[i];
          const row: Row = {
            shape: `${K}→${N}`, K, N, M, format, variant: vs[i], ms, cpuMs,
            gflops: flops / ms / 1e6, gflopsCpu: flops / (cpuMs / cores) / 1e6, gbps: bytes / ms / 1e6,
            vsV1: i1 >= 0 ? best[i1].ms / ms : null, vsV1Cpu: i1 >= 0 ? best[i1].cpuMs / cpuMs : null,
            note: mOf(vs[i]) !== M ? `timed at M=${mOf(vs[i])}, scaled ×${M / mOf(vs[i])}` : undefined,
          };
          rows.push(row);
          log(`${row.shape.padEnd(10)} M=${String(M).padEnd(4)} ${format.padEnd(4)} ${vs[i].padEnd(4)} ${ms.toFixed(2).padStart(9)} ms ${row.gflops.toFixed(2).padStart(6)} GFLOP/s ${row.gbps.toFixed(2).padStart(6)} GB/s | cpu ${cpuMs.toFixed(1).padStart(8)} ms ${row.gflopsCpu.toFixed(2).padStart(6)} GFLOP/s | x${(row.vsV1 ?? NaN).toFixed(2)} (cpu x${(row.vsV1Cpu ?? NaN).toFixed(2)}) vs v1${row.note ? ` (${row.note})` : ''}`);
        }
        rt.destroy(x);
        rt.destroy(out);
      }
      destroyWeight(rt, w);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const result = {
    date: new Date().toISOString(), info: rt.info, timing: useTs ? 'gpu-timestamps' : 'wall-clock', cores,
    loadavg: [load0, loadavg()[0]], seconds, args, rows,
  };
  if (!flag('--no-write')) {
    writeFileSync(join(here, 'results.json'), JSON.stringify(result, null, 2) + '\n');
    writeFileSync(join(here, 'results.md'), toMarkdown(result));
  }
  if (flag('--json')) console.log(JSON.stringify(result, null, 2));
  else log(`done in ${seconds.toFixed(1)} s`);
  rt.destroyAll();
}

function toMarkdown(r: { date: string; info: Runtime['info']; timing: string; cores: number; loadavg: number[]; seconds: number; args: string[]; rows: Row[] }): string {
  const i = r.info;
  let s = `# bench/kernels results\n\n${r.date} · ${r.seconds.toFixed(0)} s · timing: ${r.timing} · args: \`${r.args.join(' ') || '(none)'}\`\n\n`;
  s += `Adapter: ${i.vendor} / ${i.architecture} / ${i.device} / ${i.description} (backend ${i.backend}, CPU adapter: ${i.isCpu}; `;
  s += `shader-f16 ${i.features.shaderF16}, subgroups ${i.features.subgroups}, timestamps ${i.features.timestampQuery}; Dawn flags: ${i.dawnFlags?.length ? i.dawnFlags.join(" ") : "none (robustness on)"}). `;
  s += `${r.cores} cores, load average ${r.loadavg.map((l) => l.toFixed(1)).join(' → ')} during the run.\n\n`;
  s += 'Shape is K→N (in → out features). GFLOP/s = 2·M·N·K / time (best of the interleaved rounds); GB/s counts weights once + x + out. ';
  s += '"cpu GFLOP/s" = 2·M·N·K / (process CPU time / cores): the same work per CPU-second, which stays meaningful when other processes load the machine. ';
  s += '×v1 = v1 time / this time, measured in this run (timestamps; cpu-time ratio in brackets).\n\n';
  s += '| shape | M | format | variant | ms | GFLOP/s | GB/s | cpu GFLOP/s | ×v1 (cpu) |\n|---|---|---|---|---|---|---|---|---|\n';
  for (const row of r.rows) {
    const ratio = row.vsV1 !== null ? `${row.vsV1.toFixed(2)} (${row.vsV1Cpu!.toFixed(2)})` : '–';
    s += `| ${row.shape} | ${row.M} | ${row.format} | ${row.variant} | ${row.ms.toFixed(2)} | ${row.gflops.toFixed(2)} | ${row.gbps.toFixed(2)} | ${row.gflopsCpu.toFixed(2)} | ${ratio}${row.note ? ` · ${row.note}` : ''} |\n`;
  }
  return s;
}

/** `lorafleet bench kernels [options]` (options are read from the process's argv, as above). */
export async function run(_argv: string[]): Promise<void> {
  await main();
}

runIfMain(import.meta.url, run);
