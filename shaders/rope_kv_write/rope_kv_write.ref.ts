// float64 reference for shaders/rope_kv_write.wgsl: rope.ref on the q and k heads of each qkv row,
// then kv_write.ref of the rotated k and the v into the cache pages.
import { ropeRef } from '../rope/rope.ref.ts';
import { kvWriteRef } from '../kv_write/kv_write.ref.ts';

export function ropeKvWriteRef(
  qkv: ArrayLike<number>,
  kPages: ArrayLike<number>,
  vPages: ArrayLike<number>,
  positions: ArrayLike<number>,
  slots: ArrayLike<number>,
  invFreq: Float32Array,
  o: { numHeads: number; numKvHeads: number; headDim: number; blockSize: number; rowStride: number; qCol: number; kCol: number; vCol: number },
): { qkv: Float64Array; k: Float64Array; v: Float64Array } {
  const T = positions.length;
  let x = ropeRef(qkv, positions, invFreq, T, o.numHeads, o.headDim, o.rowStride, o.qCol);
  x = ropeRef(x, positions, invFreq, T, o.numKvHeads, o.headDim, o.rowStride, o.kCol);
  const { k, v } = kvWriteRef(kPages, vPages, x, slots, o);
  return { qkv: x, k, v };
}
