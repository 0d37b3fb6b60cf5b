// Exploration: interleaved best-of-N timing of a few variants on one shape, e.g.
//   npx tsx bench/kernels/explore.ts 576 1536 128 f32 v3,tiled:12x8,tiled:8x8:32 5
// (K N M format variants rounds). Variants: MATMUL_VARIANTS keys or ad-hoc `tiled:<TM>x<TN>[:<WG>]`.
// Prints GPU-timestamp time and process CPU time (the latter stays meaningful on a loaded machine).
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { matmul } from '../../shaders/matmul/matmul.ts';
import { uploadWeight, type WeightFormat } from '../../shaders/matmul/weights.ts';
import { randomArray } from '../../shaders/lib/check.ts';
async function main() {
  const [K, N, M, fmt, variants, rounds] = process.argv.slice(2);
  const rt = await Runtime.create();
  rt.setProfiling(true);
  const k = +K, n = +N, m = +M;
  const w = uploadWeight(rt, 'w', randomArray(n * k, 1, 0.05), n, k, fmt as WeightFormat);
  const x = rt.upload(randomArray(m * k, 2));
  const out = rt.createBuffer(m * n * 4);
  const vs = variants.split(',');
  const best: Record<string, number> = {};
  const cpu: Record<string, number> = {};
  for (const v of vs) {
    const t = performance.now();
    matmul(rt, x, w, out, m, { variant: v });
    await rt.profile();
    console.log(`warm ${v}: ${(performance.now() - t).toFixed(0)} ms wall`);
  }
  for (let r = 0; r < +(rounds ?? 3); r++)
    for (const v of vs) {
      const c0 = process.cpuUsage();
      matmul(rt, x, w, out, m, { variant: v });
      const ms = (await rt.profile()).reduce((s, p) => s + p.ms, 0);
      const c = process.cpuUsage(c0);
      best[v] = Math.min(best[v] ?? Infinity, ms);
      cpu[v] = Math.min(cpu[v] ?? Infinity, (c.user + c.system) / 1000);
    }
  for (const v of vs) console.log(`${K}->${N} M=${M} ${fmt} ${v}: ${best[v].toFixed(2)} ms  ${(2 * m * n * k / best[v] / 1e6).toFixed(2)} GFLOP/s  cpu ${cpu[v].toFixed(1)} ms -> ${(2 * 2 * m * n * k / cpu[v] / 1e6).toFixed(2)} GFLOP/s on 2 cores`);
  process.exit(0);
}
main();
