// The page side of the worker-engine test: the engine runs in a Web Worker ('lorafleet/worker'),
// driven through createWorkerEngine from 'lorafleet' as a user's page would. Streams the embedded
// model, loads an adapter as bytes, aborts a stream midway and breaks out of another, and
// reports ids, errors and the worker's KV-page counts for the Node side to check.
import { createWorkerEngine, LorafleetError, type WorkerEngine } from 'lorafleet';

export interface WorkerTestResult {
  progressEvents: number;
  modelName: string;
  gpuBackend: string;
  baselineFree: number;
  totalBlocks: number;
  streamed: { ids: number[]; text: string; finish: string };
  chat: { content: string; chunks: number; finish: string | null };
  adapter: { ids: number[]; models: string[]; afterUnload: string[] };
  aborted: { tokensBeforeAbort: number; errorName: string; freeDuringStream: number; freeAfter: number; cancelled: number; decodedAfter: number };
  broke: { tokens: number; freeAfter: number; cancelled: number; decodedAfter: number };
  badModel: { isLorafleetError: boolean; code: string; name: string };
}

declare global {
  interface Window {
    __workerTest?: (prompt: string, adapterFiles: Record<string, number[]>) => Promise<WorkerTestResult>;
  }
}

/** The worker's free KV blocks once they reach `want` (or after 2 s), with its counters then. */
async function settled(engine: WorkerEngine, want: number): Promise<{ free: number; cancelled: number; decoded: number }> {
  const t0 = performance.now();
  while (engine.metrics().kvFreeBlocks !== want && performance.now() - t0 < 2_000) await new Promise((r) => setTimeout(r, 20));
  const m = engine.metrics();
  return { free: m.kvFreeBlocks, cancelled: m.finished.cancelled, decoded: m.tokensDecoded };
}

window.__workerTest = async (prompt, adapterFiles) => {
  let progressEvents = 0;
  const worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module' });
  const engine = await createWorkerEngine(worker, { kvBlocks: 64, onProgress: () => progressEvents++ });
  try {
    const baselineFree = engine.metrics().kvFreeBlocks;

    // 1. a streamed completion of the embedded model
    const ids: number[] = [];
    let text = '';
    const g = engine.generate(prompt, { max_tokens: 40 });
    for await (const t of g) {
      if (t.token >= 0) ids.push(t.token);
      text += t.text;
    }
    const s = await g.done;

    // 2. the OpenAI-style stream
    let content = '';
    let chunks = 0;
    let finish: string | null = null;
    for await (const c of await engine.chat.completions.create({ messages: [{ role: 'user', content: prompt }], max_tokens: 12, stream: true })) {
      chunks++;
      content += c.choices[0]?.delta.content ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }

    // 3. an adapter given as bytes, then unloaded
    const files = Object.fromEntries(Object.entries(adapterFiles).map(([k, v]) => [k, new Uint8Array(v)]));
    await engine.loadAdapter('tone', files);
    const models = engine.models();
    const ga = engine.generate(prompt, { max_tokens: 20, model: 'tone' });
    const adapterIds: number[] = [];
    for await (const t of ga) if (t.token >= 0) adapterIds.push(t.token);
    await engine.unloadAdapter('tone');
    const afterUnload = engine.models();

    // 4. abort a stream midway (AbortSignal)
    const ctrl = new AbortController();
    let tokensBeforeAbort = 0;
    let errorName = '';
    let freeDuringStream = -1;
    try {
      for await (const t of engine.generate(prompt, { max_tokens: 400, signal: ctrl.signal })) {
        if (t.token >= 0) tokensBeforeAbort++;
        if (tokensBeforeAbort === 5) {
          freeDuringStream = engine.metrics().kvFreeBlocks;
          ctrl.abort();
        }
      }
    } catch (e) {
      errorName = (e as Error).name;
    }
    const afterAbort = await settled(engine, baselineFree);

    // 5. leave a stream with `break`
    let broken = 0;
    for await (const c of await engine.chat.completions.create({ messages: [{ role: 'user', content: prompt }], max_tokens: 400, stream: true })) {
      if (c.choices[0]?.delta.content) broken++;
      if (broken === 3) break;
    }
    const afterBreak = await settled(engine, baselineFree);

    // 6. a typed error crosses the boundary with its code
    let badModel = { isLorafleetError: false, code: '', name: '' };
    try {
      await engine.chat.completions.create({ model: 'no-such-adapter', messages: [{ role: 'user', content: 'x' }] });
    } catch (e) {
      badModel = { isLorafleetError: e instanceof LorafleetError, code: (e as LorafleetError).code, name: (e as Error).name };
    }

    document.getElementById('log')!.textContent = text;
    return {
      progressEvents,
      modelName: engine.modelName,
      gpuBackend: engine.gpu.backend,
      baselineFree,
      totalBlocks: engine.metrics().kvTotalBlocks,
      streamed: { ids, text, finish: s.finishReason },
      chat: { content, chunks, finish },
      adapter: { ids: adapterIds, models, afterUnload },
      aborted: { tokensBeforeAbort, errorName, freeDuringStream, freeAfter: afterAbort.free, cancelled: afterAbort.cancelled, decodedAfter: afterAbort.decoded },
      broke: { tokens: broken, freeAfter: afterBreak.free, cancelled: afterBreak.cancelled, decodedAfter: afterBreak.decoded },
      badModel,
    };
  } finally {
    await engine.destroy();
  }
};
