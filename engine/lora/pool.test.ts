import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { parseModelConfig, type ModelConfig } from '../model/config.ts';
import { AdapterPool, LoraPoolError, LoraPoolFullError } from './pool.ts';
import { MultiLoraRuntime } from './runtime.ts';
import { DirAdapterStore, MemoryAdapterStore } from './store.ts';
import { loraKey, moduleDims, savePeftAdapter, adapterSpec, type LoraAdapter } from './peft.ts';
import { LORA_MODULES, type LoraModule } from './hook.ts';
import { loraRef } from '../../shaders/lora/lora.ref.ts';
import { randomArray, relErr } from '../../shaders/lib/check.ts';
import { STORIES_DIR } from '../../tests/fixtures/stories.ts';
import { randomLoraAdapter } from '../../tests/helpers/random-lora.ts';

let rt: Runtime;
let config: ModelConfig;
beforeAll(async () => {
  rt = await Runtime.create();
  config = parseModelConfig(JSON.parse(await readFile(join(STORIES_DIR, 'config.json'), 'utf8')));
});
afterAll(() => rt?.destroyAll());

const mk = (name: string, r: number, seed: number, extra: Partial<Parameters<typeof randomLoraAdapter>[1]> = {}) =>
  randomLoraAdapter(config, { name, r, seed, ...extra });

function newPool(pages: number, extra: Partial<ConstructorParameters<typeof AdapterPool>[1]> = {}) {
  const per = AdapterPool.bytesPerPage(config);
  return new AdapterPool(rt, { config, gpuBudgetBytes: pages * per + per / 2, maxRank: 16, ...extra });
}

/** Runs every (layer, module) of a random step through MultiLoraRuntime and compares with the float64 reference. */
async function checkStep(pool: AdapterPool, rowAdapters: Array<string | null>, adapters: Map<string, LoraAdapter>, layers = [0, config.numLayers - 1]) {
  const lr = new MultiLoraRuntime(rt, pool);
  const plan = await lr.planStep(rowAdapters);
  const rows = rowAdapters.length;
  let worst = 0;
  for (const layer of layers) {
    for (const m of LORA_MODULES) {
      const { inDim, outDim } = moduleDims(config, m);
      const x = randomArray(rows * inDim, 7 + layer);
      const out0 = randomArray(rows * outDim, 8 + layer);
      const gx = rt.upload(x), go = rt.upload(out0);
      lr.apply(plan, layer, m, gx, go, { rows, inDim, outDim });
      const got = await rt.readF32(go, rows * outDim);
      rt.destroy(gx);
      rt.destroy(go);
      const rowsRef = rowAdapters.map((n) => {
        const a = n ? adapters.get(n)! : null;
        const w = a?.weights.get(loraKey(layer, m as LoraModule));
        return a && w ? { A: w.A, B: w.B, rank: a.r, scale: a.scaling } : null;
      });
      const ref = loraRef(x, out0, rowsRef, { inDim, outDim, xStride: inDim, outStride: outDim, outOff: 0 });
      rowsRef.forEach((a, r) => {
        if (!a) for (let j = 0; j < outDim; j++) expect(Object.is(got[r * outDim + j], out0[r * outDim + j])).toBe(true);
      });
      const dg = got.map((v, i) => v - out0[i]);
      const dr = ref.map((v, i) => v - out0[i]);
      worst = Math.max(worst, relErr(dg, dr));
    }
  }
  lr.endStep(plan);
  expect(worst).toBeLessThan(1e-5);
}

