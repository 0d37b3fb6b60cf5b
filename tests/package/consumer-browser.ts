// A page's file (bundler resolution, browser condition), type-checked like consumer-node.ts.
import { createWorkerEngine, WebGPUNotAvailableError, type WorkerEngine } from 'lorafleet';

const worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module' });
const engine: WorkerEngine = await createWorkerEngine(worker, {
  onProgress: (p) => console.log(p.phase, p.loadedBytes, p.totalBytes),
});
const ctrl = new AbortController();
for await (const c of await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], stream: true, signal: ctrl.signal })) {
  document.body.append(c.choices[0]?.delta.content ?? '');
}
await engine.loadAdapter('tone', { 'adapter_config.json': new Uint8Array(), 'adapter_model.safetensors': new Uint8Array() });
console.log(engine.gpu.description, engine.metrics().kvFreeBlocks, WebGPUNotAvailableError.name);
await engine.destroy();
