// Runs every kernel check (shaders/*.check.ts) in Node under Dawn.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { Runtime } from './gpu/runtime.ts';
import { allChecks } from '../tests/helpers/all-checks.ts';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt?.destroyAll());

describe('kernels (node, dawn)', () => {
  const names = new Set<string>();
  for (const c of allChecks) {
    if (names.has(c.name)) throw new Error(`duplicate check name ${c.name}`);
    names.add(c.name);
    test(c.name, async () => {
      rt.device.pushErrorScope('validation');
      const r = await c.run(rt);
      const err = await rt.device.popErrorScope();
      expect(err?.message ?? null).toBeNull();
      expect(r.maxRelErr, `${c.name}: rel err ${r.maxRelErr.toExponential(2)} (bound ${r.bound}) ${r.detail ?? ''}`).toBeLessThan(r.bound);
    });
  }
});
