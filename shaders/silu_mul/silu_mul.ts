// SwiGLU activation (host side). WGSL: shaders/silu_mul.wgsl · reference: shaders/silu_mul.ref.ts · check: shaders/silu_mul.check.ts
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';

export const SiluMulParams = defineParams('SiluMulParams', { rows: 'u32', inter: 'u32', gate_stride: 'u32', up_stride: 'u32', up_offset: 'u32' });
type F = 'rows' | 'inter' | 'gate_stride' | 'up_stride' | 'up_offset';
const kernel: Kernel<F> = { name: 'silu_mul', code: SiluMulParams.wgsl + WGSL.silu_mul, params: SiluMulParams };

export interface SiluMulOptions {
  /**
   * Fused gate|up layout: `gate` holds [rows, 2*inter] with gate in columns [0, inter) and up in
   * [inter, 2*inter) (one matmul against the concatenated weights). `up` is ignored (pass the same
   * buffer); n must equal rows * inter; out is [rows, inter].
   */
  rows?: number;
  inter?: number;
}

/** out = silu(gate) * up elementwise over n floats (or the fused layout, see SiluMulOptions). out must not alias the inputs. */
export function siluMul(rt: Runtime, gate: GPUBuffer, up: GPUBuffer, out: GPUBuffer, n: number, opts: SiluMulOptions = {}): void {
  if (n === 0) return;
  if (out === gate || out === up) throw new Error('siluMul: out must not alias gate/up');
  if (out.size < n * 4) throw new Error('siluMul: out too small');
  let params: Record<F, number>;
  if (opts.rows !== undefined || opts.inter !== undefined) {
    const rows = opts.rows ?? 1, inter = opts.inter ?? n;
    if (rows * inter !== n) throw new Error(`siluMul: fused rows ${rows} × inter ${inter} != n ${n}`);
    if (gate.size < rows * 2 * inter * 4) throw new Error('siluMul: fused gate|up buffer too small');
    params = { rows, inter, gate_stride: 2 * inter, up_stride: 2 * inter, up_offset: inter };
    up = gate;
  } else {
    if (gate.size < n * 4 || up.size < n * 4) throw new Error('siluMul: gate/up too small');
    params = { rows: 1, inter: n, gate_stride: n, up_stride: n, up_offset: 0 };
  }
  rt.dispatch(kernel, { params, buffers: [gate, up, out], workgroups: rt.grid(Math.ceil(n / 64)) });
}
