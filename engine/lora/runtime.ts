// MultiLoraRuntime: the LoraRuntime (engine/lora/hook.ts) the forward pass calls.
//   planStep(tokenAdapters): pins + makes every adapter of the step GPU-resident, turns the row →
//     adapter list into segments (consecutive rows sharing an adapter), then into SGMV tiles (≤ 4
//     rows of one adapter: prefill chunks, and decode rows gathered by adapter) and BGMV rows (an adapter
//     with a single row in the step), uploads both lists once.
//   apply(plan, layer, module, ...): records shrink + expand for this projection; a no-op when no
//     row's adapter targets (layer, module).
//   endStep(plan): returns the scratch buffers, unpins.
import type { Runtime } from '../../shaders/gpu/runtime.ts';
import { buildItems, loraApply, releaseItems, segmentsFromRowSlots, uploadItems, type LoraStepBuffers } from '../../shaders/lora/lora.ts';
import { LORA_MODULES, type LoraApplyOptions, type LoraModule, type LoraRuntime, type LoraStepPlan } from './hook.ts';
import { AdapterPool, LoraPoolError, moduleBit } from './pool.ts';

interface Plan extends LoraStepPlan {
  step: LoraStepBuffers | null;
  pinned: string[];
  /** active[l * 7 + m]: some row's adapter targets (l, m). */
  active: Uint8Array;
  done: boolean;
}

export interface MultiLoraRuntimeOptions {
  /** Segments at least this long use SGMV tiles (default 2). */
  sgmvMinRows?: number;
}

export class MultiLoraRuntime implements LoraRuntime {
  constructor(
    readonly rt: Runtime,
    readonly pool: AdapterPool,
    private opts: MultiLoraRuntimeOptions = {},
  ) {}

  async planStep(tokenAdapters: ReadonlyArray<string | null>): Promise<LoraStepPlan> {
    const rows = tokenAdapters.length;
    const L = this.pool.config.numLayers;
    const names = [...new Set(tokenAdapters.filter((a): a is string => a !== null))];
    const active = new Uint8Array(L * LORA_MODULES.length);
    if (!names.length) return { rows, empty: true, step: null, pinned: [], active, done: false } as Plan;
    for (const n of names) if (!this.pool.has(n)) throw new LoraPoolError(`unknown adapter "${n}" (loaded: ${this.pool.names().join(', ') || 'none'})`);
    const pinned: string[] = [];
    try {
      for (const n of names) {
        this.pool.pin(n);
        pinned.push(n);
      }
      const slotOf = new Map<string, number>();
      let kSpan = 1;
      for (const n of names) {
        const r = await this.pool.acquire(n);
        slotOf.set(n, r.slot);
        kSpan = Math.max(kSpan, r.rank);
        for (let l = 0; l < L; l++) for (let m = 0; m < LORA_MODULES.length; m++) if (r.masks[l]! & (1 << m)) active[l * LORA_MODULES.length + m] = 1;
      }
      const rowSlots = tokenAdapters.map((a) => (a === null ? -1 : slotOf.get(a)!));
      const items = buildItems(segmentsFromRowSlots(rowSlots), rows, this.opts.sgmvMinRows);
      const step = uploadItems(this.rt, items, rows, this.pool.rMax, kSpan);
      return { rows, empty: false, step, pinned, active, done: false } as Plan;
    } catch (e) {
      for (const n of pinned) this.pool.unpin(n);
      throw e;
    }
  }

  apply(plan: LoraStepPlan, layer: number, module: LoraModule, x: GPUBuffer, out: GPUBuffer, o: LoraApplyOptions): void {
    const p = plan as Plan;
    if (p.empty) return;
    if (p.done) throw new Error('lora.apply: plan already ended (endStep)');
    if (o.rows !== p.rows) throw new Error(`lora.apply: rows ${o.rows} != plan rows ${p.rows}`);
    if (!p.active[layer * LORA_MODULES.length + LORA_MODULES.indexOf(module)]) return;
    const bank = this.pool.bank(layer, module);
    if (o.inDim !== bank.inDim || o.outDim !== bank.outDim) {
      throw new Error(`lora.apply: ${module} of layer ${layer} is ${bank.inDim}→${bank.outDim}, called with ${o.inDim}→${o.outDim}`);
    }
    loraApply(this.rt, {
      x,
      out,
      bank,
      tables: this.pool.tables,
      step: p.step!,
      layer,
      moduleBit: moduleBit(module),
      xStride: o.xRowStride,
      outStride: o.outRowStride,
      outOff: o.outColOffset,
    });
  }

  endStep(plan: LoraStepPlan): void {
    const p = plan as Plan;
    if (p.done) return;
    p.done = true;
    if (p.step) releaseItems(this.rt, p.step);
    for (const n of p.pinned) this.pool.unpin(n);
  }
}
