// Seeded random LoRA adapters for tests and benchmarks (both A and B non-zero, unlike PEFT's init).
import type { ModelConfig } from '../../engine/model/config.ts';
import { LORA_MODULES, type LoraModule } from '../../engine/lora/hook.ts';
import { loraKey, makeLoraAdapter, moduleDims, type LoraAdapter, type LoraPair } from '../../engine/lora/peft.ts';
import { Rng } from '../../shaders/lib/random.ts';

export interface RandomAdapterOptions {
  name: string;
  r: number;
  alpha?: number;
  targetModules?: LoraModule[];
  useRslora?: boolean;
  seed?: number;
  /** Std of A and B entries (default 0.05 for A and 0.05 for B: a visible but small change). */
  std?: number;
  /** Only these layers (default all). */
  layers?: number[];
}

/** A seeded random adapter for a base model (both A and B non-zero, unlike PEFT's init). */
export function randomLoraAdapter(config: ModelConfig, o: RandomAdapterOptions): LoraAdapter {
  const rng = new Rng(o.seed ?? 1);
  const mods = o.targetModules ?? [...LORA_MODULES];
  const std = o.std ?? 0.05;
  const weights = new Map<string, LoraPair>();
  const layers = o.layers ?? Array.from({ length: config.numLayers }, (_, i) => i);
  for (const l of layers) {
    for (const m of mods) {
      const { inDim, outDim } = moduleDims(config, m);
      weights.set(loraKey(l, m), { A: rng.normalF32(o.r * inDim, std), B: rng.normalF32(outDim * o.r, std) });
    }
  }
  return makeLoraAdapter(o.name, o.r, o.alpha ?? 2 * o.r, o.useRslora ?? false, weights, null);
}
