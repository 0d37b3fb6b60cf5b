// MultiLoraRuntime: the LoraRuntime (engine/lora/hook.ts) the forward pass calls.
//   planStep(tokenAdapters): pins + makes every adapter of the step GPU-resident, turns the row →
//     adapter list into segments (consecutive rows sharing an adapter), then into SGMV tiles (≤ 4
//     rows of one adapter: prefill chunks, and decode rows gathered by adapter) and BGMV rows (an adapter
//     with a single row in the step), with shrink entries per 4 rank rows of each item's own rank
//     (mixed ranks are not padded to the largest); uploads all lists once, in one buffer.
//   applyGroup(plan, layer, group, ...): records one shrink + one expand for every module of the
//     group (q|k|v, o, gate|up, down) from the group's bank; modules no row's adapter targets at
//     this layer are left out of the range, and the whole call is a no-op when none is targeted.
//   apply(plan, layer, module, ...): the same for a single module (its own output buffer / column).
//   fused(plan): the path the forward uses by default (shaders/lora/lora.fused.ts): each group's shrink
//     runs as the tail of the base matmul over the same x (shrink(l, g) → matmul's loraShrink; planStep
//     uploads its tiles and the adapters' ranks, masks and pages in one meta buffer), then expand(l, g,
//     ...) records the group's SGMV / BGMV expand: one LoRA dispatch per group instead of two.
//   endStep(plan): returns the scratch buffers, unpins.
import type { Runtime } from '../../shaders/gpu/runtime.ts';
import { buildItems, loraApply, releaseItems, segmentsFromRowSlots, uploadItems, type LoraStepBuffers } from '../../shaders/lora/lora.ts';
import { packFusedMeta, releaseFusedStep, uploadFusedStep, type LoraFusedStep } from '../../shaders/lora/lora.fused.ts';
import { LORA_GROUPS, LORA_MODULES, type LoraApplyOptions, type LoraFusedOps, type LoraGroup, type LoraGroupApplyOptions, type LoraModule, type LoraRuntime, type LoraStepPlan } from './hook.ts';
import { AdapterPool, LoraPoolError, moduleBit } from './pool.ts';

interface Plan extends LoraStepPlan {
  /** SGMV / BGMV work lists (apply / applyGroup), built on first use. */
  step: LoraStepBuffers | null;
  buildItems: (() => LoraStepBuffers) | null;
  fused: LoraFusedStep | null;
  ops: LoraFusedOps | null;
  pinned: string[];
  /** active[l * 7 + m]: some row's adapter targets (l, m). */
  active: Uint8Array;
  done: boolean;
}

