// Embedding gather (host side). WGSL: shaders/embedding.wgsl · reference: shaders/embedding.ref.ts · check: shaders/embedding.check.ts
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import { Q8_GROUP, type GpuWeight, type WeightFormat } from '../matmul/weights.ts';

export const EmbeddingParams = defineParams('EmbeddingParams', {
  tokens: 'u32', k: 'u32', words: 'u32', row_start: 'u32', rows: 'u32', n: 'u32', first: 'u32',
});
type F = 'tokens' | 'k' | 'words' | 'row_start' | 'rows' | 'n' | 'first';
const code = EmbeddingParams.wgsl + WGSL.embedding;
const kernels: Record<WeightFormat, Kernel<F>> = {
  f32: { name: 'embedding_f32', code, entryPoint: 'main_f32', params: EmbeddingParams },
  f16: { name: 'embedding_f16', code, entryPoint: 'main_f16', params: EmbeddingParams },
  q8: { name: 'embedding_q8', code, entryPoint: 'main_q8', params: EmbeddingParams },
};

/**
 * out[t, :] = table[ids[t], :] as f32 (`out` holds tokens × table.K floats), for any GpuWeight
 * format (f32, packed f16, q8 int8 groups) and any number of row parts (one dispatch per part).
 * ids are u32; an id >= table.N yields a zero row.
 */
export function embedding(rt: Runtime, ids: GPUBuffer, table: GpuWeight, out: GPUBuffer, tokens: number): void {
  if (tokens === 0) return;
  if (ids.size < tokens * 4) throw new Error('embedding: ids too small');
  if (out.size < tokens * table.K * 4) throw new Error(`embedding: out holds ${out.size / 4} floats, need ${tokens * table.K}`);
  const words = table.format === 'f32' ? table.K : table.format === 'f16' ? table.Kp / 2 : table.Kp / 4;
  if (table.format === 'q8' && table.Kp % Q8_GROUP) throw new Error('embedding: q8 Kp must be a multiple of the group');
  const k = kernels[table.format];
  table.parts.forEach((part, i) => {
    const buffers: GPUBuffer[] = [ids, part.data, out];
    if (table.format === 'q8') {
      if (!part.scales) throw new Error(`embedding: ${table.name} part ${i} has no scales`);
      buffers.push(part.scales);
    }
    rt.dispatch(k, {
      params: { tokens, k: table.K, words, row_start: part.rowStart, rows: part.rows, n: table.N, first: i === 0 ? 1 : 0 },
      buffers,
      workgroups: rt.grid(Math.ceil((tokens * words) / 64)),
    });
  });
}
