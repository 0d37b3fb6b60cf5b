// Kernel checks: each `shaders/<op>.check.ts` exports `checks: KernelCheck[]` — random inputs at
// awkward sizes, the GPU result compared with the op's float64 reference (`<op>.ref.ts`).
// The same checks run in Node under Dawn (shaders/kernels.test.ts) and in headless Chromium
// (tests/browser/browser.test.ts), and `lorafleet doctor` runs a few as a self-check.
import type { Runtime } from '../gpu/runtime.ts';
import { uniform01 } from './random.ts';

export interface CheckResult {
  /** max |gpu - ref| / max(max |ref|, 1e-30): error relative to the tensor's scale. */
  maxRelErr: number;
  bound: number;
  detail?: string;
}

export interface KernelCheck {
  name: string;
  run(rt: Runtime): Promise<CheckResult>;
}

export function relErr(gpu: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (gpu.length !== ref.length) throw new Error(`length mismatch: gpu ${gpu.length} vs ref ${ref.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(gpu[i] - ref[i]);
    if (!(d <= maxDiff)) maxDiff = Number.isNaN(d) ? Infinity : d;
    const r = Math.abs(ref[i]);
    if (r > maxRef) maxRef = r;
  }
  return maxDiff / Math.max(maxRef, 1e-30);
}

export function result(gpu: ArrayLike<number>, ref: ArrayLike<number>, bound: number, detail?: string): CheckResult {
  return { maxRelErr: relErr(gpu, ref), bound, detail };
}

export function passed(r: CheckResult): boolean {
  return r.maxRelErr < r.bound;
}

/** Seeded PRNG (mulberry32) so failures reproduce; uniform in [-scale, scale). */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const u = uniform01(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * u() - 1) * scale;
  return out;
}
