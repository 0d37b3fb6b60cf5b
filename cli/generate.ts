// `lorafleet generate`: one completion from the command line.
//
//   lorafleet generate --prompt <text> [--model <dir|url>] [options]   (--help lists them)
//
// The constraint flags (structured output, engine/structured): the completion is JSON that
// validates against the schema file, a match of the regex, one of the comma-separated labels, or
// a sentence of the EBNF grammar (XGrammar dialect, rule `root`). A bad schema / regex / grammar
// is an invalid_request error before anything runs (exit 1); a missing file a usage error (2).
//
// Without --json the prompt and the completion stream to stdout as llama2.c's run.c prints
// them, and a tokens/s line goes to stderr. With --json exactly one JSON object is printed:
//   {"prompt_ids": [...], "completion_ids": [...], "text": "...", "full_text": "...", "finish_reason": "..."}
// prompt_ids include BOS when the tokenizer adds it; `text` is the decoded completion only
// (what an OpenAI-style API returns), `full_text` is prompt + completion decoded together (what
// llama2.c prints, and what the stories260K README quotes).
import { parseArgs } from 'node:util';
import { createEngine } from '../engine/api/engine.ts';
import { EMBEDDED_MODEL_NAME } from '../engine/model/embedded.ts';
import type { WeightFormat } from '../shaders/matmul/weights.ts';
import type { ConstraintSpec } from '../engine/structured/constraint.ts';
import { readFileSync } from 'node:fs';
import { joinNegativeValues, namedPath, valuedOptions } from './args.ts';

const USAGE = `usage: lorafleet generate --prompt <text> [options]

  --prompt <text>           the prompt (required)
  --model <dir|url>         a Hugging Face model directory or hub URL
                            (default: the embedded ${EMBEDDED_MODEL_NAME})
  --max-tokens N            most tokens to generate (default: 256; EOS ends sooner; more than
                            the context holds is clamped, with a notice)
  --temperature T           0 = greedy (default: the model's generation_config.json; for
                            ${EMBEDDED_MODEL_NAME} do_sample is false, so greedy, the same text each run;
                            with T > 0 give --seed for a repeatable run)
  --top-p P                 nucleus sampling (default: generation_config.json, else 1)
  --top-k K                 top-k sampling, 0 = off (default: generation_config.json, else 0)
  --seed S                  sampling seed (default: random)
  --adapter [name=]<dir>    a PEFT adapter directory; repeat for several (name defaults to the
                            directory's last part)
  --use <name>              which adapter serves the prompt (default: the only --adapter;
                            required with several; 'base' for the base model)
  --weight-format f32|f16|q8  how weights sit on the GPU (default: f32)
  --json                    print one JSON object instead of streaming text
  --json-schema <file> | --regex <re> | --choice a,b,c | --grammar <file.ebnf>
                            constrain the output (structured output; at most one)
  -h, --help                this text

Negative numbers work as --x -1 or --x=-1.
`;

class UsageError extends Error {
  name = 'UsageError';
}

function num(v: string | undefined, name: string, int: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n))) throw new UsageError(`--${name}: expected ${int ? 'an integer' : 'a number'}, got '${v}'`);
  return n;
}

