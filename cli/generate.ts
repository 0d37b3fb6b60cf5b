// `lorafleet generate`: one completion from the command line.
//
//   lorafleet generate --model <dir|url> --prompt <text> [--max-tokens N] [--temperature T]
//                      [--top-p P] [--top-k K] [--seed S] [--adapter <peft dir>]
//                      [--weight-format f32|f16|q8] [--json]
//                      [--json-schema <file> | --regex <re> | --choice a,b,c | --grammar <file.ebnf>]
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
import type { WeightFormat } from '../shaders/matmul/weights.ts';
import type { ConstraintSpec } from '../engine/structured/constraint.ts';
import { readFileSync } from 'node:fs';

const USAGE = `usage: lorafleet generate --model <dir|url> --prompt <text> [--max-tokens N] [--temperature T]
                         [--top-p P] [--top-k K] [--seed S] [--adapter <peft dir>]
                         [--weight-format f32|f16|q8] [--json]
                         [--json-schema <file> | --regex <re> | --choice a,b,c | --grammar <file.ebnf>]
`;

class UsageError extends Error {
  name = 'UsageError';
}

function num(v: string | undefined, name: string, int: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n))) throw new UsageError(`--${name}: expected ${int ? 'an integer' : 'a number'}, got '${v}'\n${USAGE}`);
  return n;
}

export async function generateCli(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        prompt: { type: 'string' },
        'max-tokens': { type: 'string' },
        temperature: { type: 'string' },
        'top-p': { type: 'string' },
        'top-k': { type: 'string' },
        seed: { type: 'string' },
        adapter: { type: 'string' },
        'weight-format': { type: 'string' },
        json: { type: 'boolean', default: false },
        'json-schema': { type: 'string' },
        regex: { type: 'string' },
        choice: { type: 'string' },
        grammar: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(`lorafleet generate: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.prompt === undefined) {
    process.stderr.write(`lorafleet generate: --prompt is required\n${USAGE}`);
    return 2;
  }
  const wf = values['weight-format'];
  if (wf !== undefined && !['f32', 'f16', 'q8'].includes(wf)) {
    process.stderr.write(`lorafleet generate: --weight-format must be f32, f16 or q8 (got '${wf}')\n`);
    return 2;
  }
  let maxTokens, temperature, topP, topK, seed;
  try {
    maxTokens = num(values['max-tokens'], 'max-tokens', true) ?? 256;
    temperature = num(values.temperature, 'temperature', false); // default: the model's generation_config.json
    topP = num(values['top-p'], 'top-p', false);
    topK = num(values['top-k'], 'top-k', true);
    seed = num(values.seed, 'seed', true);
  } catch (e) {
    process.stderr.write(`lorafleet generate: ${(e as Error).message}`);
    return 2;
  }
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
  const adapters = values.adapter ? { adapter: values.adapter } : undefined;
  const engine = await createEngine({ model: values.model, weightFormat: wf as WeightFormat | undefined, adapters }); // no --model: the embedded stories260K
  try {
    const t0 = performance.now();
    const g = engine.generate(values.prompt, {
      max_tokens: maxTokens,
      temperature,
      top_p: topP,
      top_k: topK,
      seed,
      model: values.adapter ? 'adapter' : null,
      constraint,
    });
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
      process.stderr.write(
        `${s.promptIds.length} prompt + ${n} generated tokens; first token ${((first - t0) / 1000).toFixed(2)} s, ` +
          `${n > 1 ? ((n - 1) / decodeS).toFixed(1) : '-'} tok/s decode (${engine.runtime.info.description || engine.runtime.info.device || engine.runtime.info.vendor})\n`,
      );
    }
    return 0;
  } finally {
    await engine.destroy();
  }
}
