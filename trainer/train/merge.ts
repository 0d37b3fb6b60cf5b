// Base + LoRA adapter → one complete Hugging Face model directory (the seed's Domain-Base after
// CPT): config.json and every tokenizer / generation file copied, model.safetensors with
// W' = W + s·B·A for each adapted projection (PEFT merge_and_unload: get_delta_weight = B @ A ·
// scaling), every tensor kept in the base's dtype. Browser-safe (ModelSource in, TrainIO out).
import type { ModelSource } from '../../engine/model/source.ts';
import { loadModelConfig } from '../../engine/model/weights.ts';
import { openSafetensors, readTensorRaw, writeSafetensors, type TensorToWrite } from '../../engine/model/safetensors.ts';
import { bytesToFloat32 } from '../../engine/model/dtype.ts';
import { loadPeftAdapter, modulePath } from '../../engine/lora/peft.ts';
import type { LoraModule } from '../../engine/lora/hook.ts';
import { joinPath, type TrainIO } from './io.ts';

/** Files copied as they are when present. */
export const MODEL_SIDE_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'chat_template.jinja', 'vocab.json', 'merges.txt'];

export async function mergeAdapter(model: ModelSource, adapter: ModelSource, io: TrainIO, outDir: string): Promise<{ merged: number; tensors: number }> {
  const config = await loadModelConfig(model);
  const a = await loadPeftAdapter(adapter, config);
  const deltas = new Map<string, { A: Float32Array; B: Float32Array }>();
  for (const [key, p] of a.weights) {
    const [l, m] = key.split('.') as [string, LoraModule];
    deltas.set(`${modulePath(Number(l), m)}.weight`, p);
  }
  const st = await openSafetensors(model);
  const out: Record<string, TensorToWrite> = {};
  let merged = 0;
  for (const info of st.tensors.values()) {
    const raw = await readTensorRaw(model, info);
    const d = deltas.get(info.name);
    if (!d) {
      out[info.name] = { dtype: info.dtype, shape: info.shape, data: raw };
      continue;
    }
    const [N, K] = info.shape as [number, number];
    const W = bytesToFloat32(raw, info.dtype);
    const r = a.r, s = a.scaling;
    if (d.A.length !== r * K || d.B.length !== N * r) throw new Error(`merge: ${info.name} is [${N}, ${K}] but the adapter's A/B hold ${d.A.length}/${d.B.length} values (r = ${r})`);
    const outW = new Float32Array(N * K);
    const row = new Float64Array(K);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) row[k] = W[n * K + k]!;
      for (let j = 0; j < r; j++) {
        const b = s * d.B[n * r + j]!;
        if (b === 0) continue;
        for (let k = 0; k < K; k++) row[k] += b * d.A[j * K + k]!;
      }
      for (let k = 0; k < K; k++) outW[n * K + k] = row[k]!;
    }
    out[info.name] = { dtype: info.dtype, shape: info.shape, data: outW };
    merged++;
  }
  if (merged !== deltas.size) throw new Error(`merge: the adapter targets ${deltas.size} tensors, the model has ${merged} of them`);
  await io.write(joinPath(outDir, 'model.safetensors'), writeSafetensors(out, { format: 'pt' }));
  for (const f of MODEL_SIDE_FILES) if (await model.exists(f)) await io.write(joinPath(outDir, f), await model.readBytes(f));
  return { merged, tensors: Object.keys(out).length };
}
