// The contract between the forward pass and the multi-LoRA runtime.
// The forward pass knows nothing about adapters except this interface: once per step it asks
// for a plan (which adapter each token row uses), then after each base projection it calls
// apply() / applyGroup(), which adds  scale_a · (x · A_aᵀ) · B_aᵀ  into the projection's output rows
// (SGMV over contiguous segments of rows that share an adapter — prefill; BGMV with one adapter
// index per row — decode). Rows whose adapter is null, or whose adapter does not target the
// (layer, module), are left untouched and cost nothing.

import type { LoraShrinkArgs } from '../../shaders/lora/lora.fused.ts';

export type LoraModule = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';
export const LORA_MODULES: readonly LoraModule[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/**
 * Modules that read the same input and write side by side into one fused output row: one bank of
 * the adapter pool each (one A and one Bt buffer): per layer and step one shrink + one expand for
 * the group (the fused path runs the shrink inside the base matmul's dispatch: LoraFusedOps).
 * Each group's modules are consecutive in LORA_MODULES (their mask bits are adjacent).
 */
export type LoraGroup = 'qkv' | 'o_proj' | 'gate_up' | 'down_proj';
export const LORA_GROUPS: Readonly<Record<LoraGroup, readonly LoraModule[]>> = {
  qkv: ['q_proj', 'k_proj', 'v_proj'],
  o_proj: ['o_proj'],
  gate_up: ['gate_proj', 'up_proj'],
  down_proj: ['down_proj'],
};
export const LORA_GROUP_NAMES: readonly LoraGroup[] = ['qkv', 'o_proj', 'gate_up', 'down_proj'];
/** The group of a module and its index inside the group. */
export function groupOf(m: LoraModule): { group: LoraGroup; index: number } {
  for (const g of LORA_GROUP_NAMES) {
    const i = LORA_GROUPS[g].indexOf(m);
    if (i >= 0) return { group: g, index: i };
  }
  throw new Error(`unknown LoRA module ${m}`);
}

/** Opaque per-step state created by planStep (uploaded index buffers, pinned adapters). */
export interface LoraStepPlan {
  readonly rows: number;
  /** True when no row of this step uses an adapter: apply() is then a no-op. */
  readonly empty: boolean;
}

export interface LoraApplyOptions {
  /** Rows of x / out in this step (= the plan's rows). */
  rows: number;
  /** Input features of the projection (x row length = inDim unless xRowStride is given). */
  inDim: number;
  /** Output features of the projection (the slice of out written). */
  outDim: number;
  xRowStride?: number;
  /** Row stride of `out` in floats (a fused qkv / gate|up buffer is wider than outDim). */
  outRowStride?: number;
  /** Column where this projection's slice starts inside an `out` row. */
  outColOffset?: number;
}

export interface LoraGroupApplyOptions {
  rows: number;
  /** Input features (shared by the group's modules). */
  inDim: number;
  /** Output columns of the whole group (Σ of its modules' outDims): a check against the pool's shapes. */
  outDim: number;
  xRowStride?: number;
  outRowStride?: number;
  /** Column where the group's first module starts inside an `out` row; the others follow in order. */
  outColOffset?: number;
}

/**
 * The fused path (shaders/lora/lora.fused.ts): a group's shrink runs as the tail of the base matmul
 * that reads the same input (shrink() hands it to matmul's loraShrink, undefined when no adapter of
 * the step targets the group at that layer), then expand() records the group's expand dispatch.
 */
export interface LoraFusedOps {
  shrink(layer: number, group: LoraGroup): LoraShrinkArgs | undefined;
  /** applyGroup without the shrink (it ran as the tail of the matmul given shrink(layer, group)). */
  expand(layer: number, group: LoraGroup, out: GPUBuffer, opts: Omit<LoraGroupApplyOptions, 'xRowStride'>): void;
}

export interface LoraRuntime {
  /**
   * Called once per step with the adapter name (or null = base model) of every token row of
   * the step, in row order. Throws if an adapter is unknown. Pins the adapters used so the
   * pool cannot evict them while the step runs.
   */
  planStep(tokenAdapters: ReadonlyArray<string | null>): Promise<LoraStepPlan>;
  /** out[r, outColOffset + j] += scale · (x[r] · Aᵀ) · Bᵀ [j] for each row r with an adapter targeting (layer, module). */
  apply(plan: LoraStepPlan, layer: number, module: LoraModule, x: GPUBuffer, out: GPUBuffer, opts: LoraApplyOptions): void;
  /**
   * apply() for every module of a group at once (q|k|v into the fused qkv row, gate|up into the
   * fused gate|up row): one shrink and one expand for the whole group.
   */
  applyGroup(plan: LoraStepPlan, layer: number, group: LoraGroup, x: GPUBuffer, out: GPUBuffer, opts: LoraGroupApplyOptions): void;
  /**
   * The plan's fused ops, or null when this runtime (or plan) has none: the forward then calls
   * applyGroup (shrink + expand) after each projection. A forward uses one path for a whole step.
   */
  fused?(plan: LoraStepPlan): LoraFusedOps | null;
  /** Releases the plan's scratch buffers and unpins its adapters (after the step's work is recorded). */
  endStep(plan: LoraStepPlan): void;
}
