// The page side of the browser trainer test: stories260K loaded from a hub-layout URL and served
// (adapter pool attached); the trainer runs a few CPT steps on that same GpuModel (no second copy
// of the base), writes the PEFT adapter into memory, and the adapter is hot-added to the live pool
// and served without reloading the base.
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { GpuModel } from '../../engine/forward/gpu-model.ts';
import { MemorySource, openModelSource } from '../../engine/model/source.ts';
import { loadTokenizer } from '../../engine/model/tokenizer.ts';
import { createLoraSupport } from '../../engine/lora/index.ts';
import { validateTrainConfig } from '../../trainer/train/config.ts';
import { runTraining } from '../../trainer/train/run.ts';
import { MemoryIO } from '../../trainer/train/io.ts';
import { serveGreedy } from './train-serve.ts';

declare global {
  interface Window {
    __trainTest?: (modelUrl: string, config: Record<string, unknown>, dataset: string, prompt: string) => Promise<{
      losses: number[];
      baseIds: number[];
      trainedIds: number[];
      pool: string[];
      sameModel: boolean;
    }>;
  }
}

window.__trainTest = async (modelUrl, config, dataset, prompt) => {
  const rt = await Runtime.create();
  const source = openModelSource(modelUrl);
  const model = await GpuModel.load(rt, source);
  const tok = await loadTokenizer(source);
  const lora = await createLoraSupport(rt, model.config, { maxRank: 8, store: null });
  try {
    const ids = tok.encode(prompt);
    const baseIds = await serveGreedy(rt, model, lora, ids, null, 8);
    const io = new MemoryIO();
    await io.write('data.jsonl', dataset);
    const losses: number[] = [];
    const cfg = validateTrainConfig({ ...config, base_model: modelUrl, datasets: [{ path: 'data.jsonl' }], output_dir: 'out' });
    const before = model.embed;
    await runTraining({ config: cfg, baseDir: '', io, rt, model, openSource: (p) => openModelSource(p), onStep: (s) => losses.push(s.loss) });
    // hot-add: the adapter files the trainer wrote go straight into the live pool
    await lora.pool.register('trained', new MemorySource({ 'adapter_config.json': await io.readBytes('out/adapter_config.json'), 'adapter_model.safetensors': await io.readBytes('out/adapter_model.safetensors') }, 'trained'));
    const trainedIds = await serveGreedy(rt, model, lora, ids, 'trained', 8);
    document.getElementById('log')!.textContent = JSON.stringify({ losses, trainedIds });
    return { losses, baseIds, trainedIds, pool: lora.pool.names(), sameModel: model.embed === before };
  } finally {
    model.attachLora(null);
    lora.destroy();
    model.destroy();
  }
};
