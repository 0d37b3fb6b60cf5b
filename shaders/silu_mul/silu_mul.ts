// SwiGLU activation (host side). WGSL: shaders/silu_mul.wgsl · reference: shaders/silu_mul.ref.ts · check: shaders/silu_mul.check.ts
// Fused multi-LoRA variant (opts.lora, generated below with shaders/lora/lora.fused.ts): the shrink
// of down_proj (act · Aᵀ) as tail invocations that recompute their row of silu(gate) · up from the
// fused gate|up rows — checks: shaders/lora/lora.fused.check.ts.
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';
import { LORA_FUSED_FIELDS, checkFused, fusedParams, loraShrinkWgsl, loraStepWgsl, type LoraFusedField, type LoraShrinkArgs } from '../lora/lora.fused.ts';

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
  /** Fused layout only: the shrink of the group reading out (down_proj), as tail invocations. */
  lora?: LoraShrinkArgs;
}

const SiluMulLoraParams = defineParams('SiluMulParams', { rows: 'u32', inter: 'u32', gate_stride: 'u32', up_stride: 'u32', up_offset: 'u32', ...LORA_FUSED_FIELDS });
type LF = F | LoraFusedField;
let loraKernel: Kernel<LF> | null = null;
/** Bindings: 0 params, 1 gate, 2 up, 3 out, 4 meta, 5 t, 6 A. */
function siluMulLoraKernel(): Kernel<LF> {
  if (loraKernel) return loraKernel;
  const main = WGSL.silu_mul.replace('if (idx >= p.rows * p.inter) { return; }', 'if (idx >= p.rows * p.inter) { lShrink(idx - p.rows * p.inter); return; }');
  if (main === WGSL.silu_mul) throw new Error('siluMul: the fused variant did not find its anchor in silu_mul.wgsl');
  const code = `${SiluMulLoraParams.wgsl}${main}${loraStepWgsl(4, 5, true)}${loraShrinkWgsl(1, 6)}
fn lsilu(r: u32, j: u32) -> f32 {
  let g = gate[r * p.gate_stride + j];
  return g / (1.0 + exp(-g)) * up[r * p.up_stride + p.up_offset + j];
}
// silu(gate) · up [row, 4c .. 4c + 3], 0 past inter.
fn lIn4(row: u32, c: u32) -> vec4<f32> {
  let j = 4u * c;
  var v = vec4<f32>(lsilu(row, j), 0.0, 0.0, 0.0);
  if (j + 1u < p.inter) { v.y = lsilu(row, j + 1u); }
  if (j + 2u < p.inter) { v.z = lsilu(row, j + 2u); }
  if (j + 3u < p.inter) { v.w = lsilu(row, j + 3u); }
  return v;
}
fn lMul4(c: u32) -> vec4<f32> { return vec4<f32>(1.0); }
fn lFinish(ss: f32) -> f32 { return 1.0; }
`;
  return (loraKernel = { name: 'silu_mul_lora_shrink', code, params: SiluMulLoraParams });
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
  const l = opts.lora;
  if (l) {
    if (opts.rows === undefined) throw new Error('siluMul: the LoRA shrink needs the fused layout (rows, inter)');
    checkFused('siluMul', params.rows, l, undefined, { inDim: params.inter });
    if (l.bank.outDims.length !== 1) throw new Error('siluMul: the LoRA shrink takes a single-module bank (down_proj)');
    rt.dispatch(siluMulLoraKernel(), {
      params: { ...params, ...fusedParams(l.step, l.layer, l) },
      buffers: [gate, up, out, l.step.meta, l.step.t, l.bank.A],
      workgroups: rt.grid(Math.ceil((n + l.step.nEnt) / 64)),
    });
    return;
  }
  rt.dispatch(kernel, { params, buffers: [gate, up, out], workgroups: rt.grid(Math.ceil(n / 64)) });
}
