// The multi-user simulator: N concurrent streamed requests against the worker engine, first each on
// a different adapter (mixed: the scheduler batches them into one GPU step per token, each row with
// its own LoRA), then all on the base model; tokens/s charted live (the worker's decoded-token
// counter over wall time) with chart.js, and the final rate from each stream's usage.
import Chart from 'chart.js/auto';
import type { ChatCompletionChunk } from 'lorafleet';
import type { Demo } from './demo.ts';

const PROMPTS = ['Restart the billing-worker', 'What is the api-gateway latency objective?', 'Classify the sentiment: the rollout went fine', 'Extract the entities: scheduler paged amara.okafor', 'Once upon a time', 'Who is on call for payments?'];
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

export function setupSimulator(demo: Demo): void {
  let chart: Chart | null = null;
  let running = false;
  $('sim-run').addEventListener('click', () => void run());

  async function run(): Promise<void> {
    if (running) return;
    running = true;
    const status = $('sim-status');
    delete status.dataset.done;
    try {
      const users = Math.max(1, Math.min(32, Number(($('sim-users') as HTMLInputElement).value) || 8));
      const maxTokens = Math.max(1, Math.min(128, Number(($('sim-tokens') as HTMLInputElement).value) || 24));
      const adapters = demo.engine.models().filter((m) => m !== demo.base);
      chart ??= new Chart($('sim-chart') as HTMLCanvasElement, {
        type: 'line',
        data: { datasets: [] },
        options: { animation: false, parsing: false, maintainAspectRatio: false, scales: { x: { type: 'linear', title: { display: true, text: 'seconds' } }, y: { title: { display: true, text: 'tokens/s' }, min: 0 } } },
      });
      chart.data.datasets = [];
      const results: Record<string, number> = {};
      const fire = (mode: 'mixed' | 'base', i: number, maxTokens: number) => {
        const model = mode === 'base' || !adapters.length ? demo.base : adapters[i % adapters.length]!;
        return demo.engine.chat.completions.create({
          model, messages: [{ role: 'user', content: PROMPTS[i % PROMPTS.length]! }], max_tokens: maxTokens, temperature: 1, seed: i, stream: true, stream_options: { include_usage: true },
        }) as Promise<AsyncIterable<ChatCompletionChunk>>;
      };
      // warm-up, not timed: the first batch of each kind compiles its kernels and pages the adapters in
      status.textContent = 'warming up…';
      for (const mode of ['mixed', 'base'] as const) await Promise.all(Array.from({ length: users }, async (_, i) => { for await (const _c of await fire(mode, i, 2)) void _c; }));
      for (const mode of ['mixed', 'base'] as const) {
        const label = mode === 'mixed' ? `mixed adapters (${users} users over ${adapters.length || 'no'} adapters)` : `base only (${users} users)`;
        const ds = { label, data: [] as { x: number; y: number }[], borderColor: mode === 'mixed' ? '#f28e2b' : '#4e79a7', pointRadius: 0 };
        chart.data.datasets.push(ds);
        const decoded0 = demo.engine.metrics().tokensDecoded;
        const t0 = performance.now();
        const tick = setInterval(() => {
          const s = (performance.now() - t0) / 1000;
          ds.data.push({ x: s, y: (demo.engine.metrics().tokensDecoded - decoded0) / s });
          chart!.update();
        }, 250);
        status.textContent = `${mode}: ${users} requests running…`;
        let tokens = 0;
        try {
          await Promise.all(
            Array.from({ length: users }, async (_, i) => {
              for await (const c of await fire(mode, i, maxTokens)) if (c.usage) tokens += c.usage.completion_tokens;
            }),
          );
        } finally {
          clearInterval(tick);
        }
        const s = (performance.now() - t0) / 1000;
        results[mode] = tokens / s;
        ds.data.push({ x: s, y: tokens / s });
        chart.update();
      }
      status.textContent = `mixed ${results.mixed!.toFixed(1)} tok/s · base ${results.base!.toFixed(1)} tok/s · ratio ${(results.mixed! / results.base!).toFixed(2)}`;
      status.dataset.done = '1';
    } catch (e) {
      status.textContent = `simulator: ${(e as Error).message}`;
      status.dataset.done = 'error';
    } finally {
      running = false;
      void demo.refreshPool();
    }
  }
}
