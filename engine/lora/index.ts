// Multi-LoRA serving: PEFT adapters (peft.ts), the tiered adapter pool (pool.ts, store.ts) and the
// LoraRuntime the forward pass calls (runtime.ts, contract in hook.ts).
//
// Wiring into an engine (GpuModel + Scheduler):
//   const lora = await createLoraSupport(rt, config, { adapters: { name: '/path/to/peft-dir' } });
//   model.attachLora(lora.runtime);
//   new Scheduler(runner, cache, { hasAdapter: (n) => lora.pool.has(n), ... });
// Adapters can be added / removed at run time with lora.pool.register(name, dirOrSource) / unload(name).
import type { Runtime } from '../../shaders/gpu/runtime.ts';
import type { ModelConfig } from '../model/config.ts';
import type { ModelSource } from '../model/source.ts';
import { AdapterPool } from './pool.ts';
import { MultiLoraRuntime } from './runtime.ts';
import type { AdapterStore } from './store.ts';
import type { LoraAdapter } from './peft.ts';

export * from './hook.ts';
export * from './peft.ts';
export { AdapterPool, LoraPoolError, LoraPoolFullError, moduleBit, type AdapterPoolOptions, type PoolStats } from './pool.ts';
export { MultiLoraRuntime, type MultiLoraRuntimeOptions } from './runtime.ts';
export { DirAdapterStore, IdbAdapterStore, MemoryAdapterStore, defaultAdapterStore, type AdapterStore, type AdapterFiles } from './store.ts';

export interface LoraSupportOptions {
  /** Adapters to register now: name → PEFT directory path, ModelSource, or parsed adapter. */
  adapters?: Record<string, string | ModelSource | LoraAdapter>;
  /** GPU budget for adapter pages (default: room for 8 adapters of maxRank... capped at 256 MiB). */
  gpuBudgetBytes?: number;
  maxRank?: number;
  maxSlots?: number;
  cpuBudgetBytes?: number;
  store?: AdapterStore | null;
  /** Segments at least this long run as SGMV (default 2). */
  sgmvMinRows?: number;
  /** Shrinks as tails of the base matmuls (default true; false: separate shrink and expand dispatches). */
  fused?: boolean;
}

export interface LoraSupport {
  pool: AdapterPool;
  runtime: MultiLoraRuntime;
  destroy(): void;
}

export async function createLoraSupport(rt: Runtime, config: ModelConfig, o: LoraSupportOptions = {}): Promise<LoraSupport> {
  const maxRank = o.maxRank ?? 64;
  const perPage = AdapterPool.bytesPerPage(config);
  const gpuBudgetBytes = o.gpuBudgetBytes ?? Math.max(perPage * maxRank, Math.min(256 << 20, perPage * maxRank * 8));
  const pool = new AdapterPool(rt, { config, gpuBudgetBytes, maxRank, maxSlots: o.maxSlots, cpuBudgetBytes: o.cpuBudgetBytes, store: o.store });
  try {
    for (const [name, src] of Object.entries(o.adapters ?? {})) await pool.register(name, src);
  } catch (e) {
    pool.destroy();
    throw e;
  }
  const runtime = new MultiLoraRuntime(rt, pool, { sgmvMinRows: o.sgmvMinRows, fused: o.fused });
  return { pool, runtime, destroy: () => pool.destroy() };
}
