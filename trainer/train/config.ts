// The training config: Axolotl's key names wherever Axolotl has the field, validated with zod.
// JSON or YAML (the `yaml` package). An error names the file and every bad field.
//
//   base_model: ../shared/models/stories260K        # HF model dir (or hub URL)
//   method: cpt | sft | dpo | orpo
//   datasets: [{ path: data.jsonl, type?: completion | chat_template | pretokenized | preference, field?: text }]
//   test_datasets: [{ path, type? }]                 # held-out rows (else val_set_size of datasets)
//   lora_model_dir: ./adapter                        # start from a PEFT adapter (else PEFT's fresh init)
//   lora_r, lora_alpha, lora_dropout, lora_target_modules, peft_use_rslora
//   sequence_len, sample_packing, excess_length_strategy: truncate | drop | raise
//   micro_batch_size, gradient_accumulation_steps, num_epochs, max_steps
//   learning_rate, lr_scheduler: constant | linear | cosine, warmup_steps
//   optimizer: adamw (adamw_torch), adam_beta1, adam_beta2, adam_epsilon, weight_decay, max_grad_norm (0 = off)
//   seed, shuffle, val_set_size (fraction < 1 or a row count), eval_steps, save_steps, logging_steps
//   output_dir, dpo_beta, orpo_alpha, train_on_inputs, gradient_checkpointing
//   rl_adapter_ref_model, precompute_ref_log_probs, rpo_alpha   # dpo: reference = the starting adapter; log-probs once; + α·NLL(chosen)
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { LorafleetError } from '../../shaders/lib/errors.ts';
import { LORA_MODULES, type LoraModule } from '../../engine/lora/hook.ts';

export class TrainConfigError extends LorafleetError {
  constructor(message: string, readonly file?: string) {
    super(message, 'invalid_request');
    this.name = 'TrainConfigError';
  }
}

const datasetSchema = z
  .object({
    path: z.string().min(1),
    type: z.enum(['completion', 'chat_template', 'pretokenized', 'preference']).optional(),
    /** text field of completion rows (Axolotl `field`) */
    field: z.string().min(1).optional(),
  })
  .strict();

const modules = z.enum(LORA_MODULES as unknown as [LoraModule, ...LoraModule[]]);

export const trainConfigSchema = z
  .object({
    base_model: z.string().min(1),
    method: z.enum(['cpt', 'sft', 'dpo', 'orpo']),
    datasets: z.array(datasetSchema).min(1),
    test_datasets: z.array(datasetSchema).optional(),
    lora_model_dir: z.string().min(1).optional(),
    adapter: z.literal('lora').optional(),
    lora_r: z.number().int().positive().default(8),
    lora_alpha: z.number().positive().default(16),
    lora_dropout: z.number().min(0).lt(1).default(0),
    lora_target_modules: z.union([z.array(modules).min(1), z.literal('all-linear')]).default(['q_proj', 'v_proj']),
    peft_use_rslora: z.boolean().default(false),
    sequence_len: z.number().int().min(2).default(512),
    /** default: true for cpt (packed blocks), false otherwise */
    sample_packing: z.boolean().optional(),
    excess_length_strategy: z.enum(['truncate', 'drop', 'raise']).default('truncate'),
    micro_batch_size: z.number().int().positive().default(1),
    gradient_accumulation_steps: z.number().int().positive().default(1),
    num_epochs: z.number().positive().default(1),
    max_steps: z.number().int().positive().optional(),
    learning_rate: z.number().nonnegative().default(2e-4),
    lr_scheduler: z.enum(['constant', 'constant_with_warmup', 'linear', 'cosine']).default('cosine'),
    warmup_steps: z.number().int().nonnegative().default(0),
    optimizer: z.enum(['adamw', 'adamw_torch']).default('adamw'),
    adam_beta1: z.number().min(0).lt(1).default(0.9),
    adam_beta2: z.number().min(0).lt(1).default(0.999),
    adam_epsilon: z.number().positive().default(1e-8),
    weight_decay: z.number().nonnegative().default(0),
    max_grad_norm: z.number().nonnegative().default(1),
    seed: z.number().int().nonnegative().default(42),
    shuffle: z.boolean().default(true),
    val_set_size: z.number().nonnegative().default(0),
    eval_steps: z.number().int().positive().optional(),
    save_steps: z.number().int().positive().optional(),
    logging_steps: z.number().int().positive().default(1),
    output_dir: z.string().min(1).default('./outputs/lora-out'),
    dpo_beta: z.number().positive().default(0.1),
    orpo_alpha: z.number().positive().default(0.1),
    /**
     * dpo (Axolotl rl_adapter_ref_model; TRL ref_adapter_name): the reference model is the starting adapter
     * (lora_model_dir, e.g. the SFT adapter) frozen, not the base with the adapter disabled. Implies
     * precompute_ref_log_probs: the reference log-probs are taken before the first step. Optional (absent =
     * false) so that configs without it keep their hash (pipeline caches).
     */
    rl_adapter_ref_model: z.boolean().optional(),
    /** dpo (TRL / Axolotl rpo_alpha): + α · NLL of the chosen completions (mean over their tokens), which keeps the chosen side from falling with the rejected one. */
    rpo_alpha: z.number().positive().optional(),
    /** dpo (TRL precompute_ref_log_probs): the reference log-probs of every pair the run uses, once, before step 1. */
    precompute_ref_log_probs: z.boolean().optional(),
    /** Axolotl: loss on prompt tokens too (sft); default false = assistant tokens only. */
    train_on_inputs: z.boolean().default(false),
    /** Recompute each layer's activations in backward instead of keeping them (bounded memory). */
    gradient_checkpointing: z.boolean().default(false),
  })
  .strict();

export type TrainConfig = z.infer<typeof trainConfigSchema>;
export type DatasetSpec = z.infer<typeof datasetSchema>;

/** The target modules as a list (`all-linear` = the 7 projections). */
export const targetModules = (c: TrainConfig): LoraModule[] => (c.lora_target_modules === 'all-linear' ? [...LORA_MODULES] : LORA_MODULES.filter((m) => (c.lora_target_modules as LoraModule[]).includes(m)));

/** Validate an already parsed object. */
export function validateTrainConfig(raw: unknown, file = 'config'): TrainConfig {
  const r = trainConfigSchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new TrainConfigError(`${file}: invalid training config: ${issues.join('; ')}`, file);
  }
  const c = r.data;
  if (c.method === 'cpt' && c.datasets.some((d) => d.type && d.type !== 'completion' && d.type !== 'pretokenized')) {
    throw new TrainConfigError(`${file}: method cpt reads completion (text) or pretokenized datasets`, file);
  }
  if (c.method !== 'dpo' && (c.rl_adapter_ref_model || c.precompute_ref_log_probs || c.rpo_alpha)) {
    throw new TrainConfigError(`${file}: rl_adapter_ref_model, precompute_ref_log_probs and rpo_alpha are dpo settings (method is ${c.method}: it has no reference model)`, file);
  }
  return c;
}

/** Parse JSON or YAML text (by extension; YAML is a superset of JSON, so anything else is read as YAML). */
export function parseTrainConfig(text: string, file = 'config.yaml'): TrainConfig {
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new TrainConfigError(`${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`, file);
  }
  return validateTrainConfig(raw, file);
}
