// SwiGLU backward (host side). WGSL: shaders/silu_mul/silu_mul.backward.wgsl · reference:
// silu_mul.ref.ts (siluMulBackwardRef) · checks: silu_mul.backward.check.ts · finite
// differences: silu_mul.backward.test.ts.
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import { LorafleetError, type ErrorCode } from '../lib/errors.ts';

/** Bad arguments from the calling code ('internal': a bug) or from user settings ('invalid_request'). */
const err = (m: string, code: ErrorCode = 'internal') => new LorafleetError(m, code);

export const SiluMulBwdParams = defineParams('SiluMulBwdParams', {
  rows: 'u32', inter: 'u32', gate_stride: 'u32', up_stride: 'u32', up_offset: 'u32', dg_stride: 'u32', du_stride: 'u32', du_offset: 'u32',
});
type F = (typeof SiluMulBwdParams.fields)[number][0];
const kernel: Kernel<F> = { name: 'silu_mul_backward', code: SiluMulBwdParams.wgsl + WGSL['silu_mul.backward'], params: SiluMulBwdParams };

/**
 * Backward of out[rows, inter] = silu(gate) · up.
 * Fused layout (`fused: true`): `gu` is the forward's [rows, 2*inter] gate|up activation and
 * `dgu` receives [rows, 2*inter] = dgate | dup (the gradient of the fused gate|up matmul output).
 * Separate layout: gu = gate [rows, inter], up = up [rows, inter], dgu = dgate, dup = dup.
 * dout is [rows, inter]. Outputs are overwritten (not accumulated).
 */
export function siluMulBackward(
  rt: Runtime,
  a: { gu: GPUBuffer; up?: GPUBuffer; dout: GPUBuffer; dgu: GPUBuffer; dup?: GPUBuffer; rows: number; inter: number; fused?: boolean },
): void {
  const { rows, inter } = a;
  const n = rows * inter;
  if (n === 0) return;
  if (a.dgu === a.gu || a.dgu === a.dout || a.dgu === a.up) throw err('siluMulBackward: dgu must not alias the inputs');
  if (a.dout.size < n * 4) throw err('siluMulBackward: dout too small');
  if (a.fused) {
    if (a.gu.size < 2 * n * 4 || a.dgu.size < 2 * n * 4) throw err('siluMulBackward: fused gu/dgu must hold [rows, 2*inter]');
    const s = 2 * inter;
    rt.dispatch(kernel, {
      params: { rows, inter, gate_stride: s, up_stride: s, up_offset: inter, dg_stride: s, du_stride: s, du_offset: inter },
      buffers: [a.gu, a.gu, a.dout, a.dgu],
      workgroups: rt.grid(Math.ceil(n / 64)),
    });
    return;
  }
  if (!a.up || !a.dup) throw err('siluMulBackward: separate layout needs up and dup');
  if (a.up.size < n * 4 || a.gu.size < n * 4 || a.dgu.size < n * 4 || a.dup.size < n * 4) throw err('siluMulBackward: buffer too small');
  if (a.dup === a.dgu) throw err('siluMulBackward: dup must differ from dgate (use fused: true)');
  // Two dispatches would be needed to write two buffers through one binding; instead write
  // dgate | dup into one scratch [rows, 2*inter] and copy out — one dispatch + two copies.
  const tmp = rt.acquire(2 * n * 4);
  rt.dispatch(kernel, {
    params: { rows: 1, inter: n, gate_stride: n, up_stride: n, up_offset: 0, dg_stride: 2 * n, du_stride: 2 * n, du_offset: n },
    buffers: [a.gu, a.up, a.dout, tmp],
    workgroups: rt.grid(Math.ceil(n / 64)),
  });
  rt.copy(tmp, 0, a.dgu, 0, n * 4);
  rt.copy(tmp, n * 4, a.dup, 0, n * 4);
  rt.release(tmp);
}