describe('adapter pool', () => {
  it('evicts LRU under a GPU budget; data stays correct after page reuse; counters', async () => {
    const pool = newPool(20);
    const ads = new Map([mk('a', 8, 1), mk('b', 8, 2), mk('c', 4, 3, { targetModules: ['q_proj', 'v_proj'] }), mk('d', 16, 4, { useRslora: true })].map((a) => [a.name, a]));
    for (const a of ads.values()) await pool.register(a.name, a);
    await pool.acquire('a');
    await pool.acquire('b');
    await pool.acquire('c'); // 20 pages used
    expect(pool.stats()).toMatchObject({ loads: 3, evictions: 0, pagesFree: 0, resident: 3, misses: 3, hits: 0 });
    await pool.acquire('a'); // hit; now b is LRU
    await pool.acquire('d'); // needs 16: evicts b (8) then c (4), then a (8)
    expect(pool.isResident('b')).toBe(false);
    expect(pool.stats()).toMatchObject({ hits: 1, loads: 4, evictions: 3, resident: 1, pagesFree: 4 });
    // mixed ranks in one step, after pages were recycled; rows without adapter untouched
    await checkStep(pool, ['c', 'c', null, 'd', 'c', null, 'd', 'd', 'd', 'c'], ads);
    expect(pool.isResident('c') && pool.isResident('d')).toBe(true);
    // admission helper: which adapter sets can be resident together (20 pages)
    expect(pool.fits(['c', 'd'])).toBe(true);
    expect(pool.fits(['a', 'd'])).toBe(false);
    expect(pool.fits(['a', 'nope'])).toBe(false);
    // explicit GPU-tier eviction keeps the CPU tier; refused while pinned
    pool.pin('c');
    expect(pool.evict('c')).toBe(false);
    pool.unpin('c');
    expect(pool.evict('c')).toBe(true);
    expect(pool.inCpuTier('c')).toBe(true);
    const cpuHits = pool.stats().cpuHits;
    await pool.acquire('c');
    expect(pool.stats().cpuHits).toBe(cpuHits + 1);
    pool.destroy();
  });

  it('never evicts pinned adapters; all pinned → LoraPoolFullError; unknown adapter → error', async () => {
    const pool = newPool(16);
    for (const [n, r, s] of [['a', 8, 1], ['b', 8, 2], ['c', 8, 3]] as const) await pool.register(n, mk(n, r, s));
    pool.pin('a'); // a running request
    await pool.acquire('a');
    await pool.acquire('b');
    pool.pin('b');
    const e = await pool.acquire('c').catch((x) => x);
    expect(e).toBeInstanceOf(LoraPoolFullError);
    expect(pool.isResident('a') && pool.isResident('b')).toBe(true);
    pool.unpin('b');
    await pool.acquire('c'); // evicts b (a is pinned even though it is older)
    expect(pool.isResident('a')).toBe(true);
    expect(pool.isResident('b')).toBe(false);
    await expect(pool.unload('a')).rejects.toThrow(/in use/);
    pool.unpin('a');
    await expect(pool.acquire('nope')).rejects.toBeInstanceOf(LoraPoolError);
    // a step pins its adapters while it runs
    const lr = new MultiLoraRuntime(rt, pool);
    const plan = await lr.planStep(['a', 'c']);
    expect(pool.pinCount('a')).toBe(1);
    await expect(pool.acquire('b')).rejects.toBeInstanceOf(LoraPoolFullError);
    lr.endStep(plan);
    expect(pool.pinCount('a')).toBe(0);
    await pool.acquire('b');
    await expect(lr.planStep(['zzz'])).rejects.toThrow(/unknown adapter "zzz"/);
    pool.destroy();
  });

  it('CPU tier hit vs persistent (directory) tier load; restore from the store; bytes back to baseline after unload', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lora-store-'));
    try {
      const a = mk('a', 8, 11), b = mk('b', 8, 12);
      const store = new DirAdapterStore(dir);
      rt.trimPool();
      const base = rt.stats().allocatedBytes;
      const pool = newPool(8, { store, cpuBudgetBytes: a.bytes + 10 }); // CPU tier holds one adapter
      const afterCreate = rt.stats().allocatedBytes;
      // register from a PEFT directory on disk and from memory
      const srcDir = join(dir, '..', `${dir.split('/').pop()}-src`);
      await savePeftAdapter(srcDir, adapterSpec(a));
      await pool.register('a', srcDir);
      await pool.register('b', b); // pushes a out of the CPU tier
      expect(pool.inCpuTier('a')).toBe(false);
      expect((await readdir(dir)).sort()).toEqual(['a', 'b']);
      const s0 = pool.stats();
      expect(s0.cpuEvictions).toBe(1);
      expect(s0.persistentBytes).toBeGreaterThan(a.bytes + b.bytes);
      await pool.acquire('b'); // CPU hit
      expect(pool.stats()).toMatchObject({ cpuHits: 1, persistentLoads: 0, loads: 1 });
      await pool.acquire('a'); // evicts b (8 pages), loads a from disk
      expect(pool.stats()).toMatchObject({ cpuHits: 1, persistentLoads: 1, loads: 2, evictions: 1 });
      await checkStep(pool, ['a', 'a', 'a', null], new Map([['a', a]]));
      expect(rt.stats().allocatedBytes - afterCreate).toBeLessThanOrEqual(rt.stats().pooledBytes); // loads allocate nothing new beyond pooled scratch

      // a second pool on the same store finds both adapters
      const pool2 = newPool(8, { store });
      expect(await pool2.restoreFromStore()).toEqual(['a', 'b']);
      await checkStep(pool2, [null, 'b', 'b'], new Map([['b', b]]));
      pool2.destroy();

      for (const n of ['a', 'b']) await pool.unload(n);
      const s = pool.stats();
      expect(s).toMatchObject({ gpuBytesUsed: 0, cpuBytes: 0, persistentBytes: 0, resident: 0, pagesFree: 8 });
      expect(await readdir(dir)).toEqual([]);
      pool.destroy();
      rt.trimPool();
      expect(rt.stats().allocatedBytes).toBe(base);
      await rm(srcDir, { recursive: true });
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('memory store, unload by name at run time, re-register under the same name with new weights', async () => {
    const pool = newPool(32, { store: new MemoryAdapterStore() });
    const a1 = mk('a', 4, 21), a2 = mk('a', 12, 22);
    await pool.register('a', a1);
    await expect(pool.register('a', a2)).rejects.toThrow(/already loaded/);
    await checkStep(pool, ['a'], new Map([['a', a1]]), [1]);
    await pool.unload('a');
    await pool.register('a', a2);
    await checkStep(pool, ['a', 'a', 'a', 'a', 'a'], new Map([['a', a2]]), [2]);
    await expect(pool.register('big', mk('big', 17, 1))).rejects.toThrow(/rank 17 exceeds/);
    pool.destroy();
  });

  it('max_lora_rank: an adapter above the pool\'s maxRank is refused at registration (PEFT dir too) with code adapter_invalid', async () => {
    const pool = newPool(40);
    const dir = await mkdtemp(join(tmpdir(), 'lora-maxrank-'));
    try {
      await savePeftAdapter(join(dir, 'big'), adapterSpec(mk('big', 17, 3)));
      for (const src of [mk('big', 17, 3), join(dir, 'big')]) {
        const e = await pool.register('big', src).then(() => null, (x: unknown) => x);
        expect(e).toBeInstanceOf(LoraPoolError);
        expect((e as LoraPoolError).code).toBe('adapter_invalid');
        expect((e as Error).message).toMatch(/rank 17 exceeds the pool's maximum rank 16 \(max_lora_rank/);
      }
      expect(pool.has('big')).toBe(false);
      await pool.register('ok', mk('ok', 16, 4)); // = maxRank is fine
    } finally {
      pool.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('applyGroup: q|k|v and gate|up of mixed-rank adapters (1, 5, 16; one on q/v only) written into fused rows = per-module float64', async () => {
    const pool = newPool(40);
    const ads = [mk('r1', 1, 31), mk('r5', 5, 32, { targetModules: ['q_proj', 'v_proj', 'up_proj'] }), mk('r16', 16, 33)];
    for (const a of ads) await pool.register(a.name, a);
    const lr = new MultiLoraRuntime(rt, pool);
    const rowAdapters = ['r16', null, 'r1', 'r5', 'r5', 'r16', 'r16', 'r16', 'r16', null, 'r1'];
    const rows = rowAdapters.length;
    const plan = await lr.planStep(rowAdapters);
    const layer = 1;
    for (const [group, mods] of [['qkv', ['q_proj', 'k_proj', 'v_proj']], ['gate_up', ['gate_proj', 'up_proj']]] as const) {
      const dims = mods.map((m) => moduleDims(config, m));
      const inDim = dims[0]!.inDim;
      const width = dims.reduce((n, d) => n + d.outDim, 0);
      const stride = width + 3, off = 2; // a wider row: the group's columns start at 2
      const x = randomArray(rows * inDim, 41), out0 = randomArray(rows * stride, 42);
      const gx = rt.upload(x), go = rt.upload(out0);
      lr.applyGroup(plan, layer, group, gx, go, { rows, inDim, outDim: width, outRowStride: stride, outColOffset: off });
      const got = await rt.readF32(go, rows * stride);
      rt.destroy(gx);
      rt.destroy(go);
      let ref: ArrayLike<number> = out0;
      let col = off;
      mods.forEach((m, i) => {
        const rowsRef = rowAdapters.map((n) => {
          const a = n ? ads.find((d) => d.name === n)! : null;
          const w = a?.weights.get(loraKey(layer, m));
          return a && w ? { A: w.A, B: w.B, rank: a.r, scale: a.scaling } : null;
        });
        ref = loraRef(x, ref, rowsRef, { inDim, outDim: dims[i]!.outDim, xStride: inDim, outStride: stride, outOff: col });
        col += dims[i]!.outDim;
      });
      // rows without an adapter, the columns outside the group and k of r5 (not targeted) stay bit-identical
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < stride; j++) {
          const inGroup = j >= off && j < off + width;
          if (!rowAdapters[r] || !inGroup) expect(Object.is(got[r * stride + j], out0[r * stride + j])).toBe(true);
        }
      }
      expect(relErr(got.map((v, i) => v - out0[i]!), Float64Array.from(ref).map((v, i) => v - out0[i]!))).toBeLessThan(1e-5);
    }
    lr.endStep(plan);
    pool.destroy();
  });
});
