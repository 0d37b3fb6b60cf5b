// The page side of the browser adapter-pool test: the persistent tier is IndexedDB here
// (defaultAdapterStore() picks it by environment). Registers adapters, evicts, restores them
// into a second pool from IndexedDB, applies them on the GPU and compares with the float64 reference.
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { parseModelConfig } from '../../engine/model/config.ts';
import { AdapterPool } from '../../engine/lora/pool.ts';
import { MultiLoraRuntime } from '../../engine/lora/runtime.ts';
import { defaultAdapterStore } from '../../engine/lora/store.ts';
import { loraKey, moduleDims, type LoraAdapter } from '../../engine/lora/peft.ts';
import { loraRef } from '../../shaders/lora/lora.ref.ts';
import { randomArray, relErr } from '../../shaders/lib/check.ts';
import { randomLoraAdapter } from '../helpers/random-lora.ts';

declare global {
  interface Window {
    __loraTest?: (configJson: unknown) => Promise<{
      storeKind: string;
      storedAfterRegister: string[];
      restored: string[];
      persistentLoads: number;
      maxRelErr: number;
      untouchedOk: boolean;
      storedAfterUnload: string[];
      persistentBytesAfterUnload: number;
    }>;
  }
}

async function applyErr(rt: Runtime, pool: AdapterPool, rowsAd: Array<LoraAdapter | null>): Promise<{ err: number; untouched: boolean }> {
  const lr = new MultiLoraRuntime(rt, pool);
  const plan = await lr.planStep(rowsAd.map((a) => a?.name ?? null));
  const { inDim, outDim } = moduleDims(pool.config, 'q_proj');
  const rows = rowsAd.length;
  const x = randomArray(rows * inDim, 3), out0 = randomArray(rows * outDim, 4);
  const gx = rt.upload(x), go = rt.upload(out0);
  lr.apply(plan, 1, 'q_proj', gx, go, { rows, inDim, outDim });
  const got = await rt.readF32(go, rows * outDim);
  lr.endStep(plan);
  rt.destroy(gx);
  rt.destroy(go);
  const ref = loraRef(x, out0, rowsAd.map((a) => (a ? { ...a.weights.get(loraKey(1, 'q_proj'))!, rank: a.r, scale: a.scaling } : null)), { inDim, outDim, xStride: inDim, outStride: outDim, outOff: 0 });
  let untouched = true;
  rowsAd.forEach((a, r) => {
    if (!a) for (let j = 0; j < outDim; j++) if (!Object.is(got[r * outDim + j], out0[r * outDim + j])) untouched = false;
  });
  return { err: relErr(got.map((v, i) => v - out0[i]), ref.map((v, i) => v - out0[i])), untouched };
}

window.__loraTest = async (configJson) => {
  const config = parseModelConfig(configJson);
  const rt = await Runtime.create();
  const store = await defaultAdapterStore();
  for (const n of await store.list()) await store.delete(n);
  const a = randomLoraAdapter(config, { name: 'a', r: 4, seed: 1 });
  const b = randomLoraAdapter(config, { name: 'b', r: 8, seed: 2, useRslora: true });
  const per = AdapterPool.bytesPerPage(config);
  const pool = new AdapterPool(rt, { config, gpuBudgetBytes: 12 * per, maxRank: 8, store, cpuBudgetBytes: 1 });
  await pool.register('a', a);
  await pool.register('b', b);
  const storedAfterRegister = await store.list();
  // a second pool (a page reload, say) finds both in IndexedDB and loads them from there
  const pool2 = new AdapterPool(rt, { config, gpuBudgetBytes: 12 * per, maxRank: 8, store: await defaultAdapterStore(), cpuBudgetBytes: 1 });
  const restored = await pool2.restoreFromStore();
  const r = await applyErr(rt, pool2, [a, null, b, b, null, a]);
  const persistentLoads = pool2.stats().persistentLoads;
  pool2.destroy();
  for (const n of ['a', 'b']) await pool.unload(n);
  const storedAfterUnload = await store.list();
  const persistentBytesAfterUnload = pool.stats().persistentBytes;
  pool.destroy();
  rt.destroyAll();
  document.getElementById('log')!.textContent = 'done';
  return { storeKind: store.kind, storedAfterRegister, restored, persistentLoads, maxRelErr: r.err, untouchedOk: r.untouched, storedAfterUnload, persistentBytesAfterUnload };
};
