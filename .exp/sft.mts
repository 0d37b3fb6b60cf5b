// experiment: an SFT stage with overrides from the Domain-Base of a pipeline out dir, then its held-out eval
import '../engine/node.ts';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Runtime } from '../shaders/gpu/runtime.ts';
import { openModelSource } from '../engine/model/source.ts';
import { createEngine } from '../engine/api/engine.ts';
import { validateTrainConfig } from '../trainer/train/config.ts';
import { runTraining } from '../trainer/train/run.ts';
import { NodeIO } from '../trainer/train/node-io.ts';
import { COMMON_DEFAULTS, STAGE_DEFAULTS } from '../cli/pipeline/config.ts';
import { evalTool, evalNer, evalClassifier } from '../cli/pipeline/evaluate.ts';

const [out, stage, name, extraJson] = process.argv.slice(2) as [string, 'tool' | 'ner' | 'classifier', string, string];
const extra = JSON.parse(extraJson ?? '{}');
const rt = await Runtime.create();
const dbase = join(out, 'domain-base');
const sets = join(out, 'sets');
const odir = `/tmp/exp-sft/${name}`;
const tc = validateTrainConfig({ ...COMMON_DEFAULTS, ...STAGE_DEFAULTS[stage], ...extra, base_model: dbase, datasets: [{ path: join(sets, `${stage}.train.jsonl`), type: 'chat_template' }], test_datasets: [{ path: join(sets, `${stage}.val.jsonl`), type: 'chat_template' }], output_dir: odir, eval_steps: extra.eval_steps ?? 1000, save_steps: extra.save_steps ?? 100 });
const t0 = Date.now();
await runTraining({ config: tc, baseDir: '', io: new NodeIO(), rt, openSource: (p) => openModelSource(p), resume: false, say: () => {} });
const log = (await readFile(join(odir, 'train_log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
console.log(name, 'train s', ((Date.now() - t0) / 1000).toFixed(1), 'evals', JSON.stringify(log.filter((e: any) => e.eval_loss !== undefined).map((e: any) => [e.step, +e.eval_loss.toFixed(3)])));
const dom = JSON.parse(await readFile('trainer/data/samples/harborline/domain.json', 'utf8'));
const rows = (await readFile(join(sets, `${stage}.val.jsonl`), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
const cks = (process.env.CKS ?? '').split(',').filter(Boolean);
const adapters: Record<string, string> = { final: odir, ...Object.fromEntries(cks.map((c) => [`ck${c}`, join(odir, `checkpoint-${c}`)])) };
const engine = await createEngine({ device: rt, model: dbase, adapters, lora: { maxRank: 64, maxSlots: 8 } });
for (const m of Object.keys(adapters)) {
  let s;
  if (stage === 'tool') s = await evalTool(engine, m, rows, dom.tools.map((t: any) => ({ name: t.name, description: t.description, parameters: t.parameters })));
  else if (stage === 'ner') s = await evalNer(engine, m, rows, Object.keys(dom.entities));
  else s = await evalClassifier(engine, m, rows, Object.fromEntries(dom.labelSets.map((l: any) => [l.name, l.labels])));
  console.log(name, m, JSON.stringify(s));
}
await engine.destroy();
rt.destroyAll();
