// Runtime: WGSL binding parsing and the bind-group cache (explicit layouts, params at a dynamic
// uniform offset).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Runtime, parseBindings } from './runtime.ts';
import { addInPlace } from '../add/add.ts';
import { rmsnorm } from '../rmsnorm/rmsnorm.ts';
import { rmsnormRef } from '../rmsnorm/rmsnorm.ref.ts';
import { randomArray } from '../lib/check.ts';

describe('parseBindings', () => {
  it('reads uniform / read-only storage / storage from @group(0) @binding(n) declarations', () => {
    const code = `
      @group(0) @binding(0) var<uniform> p: P;
      @group(0) @binding(1) var<storage, read> a: array<f32>;
      @binding(2) @group(0) var<storage,read_write> b: array<f32>;
      @group(0) @binding(3) var<storage> c: array<f32>;
      @group(1) @binding(0) var<storage, read_write> other: array<f32>;
      var<workgroup> s: array<f32, 64>;`;
    const m = parseBindings(code);
    expect([...m.entries()].sort()).toEqual([[0, 'uniform'], [1, 'read-only-storage'], [2, 'storage'], [3, 'read-only-storage']]);
  });
});

describe('bind-group cache', () => {
  let rt: Runtime;
  beforeAll(async () => {
    rt = await Runtime.create();
  });
  afterAll(() => rt?.destroyAll());

  it('dispatches of one kernel with different params in one submission each see their own params; one bind group serves them', async () => {
    const rows = 3, dim = 20;
    const x = randomArray(rows * dim, 1, 2), w = randomArray(dim, 2);
    const gx = rt.upload(x), gw = rt.upload(w), out = rt.createBuffer(rows * dim * 4);
    const a = rt.upload(new Float32Array(32)), one = rt.upload(new Float32Array(32).fill(1));
    await rt.sync();
    const s0 = rt.stats();
    // a[i] += 1 for i < n, five dispatches with different n on the same buffers: a[i] = #{n > i}
    const ns = [32, 8, 16, 4, 24];
    for (const n of ns) addInPlace(rt, a, one, n);
    // rmsnorm over 3 rows with eps 0.5, then over 1 row with eps 1e-5: row 0 from the second
    rmsnorm(rt, gx, gw, out, 3, dim, 0.5, { mode: 'row' });
    rmsnorm(rt, gx, gw, out, 1, dim, 1e-5, { mode: 'row' });
    const got = await rt.readF32(out, rows * dim);
    const av = await rt.readF32(a, 32);
    const s1 = rt.stats();
    expect([...av]).toEqual(Array.from({ length: 32 }, (_, i) => ns.filter((n) => n > i).length));
    for (let r = 0; r < rows; r++) {
      const ref = rmsnormRef(x.subarray(r * dim, (r + 1) * dim), w, 1, dim, r === 0 ? 1e-5 : 0.5);
      for (let j = 0; j < dim; j++) expect(Math.abs(got[r * dim + j]! - ref[j]!)).toBeLessThan(1e-5 * (1 + Math.abs(ref[j]!)));
    }
    expect(s1.bindGroupsCreated - s0.bindGroupsCreated).toBe(2);
    expect(s1.bindGroupHits - s0.bindGroupHits).toBe(5);
    for (const b of [gx, gw, out, a, one]) rt.destroy(b);
  });

  it('a buffer bound at different offsets gets different bind groups; destroy drops cached groups', async () => {
    const a = rt.createBuffer(512 * 4), b = rt.upload(new Float32Array(512).fill(2));
    await rt.sync();
    const s0 = rt.stats();
    addInPlace(rt, { buffer: a, offset: 0, size: 256 * 4 } as unknown as GPUBuffer, b, 256);
    addInPlace(rt, { buffer: a, offset: 1024, size: 256 * 4 } as unknown as GPUBuffer, b, 256);
    addInPlace(rt, { buffer: a, offset: 1024, size: 256 * 4 } as unknown as GPUBuffer, b, 256);
    const got = await rt.readF32(a, 512);
    const s1 = rt.stats();
    expect(got[0]).toBe(2);
    expect(got[256]).toBe(4);
    expect(s1.bindGroupsCreated - s0.bindGroupsCreated).toBe(2);
    rt.destroy(a);
    rt.destroy(b);
  });
});
