// experiment: dpo_tool variants from the tool SFT adapter of a pipeline out dir; tool eval on tool.val
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
import { evalTool } from '../cli/pipeline/evaluate.ts';

const [out, sets, name, extraJson] = process.argv.slice(2);
const extra = JSON.parse(extraJson ?? '{}');
const rt = await Runtime.create();
const dbase = join(out!, 'domain-base');
const odir = `/tmp/exp-dpo/${name}`;
if (name !== 'none') {
  const tc = validateTrainConfig({ ...COMMON_DEFAULTS, ...STAGE_DEFAULTS.dpo_tool, method: 'dpo', ...extra, base_model: dbase, datasets: [{ path: join(sets!, 'dpo-tool.train.jsonl'), type: 'preference' }], test_datasets: [{ path: join(sets!, 'dpo-tool.val.jsonl'), type: 'preference' }], lora_model_dir: process.env.SFT ?? join(out!, 'tool'), output_dir: odir, eval_steps: 1000 });
  const t0 = Date.now();
  await runTraining({ config: tc, baseDir: '', io: new NodeIO(), rt, openSource: (p) => openModelSource(p), resume: false, say: (m) => console.log(m) });
  const log = (await readFile(join(odir, 'train_log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  const ev = log.filter((e: any) => e.eval_loss !== undefined);
  console.log(name, 'train s', ((Date.now() - t0) / 1000).toFixed(1), 'eval first', JSON.stringify(ev[0]), 'last', JSON.stringify(ev.at(-1)));
}
const dom = JSON.parse(await readFile('trainer/data/samples/harborline/domain.json', 'utf8'));
const tools = dom.tools.map((t: any) => ({ name: t.name, description: t.description, parameters: t.parameters }));
const rows = (await readFile(join(out!, 'sets', 'tool.val.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
const engine = await createEngine({ device: rt, model: dbase, adapters: { sft: process.env.SFT ?? join(out!, 'tool'), ...(name !== 'none' ? { dpo: odir } : {}) }, lora: { maxRank: 64, maxSlots: 8 } });
for (const m of name !== 'none' ? ['dpo'] : ['sft']) {
  const ex: any[] = [];
  const s = await evalTool(engine, m, rows, tools, {}, ex);
  console.log(name, m, JSON.stringify(s));
}
await engine.destroy();
rt.destroyAll();
