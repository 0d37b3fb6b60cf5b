// Embedding backward (host side): dEmb[V, Hd] += scatter of dx[T, Hd] by token id, deterministic.
// WGSL: shaders/embedding/embedding.backward.wgsl · reference: embedding.ref.ts
// (embeddingBackwardRef) · checks: embedding.backward.check.ts · finite differences:
// embedding.backward.test.ts. Only for runs that train the embeddings (LoRA runs do not).
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import { LorafleetError, type ErrorCode } from '../lib/errors.ts';

/** Bad arguments from the calling code ('internal': a bug) or from user settings ('invalid_request'). */
const err = (m: string, code: ErrorCode = 'internal') => new LorafleetError(m, code);

export const EmbeddingBwdParams = defineParams('EmbeddingBwdParams', { U: 'u32', Hd: 'u32' });
type F = (typeof EmbeddingBwdParams.fields)[number][0];
const kernel: Kernel<F> = { name: 'embedding_backward', code: EmbeddingBwdParams.wgsl + WGSL['embedding.backward'], params: EmbeddingBwdParams };

/** CSR grouping of token positions by id: order (positions sorted by id, then position), groups [(id, start)…, (−, T)]. */
export function groupTokens(ids: ArrayLike<number>, V: number): { order: Uint32Array; groups: Uint32Array; U: number } {
  const T = ids.length;
  for (let t = 0; t < T; t++) if (!(Number.isInteger(ids[t]) && ids[t] >= 0 && ids[t] < V)) throw err(`embeddingBackward: token ${t} has id ${ids[t]} outside [0, ${V})`);
  const order = Uint32Array.from({ length: T }, (_, i) => i).sort((a, b) => ids[a] - ids[b] || a - b);
  const g: number[] = [];
  for (let i = 0; i < T; i++) if (i === 0 || ids[order[i]] !== ids[order[i - 1]]) g.push(ids[order[i]], i);
  const U = g.length / 2;
  g.push(0, T);
  return { order, groups: Uint32Array.from(g), U };
}

/**
 * dEmb [V, Hd] += Σ_t onehot(ids[t]) ⊗ dx[t] (adds: zero dEmb before the first micro-batch).
 * ids are host-side (the trainer knows its batch); the grouping is uploaded per call.
 */
export function embeddingBackward(rt: Runtime, ids: ArrayLike<number>, dx: GPUBuffer, dEmb: GPUBuffer, V: number, Hd: number): void {
  const T = ids.length;
  if (T === 0) return;
  if (dx.size < T * Hd * 4 || dEmb.size < V * Hd * 4) throw err('embeddingBackward: dx/dEmb too small');
  const { order, groups, U } = groupTokens(ids, V);
  const bo = rt.acquire(order.byteLength), bg = rt.acquire(groups.byteLength);
  rt.write(bo, order);
  rt.write(bg, groups);
  rt.dispatch(kernel, { params: { U, Hd }, buffers: [dx, bo, bg, dEmb], workgroups: rt.grid(Math.ceil((U * Hd) / 64)) });
  rt.release(bo);
  rt.release(bg);
}
