// The page side of the browser router test: loadRouter over fetch (router file, encoder .onnx,
// tokenizer.json), onnxruntime-web's WASM backend in the page, the same decisions as in Node.
import { loadRouter, type ChatMessage, type RouteDecision } from '../../router/index.ts';

declare global {
  interface Window {
    __routerTest?: (url: string, inputs: Array<string | ChatMessage[]>) => Promise<{ batch: RouteDecision[]; single: RouteDecision[]; kind: string }>;
    __routerError?: (url: string, input?: string) => Promise<string>;
  }
}

window.__routerTest = async (url, inputs) => {
  const r = await loadRouter(url);
  const batch = await r.routeBatch(inputs);
  const single: RouteDecision[] = [];
  for (const x of inputs) single.push(await r.route(x));
  const kind = r.encoder.kind;
  await r.dispose();
  return { batch, single, kind };
};

window.__routerError = async (url, input) => {
  try {
    const r = await loadRouter(url);
    await r.route(input ?? '');
    return 'no error';
  } catch (e) {
    return (e as Error).message;
  }
};

document.getElementById('log')!.textContent = 'router test page ready';
