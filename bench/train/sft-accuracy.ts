// Held-out accuracy of an SFT adapter on classification rows ({"messages": [system, user, assistant],
// "label"}): greedy decoding of the assistant turn through the engine's parts (GpuModel + adapter pool
// + paged KV + scheduler) from the same prompt rendering the trainer used, exact match with the label,
// for the base model and for base + adapter.
//
//   npx tsx bench/train/sft-accuracy.ts --model <dir> --adapter <peft dir> [--decode engine|trainer] <val.jsonl>...
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { GpuModel } from '../../engine/forward/gpu-model.ts';
import { LocalDirSource } from '../../engine/model/source.ts';
import { loadTokenizer, type ChatMessage } from '../../engine/model/tokenizer.ts';
import { createLoraSupport } from '../../engine/lora/index.ts';
import { loadPeftAdapter } from '../../engine/lora/peft.ts';
import { GpuTrainBackend } from '../../trainer/train/gpu-backend.ts';
import { serveGreedy } from '../../tests/browser/train-serve.ts';

export async function run(argv: string[]): Promise<{ base: number; adapter: number; baseFirst: number; adapterFirst: number; n: number }> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { model: { type: 'string' }, adapter: { type: 'string' }, decode: { type: 'string' } } });
  if (!values.model || !values.adapter || !positionals.length) throw new Error('usage: sft-accuracy.ts --model <dir> --adapter <dir> <val.jsonl>...');
  const rt = await Runtime.create();
  const src = new LocalDirSource(values.model);
  const model = await GpuModel.load(rt, src);
  const tok = await loadTokenizer(src);
  const lora = await createLoraSupport(rt, model.config, { adapters: { a: values.adapter }, store: null, maxRank: Number(process.env.MAXRANK ?? 64) });
  const rows: Array<{ messages: ChatMessage[]; label: string }> = [];
  for (const f of positionals) for (const l of (await readFile(f, 'utf8')).split('\n')) if (l.trim()) rows.push(JSON.parse(l));
  // --decode trainer: greedy with the trainer's own forward (full recompute per token)
  const a = await loadPeftAdapter(values.adapter, model.config);
  const setup = { r: a.r, alpha: a.alpha, useRslora: a.useRslora, scaling: a.scaling, modules: a.targetModules, dropout: 0 };
  const zero = new Map([...a.weights].map(([k, p]) => [k, { A: p.A, B: new Float32Array(p.B.length) }]));
  const trained = new GpuTrainBackend(rt, model, setup, a.weights), untrained = new GpuTrainBackend(rt, model, setup, zero);
  const V = model.config.vocabSize;
  const trainerGreedy = async (ids: number[], be: GpuTrainBackend, n: number) => {
    const out: number[] = [];
    for (let k = 0; k < n; k++) {
      const lg = await be.logits([...ids, ...out]);
      const row = lg.subarray((ids.length + out.length - 1) * V);
      let b = 0;
      for (let v = 1; v < V; v++) if (row[v]! > row[b]!) b = v;
      out.push(b);
      if (tok.isEos(b)) break;
    }
    return out;
  };
  const answer = async (ids: number[], adapter: string | null) => {
    const out = values.decode === 'trainer' ? await trainerGreedy(ids, adapter ? trained : untrained, 16) : await serveGreedy(rt, model, lora, ids, adapter, 16);
    const eos = out.findIndex((t) => tok.isEos(t));
    return tok.decode(eos >= 0 ? out.slice(0, eos) : out).trim();
  };
  // exact: the answer up to EOS is the label; first: the answer starts with the label (then a non-word character)
  const first = (got: string, label: string) => got.startsWith(label) && !/^[\w-]/.test(got.slice(label.length));
  let base = 0, ad = 0, baseFirst = 0, adFirst = 0;
  for (const r of rows) {
    const ids = tok.encodeChat(r.messages.slice(0, -1), { addGenerationPrompt: true });
    const b = await answer(ids, null);
    if (b === r.label) base++;
    if (first(b, r.label)) baseFirst++;
    const got = await answer(ids, 'a');
    if (got === r.label) ad++;
    if (first(got, r.label)) adFirst++;
    if (process.env.SHOW) console.log(JSON.stringify({ label: r.label, got }));
  }
  const res = { base: base / rows.length, adapter: ad / rows.length, baseFirst: baseFirst / rows.length, adapterFirst: adFirst / rows.length, n: rows.length };
  console.log(JSON.stringify(res));
  model.attachLora(null);
  lora.destroy();
  model.destroy();
  return res;
}

if (import.meta.url === `file://${process.argv[1]}`) await run(process.argv.slice(2));
