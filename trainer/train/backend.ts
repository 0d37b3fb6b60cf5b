// What the training loop needs from a compute backend (the WebGPU one is gpu-backend.ts): forward
// passes that return label log-probs, the backward of Σ w·logp into LoRA gradients, clipping and
// the AdamW step. The loop (trainer.ts) owns data order, objectives, accumulation, schedules,
// logging and checkpoints, so every backend trains the same way.
import type { ModelConfig } from '../../engine/model/config.ts';
import type { LoraModule } from '../../engine/lora/hook.ts';
import type { LoraPair } from '../../engine/lora/peft.ts';
import { moduleDims } from '../../engine/lora/peft.ts';
import { Rng } from '../../shaders/lib/random.ts';
import type { Sequence } from './data.ts';

export interface AdamHyper {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export interface LoraSetup {
  r: number;
  alpha: number;
  useRslora: boolean;
  /** alpha/r or alpha/√r */
  scaling: number;
  modules: LoraModule[];
  dropout: number;
}

export interface OptimizerState {
  /** optimizer steps taken */
  step: number;
  /** loraKey → first / second moments, shaped like the pair */
  m: Map<string, LoraPair>;
  v: Map<string, LoraPair>;
}

export interface TrainBackend {
  readonly config: ModelConfig;
  readonly lora: LoraSetup;
  /**
   * Forward of each row; per row the log-probs of its target positions (labels[t+1] ≠ -100, in
   * order). adapter false: the base model (DPO's reference). train true: keep what backward needs
   * (and apply lora_dropout, seeded by `dropoutSeed`).
   */
  logps(rows: Sequence[], opts: { adapter: boolean; train: boolean; dropoutSeed?: number }): Promise<Float64Array[]>;
  /** Backward of Σ_rows Σ_t w[row][t]·logp[row][t] for the rows of the last train forward; gradients accumulate. */
  backward(weights: Float64Array[]): Promise<void>;
  /** Global L2 norm of the accumulated gradient (before clipping); scales it by min(1, max/(norm+1e-6)) when maxNorm > 0. */
  clipGradients(maxNorm: number): Promise<number>;
  /** One torch AdamW step at `lr`, then the gradients are zeroed. */
  optimizerStep(lr: number, h: AdamHyper): Promise<void>;
  /** Float32 copies of every A [r, in] / B [out, r], by loraKey. */
  readAdapter(): Promise<Map<string, LoraPair>>;
  writeAdapter(w: Map<string, LoraPair>): Promise<void>;
  readOptimizer(): Promise<OptimizerState>;
  writeOptimizer(s: OptimizerState): Promise<void>;
  /** Peak bytes of GPU (or host) memory the backend held for activations so far. */
  peakBytes?(): number;
  destroy(): void;
}

/**
 * PEFT's fresh LoRA (init_lora_weights=True): A ← kaiming_uniform_(a=√5) = U(−1/√in, 1/√in), B ← 0.
 * Drawn from the project PRNG: layer by layer, modules in LORA_MODULES order.
 */
export function initLora(c: ModelConfig, r: number, modules: LoraModule[], seed: number): Map<string, LoraPair> {
  const rng = new Rng(seed);
  const out = new Map<string, LoraPair>();
  for (let l = 0; l < c.numLayers; l++) {
    for (const m of modules) {
      const { inDim, outDim } = moduleDims(c, m);
      const bound = 1 / Math.sqrt(inDim);
      out.set(`${l}.${m}`, { A: rng.uniformF32(r * inDim, -bound, bound), B: new Float32Array(outDim * r) });
    }
  }
  return out;
}

/** Target positions (t where labels[t+1] ≠ -100) of a row. */
export function targetPositions(row: Sequence): number[] {
  const out: number[] = [];
  for (let t = 0; t + 1 < row.tokens.length; t++) if (row.labels[t + 1] !== -100) out.push(t);
  return out;
}