const OPTIONS = {
  model: { type: 'string' },
  prompt: { type: 'string' },
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  'top-k': { type: 'string' },
  seed: { type: 'string' },
  adapter: { type: 'string', multiple: true },
  use: { type: 'string' },
  'weight-format': { type: 'string' },
  json: { type: 'boolean', default: false },
  'json-schema': { type: 'string' },
  regex: { type: 'string' },
  choice: { type: 'string' },
  grammar: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export async function generateCli(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: joinNegativeValues(argv, valuedOptions(OPTIONS)), options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (e) {
    process.stderr.write(`lorafleet generate: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const fail = (msg: string) => {
    process.stderr.write(`lorafleet generate: ${msg}\n(lorafleet generate --help for the options)\n`);
    return 2;
  };
  if (values.prompt === undefined) return fail('--prompt is required');
  const wf = values['weight-format'];
  if (wf !== undefined && !['f32', 'f16', 'q8'].includes(wf)) return fail(`--weight-format must be f32, f16 or q8 (got '${wf}')`);
  let maxTokens, temperature, topP, topK, seed;
  try {
    maxTokens = num(values['max-tokens'], 'max-tokens', true);
    temperature = num(values.temperature, 'temperature', false);
    topP = num(values['top-p'], 'top-p', false);
    topK = num(values['top-k'], 'top-k', true);
    seed = num(values.seed, 'seed', true);
  } catch (e) {
    return fail((e as Error).message);
  }
  if (maxTokens !== undefined && maxTokens < 1) return fail(`--max-tokens must be at least 1 (got ${maxTokens})`);
  if (temperature !== undefined && (temperature < 0 || temperature > 2)) return fail(`--temperature must be in [0, 2] (got ${temperature})`);

  // ---- output constraint (at most one)
  const given = (['json-schema', 'regex', 'choice', 'grammar'] as const).filter((k) => values[k] !== undefined);
  if (given.length > 1) {
    process.stderr.write(`lorafleet generate: give at most one of --json-schema, --regex, --choice, --grammar (got ${given.map((k) => '--' + k).join(', ')})\n`);
    return 2;
  }
  let constraint: ConstraintSpec | null = null;
  try {
    if (values['json-schema'] !== undefined) {
      const f = values['json-schema'];
      let schema: unknown;
      try {
        schema = JSON.parse(readFileSync(f, 'utf8'));
      } catch (e) {
        throw new UsageError(`--json-schema ${f}: ${(e as Error).message}`);
      }
      constraint = { kind: 'json_schema', schema: schema as Record<string, unknown>, strict: true };
    } else if (values.regex !== undefined) constraint = { kind: 'regex', pattern: values.regex };
    else if (values.choice !== undefined) constraint = { kind: 'choice', choices: values.choice.split(',').map((c) => c.trim()).filter((c) => c) };
    else if (values.grammar !== undefined) {
      try {
        constraint = { kind: 'grammar', ebnf: readFileSync(values.grammar, 'utf8') };
      } catch (e) {
        throw new UsageError(`--grammar ${values.grammar}: ${(e as Error).message}`);
      }
    }
  } catch (e) {
    process.stderr.write(`lorafleet generate: ${(e as Error).message}\n`);
    return 2;
  }

  const adapters: Record<string, string> = {};
  for (const a of values.adapter ?? []) {
    const [name, dir] = namedPath(a);
    if (adapters[name] !== undefined) return fail(`two adapters are named '${name}' (give them names: --adapter name=dir)`);
    adapters[name] = dir;
  }
  const names = Object.keys(adapters);
  let use: string | null = null;
  if (values.use !== undefined && values.use !== 'base') {
    if (!names.includes(values.use)) return fail(`--use ${values.use}: no such adapter (given: ${names.join(', ') || 'none'})`);
    use = values.use;
  } else if (values.use === undefined && names.length === 1) {
    use = names[0]!;
  } else if (values.use === undefined && names.length > 1) {
    return fail(`${names.length} adapters given (${names.join(', ')}): choose the one for this prompt with --use <name> (or --use base)`);
  }

  // no --model: the embedded stories260K
  const engine = await createEngine({
    ...(values.model !== undefined ? { model: values.model } : {}),
    ...(wf !== undefined ? { weightFormat: wf as WeightFormat } : {}),
    ...(names.length ? { adapters } : {}),
  });
  try {
    const promptLen = engine.tokenizer.encode(values.prompt).length;
    const context = Math.min(engine.config.maxPositions, engine.cache.numBlocks * engine.cache.blockSize);
    if (promptLen >= context) {
      process.stderr.write(`lorafleet generate: the prompt has ${promptLen} tokens; ${engine.modelName}'s context holds ${context}: shorten it\n`);
      return 2;
    }
    if (maxTokens !== undefined && promptLen + maxTokens > context) {
      const room = context - promptLen;
      process.stderr.write(`lorafleet generate: note: --max-tokens ${maxTokens} does not fit the context (${context} tokens, ${promptLen} in the prompt): clamped to ${room}\n`);
      maxTokens = room;
    }
    maxTokens ??= Math.min(256, context - promptLen);
    const t0 = performance.now();
    const g = engine.generate(values.prompt, { max_tokens: maxTokens, temperature, top_p: topP, top_k: topK, seed, model: use, constraint });
    await g.ready; // an invalid constraint fails here, before generation
    let first = 0;
    if (!values.json) process.stdout.write(values.prompt);
    let n = 0;
    for await (const t of g) {
      if (!first) first = performance.now();
      if (t.token >= 0) n++;
      if (!values.json && t.text) process.stdout.write(t.text);
    }
    const s = await g.done;
    const t1 = performance.now();
    if (values.json) {
      const out = {
        prompt_ids: s.promptIds,
        completion_ids: s.completionIds,
        text: s.text,
        full_text: engine.tokenizer.decode([...s.promptIds, ...s.completionIds]),
        finish_reason: s.finishReason,
      };
      process.stdout.write(JSON.stringify(out) + '\n');
    } else {
      process.stdout.write('\n');
      const decodeS = (t1 - first) / 1000;
      const info = engine.runtime.info;
      process.stderr.write(
        `${s.promptIds.length} prompt + ${n} generated tokens (${engine.modelName}${use ? ` + ${use}` : ''}); first token ${((first - t0) / 1000).toFixed(2)} s, ` +
          `${n > 1 ? ((n - 1) / decodeS).toFixed(1) : '-'} tok/s decode (${info.description || info.device || info.vendor})\n`,
      );
    }
    return 0;
  } finally {
    await engine.destroy();
  }
}
