// The page side of the browser engine test: load a model from a hub-layout URL (cached in
// IndexedDB), generate greedily, and report ids so the test can compare them with the reference.
import { createEngine } from '../../engine/api/engine.ts';

declare global {
  interface Window {
    __engineTest?: (modelUrl: string, prompt: string, maxTokens: number) => Promise<{
      promptIds: number[];
      completionIds: number[];
      text: string;
      adapter: string;
      downloads: number;
    }>;
    /** Structured output in the page: XGrammar's web build loaded by the bundle, masks applied on the GPU. */
    __structuredTest?: (modelUrl: string, schema: Record<string, unknown>, seeds: number[]) => Promise<string[]>;
  }
}

window.__structuredTest = async (modelUrl, schema, seeds) => {
  const engine = await createEngine({ model: modelUrl, kvBlocks: 64 });
  try {
    const outs = [];
    for (const seed of seeds) {
      const g = engine.generate('Once upon a time', { max_tokens: 80, temperature: 1, seed, guided_json: schema });
      for await (const _ of g) void _;
      outs.push((await g.done).text);
    }
    return outs;
  } finally {
    await engine.destroy();
  }
};

window.__engineTest = async (modelUrl, prompt, maxTokens) => {
  let downloads = 0;
  const engine = await createEngine({
    model: modelUrl,
    kvBlocks: 64,
    onProgress: (p) => {
      if (p.phase === 'download' && p.loadedBytes === p.totalBytes) downloads++;
    },
  });
  try {
    const gen = engine.generate(prompt, { max_tokens: maxTokens, temperature: 0 });
    for await (const _ of gen) {
      /* streamed tokens; the summary has them all */
    }
    const s = await gen.done;
    const info = engine.runtime.info;
    document.getElementById('log')!.textContent = s.text;
    return { promptIds: s.promptIds, completionIds: s.completionIds, text: s.text, adapter: `${info.vendor} ${info.architecture}`, downloads };
  } finally {
    await engine.destroy();
  }
};
