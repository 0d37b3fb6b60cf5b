// Per-dispatch cost of each decode op at a model's M=1 shapes: `reps` dispatches of one op in one
// submit, wall clock to the end of the GPU work (rt.sync), best of `rounds`; plus an empty
// submit+readback round trip. npx tsx bench/decode/ops.ts [--hd 64 --inter 172 --heads 8 --kv 4 --hdim 8 --vocab 512]
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { parseArgs } from 'node:util';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { uploadWeight } from '../../shaders/matmul/weights.ts';
import { matmul } from '../../shaders/matmul/matmul.ts';
import { rmsnorm } from '../../shaders/rmsnorm/rmsnorm.ts';
import { siluMul } from '../../shaders/silu_mul/silu_mul.ts';
import { rope } from '../../shaders/rope/rope.ts';
import { argmax } from '../../shaders/argmax/argmax.ts';
import { randomArray } from '../../shaders/lib/check.ts';

const { values } = parseArgs({ options: {
  hd: { type: 'string', default: '64' }, inter: { type: 'string', default: '172' }, heads: { type: 'string', default: '8' },
  kv: { type: 'string', default: '4' }, hdim: { type: 'string', default: '8' }, vocab: { type: 'string', default: '512' },
  reps: { type: 'string', default: '40' }, rounds: { type: 'string', default: '3' },
} });
const Hd = +values.hd!, I = +values.inter!, H = +values.heads!, KVH = +values.kv!, D = +values.hdim!, V = +values.vocab!;
const reps = +values.reps!, rounds = +values.rounds!;
const rt = await Runtime.create();
const QKV = (H + 2 * KVH) * D;
const buf = (n: number, s = 1) => rt.upload(randomArray(n, s));
const x = buf(Hd), h = buf(Hd), nw = buf(Hd), qkv = buf(QKV), gu = buf(2 * I), act = buf(I), lg = buf(V), pos = rt.upload(new Uint32Array([5])), ids = rt.createBuffer(4);
const inv = rt.upload(new Float32Array(D / 2).fill(0.1));
const W = (N: number, K: number) => uploadWeight(rt, 'w', randomArray(N * K, 3, 0.05), N, K, 'f32');
const wqkv = W(QKV, Hd), wgu = W(2 * I, Hd), wdown = W(Hd, I), wlm = W(V, Hd);
const ops: Record<string, () => void> = {
  rmsnorm: () => rmsnorm(rt, x, nw, h, 1, Hd, 1e-5),
  'matmul qkv': () => matmul(rt, h, wqkv, qkv, 1),
  'matmul gate|up': () => matmul(rt, h, wgu, gu, 1),
  'matmul down (acc)': () => matmul(rt, act, wdown, x, 1, { accumulate: true }),
  'matmul lm_head': () => matmul(rt, h, wlm, lg, 1),
  rope: () => rope(rt, qkv, pos, inv, 1, H + KVH, D, { rowStride: QKV, colOffset: 0 }),
  silu_mul: () => siluMul(rt, gu, gu, act, I, { rows: 1, inter: I }),
  argmax: () => argmax(rt, lg, 1, V, ids),
};
const time = async (f: () => void) => {
  let best = Infinity;
  f(); await rt.sync();
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    for (let i = 0; i < reps; i++) f();
    await rt.sync();
    best = Math.min(best, (performance.now() - t) / reps);
  }
  return best;
};
// round trip: one tiny dispatch + 4-byte readback
let rtBest = Infinity;
for (let r = 0; r < 10; r++) { const t = performance.now(); ops.argmax!(); await rt.read(ids, 4); rtBest = Math.min(rtBest, performance.now() - t); }
console.log(`argmax + 4-byte readback round trip: ${rtBest.toFixed(3)} ms (best of 10)`);
for (const [n, f] of Object.entries(ops)) console.log(`${n.padEnd(20)} ${(await time(f)).toFixed(3)} ms/dispatch`);
rt.destroyAll();
process.exit(0);
