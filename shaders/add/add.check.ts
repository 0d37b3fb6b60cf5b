import type { KernelCheck } from '../lib/check.ts';
import { randomArray, result } from '../lib/check.ts';
import { addInPlace } from './add.ts';
import { addRef } from './add.ref.ts';

export const checks: KernelCheck[] = [1, 4 * 37, 4 * 70001].map((n4) => ({
  name: `add n=${n4 * 4}`,
  async run(rt) {
    const n = n4 * 4;
    const a = randomArray(n, 1), b = randomArray(n, 2);
    const ga = rt.upload(a), gb = rt.upload(b);
    addInPlace(rt, ga, gb, n);
    const out = await rt.readF32(ga, n);
    rt.destroy(ga); rt.destroy(gb);
    return result(out, addRef(a, b), 1e-6);
  },
}));
