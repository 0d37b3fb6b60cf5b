// Load a model (any ModelSource) into float64 RefWeights for the oracle.
import { parseModelConfig, type ModelConfig } from '../engine/model/config.ts';
import { openSafetensors, readTensorF32 } from '../engine/model/safetensors.ts';
import { LocalDirSource, type ModelSource } from '../engine/model/source.ts';
import type { RefWeights } from './llama.ts';

export async function loadReferenceModel(source: ModelSource | string): Promise<{ config: ModelConfig; weights: RefWeights }> {
  const src = typeof source === 'string' ? new LocalDirSource(source) : source;
  const config = parseModelConfig(await src.readJson('config.json'), `${src.name}/config.json`);
  const st = await openSafetensors(src);
  const weights: RefWeights = new Map();
  for (const info of st.tensors.values()) {
    weights.set(info.name, { shape: info.shape, data: Float64Array.from(await readTensorF32(src, info)) });
  }
  return { config, weights };
}
