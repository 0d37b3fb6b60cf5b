// GEMM tile / workgroup-size exploration at the stories260K training shapes (T = 512 tokens,
// hidden 64, MLP 172, LoRA r 16): which (tile, workgroup) pickGemm() should choose.
//
//   npx tsx bench/train-kernels/gemm.ts [--rounds 5] [--shapes "512x64x344:nn,16x64x512:tn"] [--variants t16/64,t8/16]
//
// A shape is MxNxK:<op(A)><op(B)> (n plain, t transposed). Variants are tile/workgroup; "pick" is
// the product choice. GPU timestamps and process CPU time (the work, which holds under load),
// interleaved rounds, min and median per variant; host load printed.
import '../../engine/node-install.ts';
import { loadavg } from 'node:os';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { gemm, pickGemm, GEMM_TILES, type GemmTile, type GemmWg } from '../../shaders/matmul/matmul.backward.ts';
import { randomArray } from '../../shaders/lib/check.ts';

const opt = (n: string) => (process.argv.indexOf(n) >= 0 ? process.argv[process.argv.indexOf(n) + 1] : undefined);
const rounds = Number(opt('--rounds') ?? 5);
const shapes = (opt('--shapes') ?? '512x64x344:nn,512x64x16:nn,512x16x64:nt,512x172x64:nn,16x64x512:tn,172x16x512:tn,128x64x512:tn,344x64x512:tn,512x128x64:nt,512x344x64:nt,512x64x172:nt').split(',');
const variants = (opt('--variants') ?? 'pick,t16/64,t16/16,t8/64,t8/16,t4/16,t4/4').split(',');
const rt = await Runtime.create();
if (!rt.setProfiling(true)) throw new Error('needs timestamp-query');
const load0 = loadavg()[0]!;
const cases = shapes.flatMap((sh) => {
  const [dims, ops] = sh.split(':') as [string, string];
  const [M, N, K] = dims.split('x').map(Number) as [number, number, number];
  const tA = ops[0] === 't', tB = ops[1] === 't';
  const a = rt.upload(randomArray(M * K, 1)), b = rt.upload(randomArray(K * N, 2)), c = rt.createBuffer(M * N * 4);
  return variants.map((v) => {
    const { tile, wg } = v === 'pick' ? pickGemm(M, N) : { tile: v.split('/')[0] as GemmTile, wg: Number(v.split('/')[1]) as GemmWg };
    const name = `${sh} ${v === 'pick' ? `pick(${tile}/${wg})` : v}`;
    return { name, M, N, K, run: () => gemm(rt, { buffer: a, ld: tA ? M : K, trans: tA }, { buffer: b, ld: tB ? K : N, trans: tB }, { buffer: c, ld: N }, M, N, K, { tile, wg }) };
  });
});
const times = new Map<string, number[]>(), cpu = new Map<string, number[]>();
for (const cs of cases) cs.run();
await rt.profile();
for (let r = 0; r < rounds; r++) {
  for (const cs of cases) {
    const u0 = process.cpuUsage();
    cs.run();
    const p = await rt.profile();
    const u = process.cpuUsage(u0);
    const ms = p.reduce((s, x) => s + x.ms, 0);
    (times.get(cs.name) ?? times.set(cs.name, []).get(cs.name)!).push(ms);
    (cpu.get(cs.name) ?? cpu.set(cs.name, []).get(cs.name)!).push((u.user + u.system) / 1000);
  }
}
console.log(`host load ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}; ${rounds} rounds; tiles ${JSON.stringify(GEMM_TILES)}`);
for (const cs of cases) {
  const t = [...times.get(cs.name)!].sort((x, y) => x - y);
  const c = [...cpu.get(cs.name)!].sort((x, y) => x - y);
  const gf = (2 * cs.M * cs.N * cs.K) / (t[0]! * 1e6);
  console.log(`${cs.name.padEnd(34)} gpu min ${t[0]!.toFixed(2).padStart(7)} med ${t[Math.floor(t.length / 2)]!.toFixed(2).padStart(7)} ms  ${gf.toFixed(2)} GFLOP/s  cpu med ${c[Math.floor(c.length / 2)]!.toFixed(1).padStart(6)} ms`);
}
