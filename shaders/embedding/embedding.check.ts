import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { embedding } from './embedding.ts';
import { embeddingRef } from './embedding.ref.ts';
import { uploadWeight, destroyWeight, dequantized, type WeightFormat } from '../matmul/weights.ts';

const cases: Array<[WeightFormat, number, number, number, number | undefined]> = [
  // format, N (vocab), K, tokens, maxPartBytes (forces row parts)
  ['f32', 512, 64, 1, undefined],
  ['f32', 301, 63, 17, 63 * 4 * 37],
  ['f16', 301, 63, 3, undefined],
  ['f16', 1000, 172, 17, 88 * 4 * 101],
  ['q8', 301, 63, 17, undefined],
  ['q8', 777, 576, 3, 576 * 50],
];

export const checks: KernelCheck[] = cases.map(([format, N, K, tokens, maxPartBytes]) => ({
  name: `embedding ${format} N=${N} K=${K} tokens=${tokens}${maxPartBytes ? ' parts' : ''}`,
  async run(rt) {
    const w = randomArray(N * K, 5 + K, 0.5);
    const table = uploadWeight(rt, 'emb', w, N, K, format, { maxPartBytes });
    if (maxPartBytes && table.parts.length < 2) throw new Error('expected several parts');
    const r = randomArray(tokens, 9 + N);
    const ids = Uint32Array.from(r, (u) => Math.floor(((u + 1) / 2) * N));
    ids[0] = N - 1;
    if (tokens > 2) ids[tokens - 1] = N + 5; // invalid → zero row
    const gids = rt.upload(ids);
    const out = rt.createBuffer(tokens * K * 4);
    rt.write(out, new Float32Array(tokens * K).fill(7)); // garbage that must be overwritten
    embedding(rt, gids, table, out, tokens);
    const got = await rt.readF32(out, tokens * K);
    rt.destroy(gids); rt.destroy(out); destroyWeight(rt, table);
    return result(got, embeddingRef(ids, dequantized(w, N, K, format), N, K), 1e-7);
  },
}));
