// The fine-tune tab: pasted examples ("question => answer" lines, or JSONL rows the trainer reads:
// {"messages"}, {"prompt","completion"}, {"text"}) are trained into a LoRA adapter inside the WebGPU
// worker, on the base it already serves (engine.train: trainer/train, sft for chat rows), with a live
// loss chart; the adapter is then hot-swapped into the running pool and can be chatted with at once,
// here beside the base model's answer, and in the chat tab's model picker.
import Chart from 'chart.js/auto';
import type { ChatCompletion, TrainEvent } from 'lorafleet';
import type { Demo } from './demo.ts';
import { esc } from './tasks.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

export const DEFAULT_EXAMPLES = [
  'Who is on call for payments? => Priya Raman is on call for payments.',
  'Who is on call for search? => Li Wei is on call for search.',
  'Who is on call for billing? => Jonas Weber is on call for billing.',
  'Who is on call for the gateway? => Sofia Moreno is on call for the gateway.',
].join('\n');

/** Pasted text → trainer rows; throws naming the line. */
export function parseExamples(text: string): unknown[] {
  const rows: unknown[] = [];
  text.split('\n').forEach((line, i) => {
    const t = line.trim();
    if (!t) return;
    if (t.startsWith('{')) {
      try {
        rows.push(JSON.parse(t));
      } catch (e) {
        throw new Error(`line ${i + 1}: not valid JSON: ${(e as Error).message}`);
      }
      return;
    }
    const at = t.indexOf('=>');
    if (at < 0) throw new Error(`line ${i + 1}: write "question => answer" (or a JSON row)`);
    const q = t.slice(0, at).trim();
    const a = t.slice(at + 2).trim();
    if (!q || !a) throw new Error(`line ${i + 1}: empty question or answer`);
    rows.push({ messages: [{ role: 'user', content: q }, { role: 'assistant', content: a }] });
  });
  if (!rows.length) throw new Error('paste at least one example');
  return rows;
}

export function setupTune(demo: Demo): void {
  ($('tune-data') as HTMLTextAreaElement).value = DEFAULT_EXAMPLES;
  let chart: Chart | null = null;
  let ctrl: AbortController | null = null;
  let trained: string | null = null;
  const status = $('tune-status');

  $('tune-run').addEventListener('click', () => void train());
  $('tune-cancel').addEventListener('click', () => ctrl?.abort());
  $('tune-ask').addEventListener('click', () => void ask());

  async function train(): Promise<void> {
    if (ctrl) return;
    delete status.dataset.done;
    let rows: unknown[];
    try {
      rows = parseExamples(($('tune-data') as HTMLTextAreaElement).value);
    } catch (e) {
      status.innerHTML = `<span class="badge warn">examples</span> ${esc((e as Error).message)}`;
      status.dataset.done = 'error';
      return;
    }
    const name = ($('tune-name') as HTMLInputElement).value.trim() || 'my_adapter';
    const steps = Math.max(1, Math.min(500, Number(($('tune-steps') as HTMLInputElement).value) || 10));
    const lr = Number(($('tune-lr') as HTMLInputElement).value) || 1e-2;
    const r = Math.max(1, Math.min(64, Number(($('tune-rank') as HTMLInputElement).value) || 8));
    chart ??= new Chart($('tune-chart') as HTMLCanvasElement, {
      type: 'line',
      data: { datasets: [{ label: 'training loss', data: [], borderColor: '#e15759', pointRadius: 2 }] },
      options: { animation: false, parsing: false, maintainAspectRatio: false, scales: { x: { type: 'linear', title: { display: true, text: 'step' }, min: 0 }, y: { title: { display: true, text: 'loss (nats/token)' } } } },
    });
    const points = chart.data.datasets[0]!.data as { x: number; y: number }[];
    points.length = 0;
    chart.update();
    ctrl = new AbortController();
    ($('tune-run') as HTMLButtonElement).disabled = true;
    ($('tune-cancel') as HTMLButtonElement).disabled = false;
    status.textContent = `training ${name} in the worker…`;
    const onEvent = (e: TrainEvent) => {
      if (e.type === 'start') status.textContent = `training ${name}: ${e.message}`;
      if (e.type === 'step') {
        points.push({ x: e.step, y: e.loss });
        chart!.update();
        status.textContent = `step ${e.step}/${e.totalSteps} · loss ${e.loss.toFixed(4)} · grad norm ${e.gradNorm.toFixed(3)} · ${(e.elapsedMs / 1000).toFixed(1)} s`;
        $('tune-steps-done').textContent = String(e.step);
      }
    };
    try {
      const res = await demo.engine.train(
        { name, rows, config: { max_steps: steps, learning_rate: lr, lr_scheduler: 'constant', lora_r: r, lora_alpha: 2 * r, lora_target_modules: 'all-linear', sequence_len: 128, micro_batch_size: Math.min(4, rows.length), seed: 7 } },
        { onEvent, signal: ctrl.signal },
      );
      trained = name;
      demo.addModel(name);
      const l = res.losses;
      status.innerHTML = `<span class="badge" data-kind="tune-done" data-adapter="${esc(name)}" data-steps="${res.steps}">${esc(name)}</span> trained for ${res.steps} steps in ${(res.elapsedMs / 1000).toFixed(1)} s (loss ${l[0]!.toFixed(3)} → ${l.at(-1)!.toFixed(3)}) and hot-swapped into the running pool: ask it below or pick it in the chat tab.`;
      status.dataset.done = '1';
      status.dataset.losses = JSON.stringify(l);
      ($('tune-prompt') as HTMLInputElement).value = (rows[0] as { messages?: { content: string }[] }).messages?.[0]?.content ?? '';
    } catch (e) {
      const aborted = (e as Error).name === 'AbortError';
      status.innerHTML = `<span class="badge warn">${aborted ? 'cancelled' : 'error'}</span> ${esc(aborted ? 'training cancelled; nothing was added to the pool' : (e as Error).message)}`;
      status.dataset.done = aborted ? 'cancelled' : 'error';
    } finally {
      ctrl = null;
      ($('tune-run') as HTMLButtonElement).disabled = false;
      ($('tune-cancel') as HTMLButtonElement).disabled = true;
      void demo.refreshPool();
    }
  }

  async function ask(): Promise<void> {
    const q = ($('tune-prompt') as HTMLInputElement).value.trim();
    if (!q || !trained) return;
    const out = $('tune-answers');
    delete out.dataset.done;
    out.innerHTML = '<span class="meta">generating…</span>';
    const answer = async (model: string) => {
      const c = (await demo.engine.chat.completions.create({ model, messages: [{ role: 'user', content: q }], max_tokens: 24, temperature: 0 })) as ChatCompletion;
      return c.choices[0]!.message.content ?? '';
    };
    try {
      const [a, b] = await Promise.all([answer(trained), answer(demo.base)]); // one batch, two adapters
      out.innerHTML = `<div class="msg bot"><div class="meta"><span class="badge" data-adapter="${esc(trained)}">${esc(trained)}</span></div><div data-kind="tuned-answer">${esc(a)}</div></div>` +
        `<div class="msg bot"><div class="meta"><span class="badge">${esc(demo.base)} (base)</span></div><div data-kind="base-answer">${esc(b)}</div></div>`;
      out.dataset.done = '1';
    } catch (e) {
      out.innerHTML = `<span class="badge warn">error</span> ${esc((e as Error).message)}`;
      out.dataset.done = 'error';
    }
    void demo.refreshPool();
  }
}
