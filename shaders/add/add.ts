// Residual add (host side). WGSL: shaders/add.wgsl · reference: shaders/add.ref.ts · check: shaders/add.check.ts
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';

export const AddParams = defineParams('AddParams', { n4: 'u32' });
const kernel: Kernel<'n4'> = { name: 'add', code: AddParams.wgsl + WGSL.add, params: AddParams };

/** a += b over n floats (n must be a multiple of 4; buffers hold at least n floats). */
export function addInPlace(rt: Runtime, a: GPUBuffer, b: GPUBuffer, n: number): void {
  if (n % 4) throw new Error(`add: n=${n} must be a multiple of 4`);
  const n4 = n / 4;
  rt.dispatch(kernel, { params: { n4 }, buffers: [a, b], workgroups: rt.grid(Math.ceil(n4 / 64)) });
}