export interface MultiLoraRuntimeOptions {
  /** Segments at least this long use SGMV tiles (default 2). */
  sgmvMinRows?: number;
  /** Offer the fused path (default true: shrinks as matmul tails); false: the forward records the
   *  separate shrink and expand dispatches (applyGroup). */
  fused?: boolean;
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
    if (!names.length) return { rows, empty: true, step: null, buildItems: null, fused: null, ops: null, pinned: [], active, done: false } as Plan;
    for (const n of names) if (!this.pool.has(n)) throw new LoraPoolError(`unknown adapter "${n}" (loaded: ${this.pool.names().join(', ') || 'none'})`);
    const pinned: string[] = [];
    try {
      for (const n of names) {
        this.pool.pin(n);
        pinned.push(n);
      }
      const slotOf = new Map<string, number>();
      const indexOf = new Map<string, number>();
      const rankOfSlot = new Map<number, number>();
      const entries: Array<{ rank: number; scale: number; masks: readonly number[]; pages: readonly number[] }> = [];
      for (const n of names) {
        const r = await this.pool.acquire(n);
        slotOf.set(n, r.slot);
        indexOf.set(n, entries.length);
        entries.push({ rank: r.rank, scale: r.scaling, masks: r.masks, pages: r.pages });
        rankOfSlot.set(r.slot, r.rank);
        for (let l = 0; l < L; l++) for (let m = 0; m < LORA_MODULES.length; m++) if (r.masks[l]! & (1 << m)) active[l * LORA_MODULES.length + m] = 1;
      }
      const rMax = this.pool.rMax;
      const items = () => {
        const rowSlots = tokenAdapters.map((a) => (a === null ? -1 : slotOf.get(a)!));
        return uploadItems(this.rt, buildItems(segmentsFromRowSlots(rowSlots), rows, (s) => rankOfSlot.get(s)!, this.opts.sgmvMinRows), rows, rMax);
      };
      const plan = { rows, empty: false, step: items(), buildItems: items, fused: null, ops: null, pinned, active, done: false } as Plan;
      if (this.opts.fused !== false) {
        const { meta, nTiles } = packFusedMeta(tokenAdapters.map((a) => (a === null ? -1 : indexOf.get(a)!)), entries, L);
        plan.fused = uploadFusedStep(this.rt, meta, nTiles, plan.step!.t, rows, L, rMax);
        plan.ops = this.fusedOps(plan, plan.fused);
      }
      return plan;
    } catch (e) {
      for (const n of pinned) this.pool.unpin(n);
      throw e;
    }
  }

  fused(plan: LoraStepPlan): LoraFusedOps | null {
    const p = plan as Plan;
    if (p.done) throw new Error('lora.fused: plan already ended (endStep)');
    return p.empty ? null : p.ops;
  }

  private fusedOps(p: Plan, step: LoraFusedStep): LoraFusedOps {
    return {
      shrink: (layer, group) => (this.range(p, layer, group) ? { step, bank: this.pool.bank(layer, group), layer, tOff: 0 } : undefined),
      expand: (layer, group, out, o) => this.group(p, layer, group, out, out, o, true),
    };
  }

  /** The modules [first, last] of a group some row's adapter targets at this layer, or null. */
  private range(p: Plan, layer: number, group: LoraGroup): { first: number; last: number } | null {
    const mods = LORA_GROUPS[group];
    const base = layer * LORA_MODULES.length + LORA_MODULES.indexOf(mods[0]!);
    let first = -1, last = -1;
    for (let i = 0; i < mods.length; i++) {
      if (p.active[base + i]) {
        if (first < 0) first = i;
        last = i;
      }
    }
    return first < 0 ? null : { first, last };
  }

  private items(p: Plan): LoraStepBuffers {
    if (!p.step) p.step = p.buildItems!();
    return p.step;
  }

  private live(plan: LoraStepPlan, rows: number): Plan | null {
    const p = plan as Plan;
    if (p.empty) return null;
    if (p.done) throw new Error('lora.apply: plan already ended (endStep)');
    if (rows !== p.rows) throw new Error(`lora.apply: rows ${rows} != plan rows ${p.rows}`);
    return p;
  }

  apply(plan: LoraStepPlan, layer: number, module: LoraModule, x: GPUBuffer, out: GPUBuffer, o: LoraApplyOptions): void {
    const p = this.live(plan, o.rows);
    if (!p) return;
    if (!p.active[layer * LORA_MODULES.length + LORA_MODULES.indexOf(module)]) return;
    const { bank, index } = this.pool.bankOf(layer, module);
    if (o.inDim !== bank.inDim || o.outDim !== bank.outDims[index]) {
      throw new Error(`lora.apply: ${module} of layer ${layer} is ${bank.inDim}→${bank.outDims[index]}, called with ${o.inDim}→${o.outDim}`);
    }
    loraApply(this.rt, {
      x, out, bank, tables: this.pool.tables, step: this.items(p), layer, mFirst: index, mCount: 1,
      xStride: o.xRowStride, outStride: o.outRowStride, outOff: o.outColOffset,
    });
  }

  applyGroup(plan: LoraStepPlan, layer: number, group: LoraGroup, x: GPUBuffer, out: GPUBuffer, o: LoraGroupApplyOptions): void {
    const p = this.live(plan, o.rows);
    if (p) this.group(p, layer, group, x, out, o, false);
  }

  private group(p: Plan, layer: number, group: LoraGroup, x: GPUBuffer, out: GPUBuffer, o: LoraGroupApplyOptions, expandOnly: boolean): void {
    if (p.done) throw new Error('lora.apply: plan already ended (endStep)');
    if (o.rows !== p.rows) throw new Error(`lora.apply: rows ${o.rows} != plan rows ${p.rows}`);
    const bank = this.pool.bank(layer, group);
    const width = bank.outDims.reduce((a, b) => a + b, 0);
    if (o.inDim !== bank.inDim || o.outDim !== width) {
      throw new Error(`lora.applyGroup: ${group} of layer ${layer} is ${bank.inDim}→${width}, called with ${o.inDim}→${o.outDim}`);
    }
    // Narrow to the modules some row's adapter targets at this layer (the masks skip the rest inside).
    const r = this.range(p, layer, group);
    if (!r) return;
    let outOff = o.outColOffset ?? 0;
    for (let i = 0; i < r.first; i++) outOff += bank.outDims[i]!;
    loraApply(this.rt, {
      x, out, bank, tables: this.pool.tables, step: this.items(p), layer, mFirst: r.first, mCount: r.last - r.first + 1,
      xStride: o.xRowStride, outStride: o.outRowStride ?? width, outOff, expandOnly,
    });
  }

  endStep(plan: LoraStepPlan): void {
    const p = plan as Plan;
    if (p.done) return;
    p.done = true;
    if (p.step) releaseItems(this.rt, p.step);
    if (p.fused) releaseFusedStep(this.rt, p.fused);
    for (const n of p.pinned) this.pool.unpin(n);
  }
}
