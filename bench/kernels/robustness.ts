// Does Dawn's robustness (index clamping / bounds checks) cost much on SwiftShader? Compare
//   npx tsx bench/kernels/robustness.ts
//   npx tsx bench/kernels/robustness.ts enable-dawn-features=disable_robustness
// (VARIANTS=v2,v3 to choose). Exploration only: the product keeps robustness on.
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { acquireGpu } from '../../shaders/gpu/device.ts';
import { matmul } from '../../shaders/matmul/matmul.ts';
import { uploadWeight } from '../../shaders/matmul/weights.ts';
import { randomArray } from '../../shaders/lib/check.ts';
async function main() {
  const flags = process.argv.slice(2);
  const { info } = await acquireGpu(); // sets up env + globals
  const mod = await import('webgpu');
  const gpu = (mod as any).create(flags);
  const adapter = await gpu.requestAdapter();
  const device = await adapter.requestDevice({ requiredFeatures: ['timestamp-query', 'subgroups'], requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize } });
  const rt = new Runtime(device, info);
  rt.setProfiling(true);
  const [k, n, m] = [576, 1536, 64];
  const w = uploadWeight(rt, 'w', randomArray(n * k, 1, 0.05), n, k, 'f32');
  const x = rt.upload(randomArray(m * k, 2));
  const out = rt.createBuffer(m * n * 4);
  for (const v of (process.env.VARIANTS ?? 'v2,t8x8').split(',')) {
    matmul(rt, x, w, out, m, { variant: v }); await rt.profile();
    let best = Infinity, bc = Infinity;
    for (let r = 0; r < 4; r++) {
      const c0 = process.cpuUsage();
      matmul(rt, x, w, out, m, { variant: v });
      best = Math.min(best, (await rt.profile()).reduce((s, p) => s + p.ms, 0));
      const c = process.cpuUsage(c0); bc = Math.min(bc, (c.user + c.system) / 1000);
    }
    console.log(flags.join(' ') || '(default)', v, best.toFixed(1), 'ms', 'cpu', bc.toFixed(1), 'ms', (2 * 2 * m * n * k / bc / 1e6).toFixed(2), 'GFLOP/s@2cores');
  }
  process.exit(0);
}
main();
