// `lorafleet <command>`: one dispatch over subcommands, each loaded on demand.
import '../engine/node-install.ts'; // Dawn as the WebGPU provider, local files
import { packageVersion } from './args.ts';

const HELP = `lorafleet — one small language model, many LoRA adapters, on WebGPU

Usage: lorafleet <command> [options]        lorafleet <command> --help for its options

Commands:
  generate --prompt <text> [--model <dir|url>] [--adapter [name=]<dir>]... [--max-tokens N]
           [--temperature T] [--seed S] [--json]
                             one completion (default model: the embedded stories260K; sampling
                             defaults: the model's generation_config.json)
  serve [--model <dir|url>] [--adapters <dir>] [--host H] [--port P] [--api-key K] [--router F] ...
                             OpenAI / vLLM HTTP server
  doctor [--json]            WebGPU adapter, features, limits and a kernel self-check
  data <ingest|chunk|dedupe|synth|format|run> ...   the data engine
  route --router <router.json> "<text>" [--json] | --input <jsonl> | build|fit|eval ...
                             pick the adapter for a request
  train --config <file.json|yaml>   LoRA training (cpt | sft | dpo | orpo), PEFT adapter out
  merge --model <dir> --adapter <dir> --out <dir>   base + adapter → a complete HF model dir
  pipeline --docs <dir> --out <dir> [--model <dir|url>] [--teacher-url <url>] [--config <file>]
                             documents → data → CPT → Domain-Base → 4 adapters → DPO → router → eval report
  start [--docs <dir>] [--model <dir|url>] [--port P]   pipeline on the Harborline sample, then serve API + demo
  bench <name> [--json]      benchmarks (in a clone of the repository)
  help                       this text

Options:
  -V, --version              print the version
  -h, --help                 this text
`;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  doctor: async () => (await import('./doctor.ts')).doctorCli,
  generate: async () => (await import('./generate.ts')).generateCli,
  data: async () => (await import('../trainer/data/cli.ts')).dataCli,
  route: async () => (await import('../router/cli.ts')).routeCli,
  bench: async () => (await import('./bench.ts')).benchCli,
  train: async () => (await import('./train.ts')).trainCli,
  merge: async () => (await import('./train.ts')).mergeCli,
  serve: async () => (await import('./serve.ts')).serveCli,
  pipeline: async () => (await import('./pipeline.ts')).pipelineCli,
  start: async () => (await import('./start.ts')).startCli,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
    process.stdout.write(`lorafleet ${packageVersion()}\n`);
    return 0;
  }
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    // `help <command>`: that command's own help
    if (cmd === 'help' && rest[0] && commands[rest[0]]) return main([rest[0], '--help']);
    (cmd ? process.stdout : process.stderr).write(HELP);
    return cmd ? 0 : 2;
  }
  const load = commands[cmd];
  if (!load) {
    process.stderr.write(`lorafleet: unknown command '${cmd}'\n\n${HELP}`);
    return 2;
  }
  try {
    return await (await load())(rest);
  } catch (e) {
    const err = e as Error;
    process.stderr.write(`lorafleet ${cmd}: ${err.name && err.name !== 'Error' ? err.name + ': ' : ''}${err.message}\n`);
    if (process.env.LORAFLEET_DEBUG) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
