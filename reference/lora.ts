// Engine LoRA adapters in the float64 oracle's form (for reference/llama.ts mergeLora).
import type { LoraAdapter, LoraModule } from '../engine/lora/index.ts';
import { modulePath } from '../engine/lora/peft.ts';
import type { RefLoraAdapter } from './llama.ts';

/** The adapter in the float64 oracle's form (for reference/llama.ts mergeLora). */
export function toRefAdapter(a: LoraAdapter): RefLoraAdapter {
  const layers: RefLoraAdapter['layers'] = new Map();
  for (const [key, { A, B }] of a.weights) {
    const [l, m] = key.split('.') as [string, LoraModule];
    layers.set(`${modulePath(Number(l), m)}.weight`, { A: Float64Array.from(A), B: Float64Array.from(B), r: a.r });
  }
  return { scaling: a.scaling, layers };
}
