// INTERIM: minimal silu·mul and greedy argmax so the forward pass can be verified before
// shaders/silu_mul.ts and shaders/sample.ts land. Replaced by those; not product code.
import { defineParams } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';

const P = defineParams('InterimParams', { rows: 'u32', cols: 'u32' });
const siluK: Kernel<'rows' | 'cols'> = {
  name: 'interim_silu_mul',
  params: P,
  code:
    P.wgsl +
    `@group(0) @binding(0) var<uniform> p: InterimParams;
@group(0) @binding(1) var<storage, read> gu: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) n: vec3u) {
  let i = g.x + g.y * n.x * 64u;
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols; let c = i % p.cols;
  let a = gu[r * 2u * p.cols + c]; let b = gu[r * 2u * p.cols + p.cols + c];
  out[i] = a / (1.0 + exp(-a)) * b;
}`,
};
const argmaxK: Kernel<'rows' | 'cols'> = {
  name: 'interim_argmax',
  params: P,
  code:
    P.wgsl +
    `@group(0) @binding(0) var<uniform> p: InterimParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1) fn main(@builtin(global_invocation_id) g: vec3u) {
  let r = g.x;
  if (r >= p.rows) { return; }
  var best = 0u; var bv = x[r * p.cols];
  for (var i = 1u; i < p.cols; i++) { let v = x[r * p.cols + i]; if (v > bv) { bv = v; best = i; } }
  out[r] = best;
}`,
};

export function interimSiluMulFused(rt: Runtime, gu: GPUBuffer, out: GPUBuffer, rows: number, cols: number): void {
  rt.dispatch(siluK, { params: { rows, cols }, buffers: [gu, out], workgroups: rt.grid(Math.ceil((rows * cols) / 64)) });
}
export function interimArgmax(rt: Runtime, x: GPUBuffer, out: GPUBuffer, rows: number, cols: number): void {
  rt.dispatch(argmaxK, { params: { rows, cols }, buffers: [x, out], workgroups: [rows] });
}
