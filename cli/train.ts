// `lorafleet train --config <file.json|yaml>` and `lorafleet merge --model <dir> --adapter <dir> --out <dir>`.
//
// train: the config (Axolotl key names, trainer/train/config.ts) is validated first; relative paths
// in it are taken from the current directory (as Axolotl does). A progress bar runs on stderr;
// each logged step is a JSON line in output_dir/train_log.jsonl. Re-running the same command after
// a kill resumes from the newest output_dir/checkpoint-N (--no-resume starts over).
import { parseArgs } from 'node:util';
import { Runtime } from '../shaders/gpu/runtime.ts';
import { openModelSource } from '../engine/model/source.ts';
import { parseTrainConfig } from '../trainer/train/config.ts';
import { runTraining } from '../trainer/train/run.ts';
import { mergeAdapter } from '../trainer/train/merge.ts';
import { NodeIO } from '../trainer/train/node-io.ts';
import { Progress } from '../trainer/data/progress.ts';

const TRAIN_USAGE = 'usage: lorafleet train --config <file.json|yaml> [--no-resume] [--quiet]\n';
const MERGE_USAGE = 'usage: lorafleet merge --model <dir|url> --adapter <peft dir> --out <dir>\n';

export async function trainCli(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { config: { type: 'string' }, 'no-resume': { type: 'boolean' }, quiet: { type: 'boolean' }, help: { type: 'boolean' } } }));
  } catch (e) {
    process.stderr.write(`lorafleet train: ${(e as Error).message}\n${TRAIN_USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(TRAIN_USAGE);
    return 0;
  }
  if (!values.config) {
    process.stderr.write(`lorafleet train: --config is required\n${TRAIN_USAGE}`);
    return 2;
  }
  const io = new NodeIO();
  const config = parseTrainConfig(await io.readText(values.config), values.config);
  const rt = await Runtime.create();
  const quiet = !!values.quiet;
  let bar: Progress | null = null;
  const say = (m: string) => process.stderr.write(`${m}\n`);
  const res = await runTraining({
    config, baseDir: '', io, rt, openSource: (p) => openModelSource(p), resume: !values['no-resume'], say,
    onProgress: (step, total, loss) => {
      bar ??= new Progress('train', total, !quiet);
      bar.update(step, `loss ${loss.toFixed(4)}`);
    },
    onLog: (e) => {
      if (!quiet && e.eval_loss !== undefined) say(`\nstep ${e.step}: eval_loss ${e.eval_loss.toFixed(4)}${e.eval_perplexity ? ` (ppl ${e.eval_perplexity.toFixed(2)})` : ''}${e['eval_rewards/margins'] !== undefined ? ` margins ${e['eval_rewards/margins']!.toFixed(4)}` : ''}`);
    },
  });
  say(`${res.resumedFrom !== null ? `resumed at step ${res.resumedFrom}; ` : ''}${res.steps} steps → ${res.outputDir} (adapter_config.json, adapter_model.safetensors, train_log.jsonl, loss.svg)`);
  return 0;
}

export async function mergeCli(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { model: { type: 'string' }, adapter: { type: 'string' }, out: { type: 'string' } } }));
  } catch (e) {
    process.stderr.write(`lorafleet merge: ${(e as Error).message}\n${MERGE_USAGE}`);
    return 2;
  }
  if (!values.model || !values.adapter || !values.out) {
    process.stderr.write(`lorafleet merge: --model, --adapter and --out are required\n${MERGE_USAGE}`);
    return 2;
  }
  const r = await mergeAdapter(openModelSource(values.model), openModelSource(values.adapter), new NodeIO(), values.out);
  process.stderr.write(`merged ${r.merged} projections into ${values.out} (${r.tensors} tensors + config and tokenizer files)\n`);
  return 0;
}
