// Structured-output bench: what per-request grammars cost inside a batch.
//
//   lorafleet bench structured [--json] [--models stories260K,smollm2-135m] [--steps N] [--rounds N]
//                              [--cache-dir DIR] [--no-write]
//
// Keys (per model):
//   constrained_vs_free   decode tok/s of 32 concurrent requests, each under a different JSON schema
//                         (the whole constrained step: 32 XGrammar masks on the CPU, one bitmask upload,
//                         the masked sampling kernel, 32 matcher advances) ÷ the same 32 unconstrained
//   compile_ms_median     XGrammar compile of one of the 32 schemas (cold cache), median; and the
//   compile_ms_nested     nested schema of the tests (objects, enums, bounds, arrays, nullables)
//   mask_ms_per_row       CPU time of one row's next-token mask (getNextTokenBitmask + checks) per token
// Both configurations run the same decode steps on the same GpuModel + paged KV + GpuStepRunner, at
// temperature 1 (the sampling kernel in both); rounds are interleaved and the fastest kept.
// The schemas ask for long outputs (arrays of exactly 1000 objects), so no matcher ends inside the timed steps.
// SmolLM2-135M: random weights of its shapes, and a synthetic byte-level vocabulary of its size
// (49152 tokens; no SmolLM2 tokenizer is stored here) for the grammar engine.
// Writes bench/structured/results.json and results.md.
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { LocalDirSource } from '../../engine/model/source.ts';
import { PagedKvCache } from '../../engine/kv/paged-cache.ts';
import { GpuModel } from '../../engine/forward/gpu-model.ts';
import { GpuStepRunner } from '../../engine/forward/runner.ts';
import { loadTokenizer } from '../../engine/model/tokenizer.ts';
import { GrammarEngine, vocabInfo, type GrammarConstraint, type VocabInfo } from '../../engine/structured/grammar.ts';
import type { SampleParams } from '../../shaders/sample/sample.ts';
import type { StepSegment } from '../../engine/scheduler/types.ts';
import type { PresetName } from '../../tests/helpers/random-model.ts';
import { Rng } from '../../shaders/lib/random.ts';
import { adapterLine, benchModelDir, runIfMain } from '../common.ts';

const here = dirname(fileURLToPath(import.meta.url));
const STORIES = join(here, '../../../shared/models/stories260K');
const N_REQ = 32;

interface Spec {
  name: string;
  preset: PresetName | null;
  prompt: number;
  steps: number;
  rounds: number;
}
const SPECS: Record<string, Spec> = {
  stories260K: { name: 'stories260K', preset: null, prompt: 8, steps: 16, rounds: 5 },
  // a 32-row decode step of this shape takes tens of seconds on SwiftShader: short rounds
  'smollm2-135m': { name: 'smollm2-135m (random weights, synthetic 49152-token byte-level vocab)', preset: 'smollm2-135m', prompt: 2, steps: 2, rounds: 1 },
};

/** 32 different schemas: each an object holding an array of up to 1000 records of its own shape. */
function schemaOf(i: number): Record<string, unknown> {
  const enums = ['red', 'green', 'blue', 'cyan', 'teal', 'gold', 'plum'].slice(0, 2 + (i % 5));
  return {
    type: 'object',
    properties: {
      [`list_${i}`]: {
        type: 'array',
        minItems: 1000,
        maxItems: 1000,
        items: {
          type: 'object',
          properties: {
            [`id${i}`]: { type: 'integer', minimum: 0, maximum: 10 + i * 37 },
            color: { enum: enums },
            note: { type: 'string', maxLength: 4 + (i % 9) },
            ...(i % 2 ? { flag: { type: ['boolean', 'null'] } } : {}),
          },
          required: [`id${i}`, 'color', 'note'],
        },
      },
    },
    required: [`list_${i}`],
  };
}

const NESTED = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 10 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    mood: { enum: ['happy', 'sad', 'angry'] },
    pet: { anyOf: [{ type: 'null' }, { type: 'object', properties: { kind: { enum: ['cat', 'dog', 'bird'] }, legs: { type: 'integer', minimum: 0, maximum: 4 } }, required: ['kind', 'legs'] }] },
    tags: { type: 'array', items: { type: 'string', maxLength: 5 }, minItems: 1, maxItems: 3 },
    nick: { type: ['string', 'null'], maxLength: 6 },
  },
  required: ['name', 'age', 'mood', 'pet', 'tags', 'nick'],
};

/** A byte-level (GPT-2 style) vocabulary of `size` tokens: 256 byte tokens, then seeded random merges. */
function syntheticByteLevelVocab(size: number, eos: number[]): VocabInfo {
  const byteChar: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    byteChar[b] = String.fromCharCode(printable ? b : 256 + n++);
  }
  const rng = new Rng(7);
  const alpha = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789{}[]":,.-_ ';
  const vocab: string[] = [];
  const seen = new Set<string>();
  let nb = 0;
  for (let i = 0; i < size; i++) {
    if (eos.includes(i)) {
      vocab.push(`<|special_${i}|>`);
      continue;
    }
    if (nb < 256) {
      vocab.push(byteChar[nb++]!);
      continue;
    }
    let t = '';
    do {
      const len = 2 + rng.int(7);
      t = '';
      for (let k = 0; k < len; k++) t += alpha[rng.int(alpha.length)];
    } while (seen.has(t));
    seen.add(t);
    vocab.push([...new TextEncoder().encode(t)].map((b) => byteChar[b]).join(''));
  }
  return { vocab, vocabType: 'byte_level', prependSpace: false, vocabSize: size, stopTokenIds: eos };
}

export interface ModelResult {
  model: string;
  requests: number;
  decode_steps: number;
  rounds: number;
  free32_tok_s: number;
  constrained32_tok_s: number;
  constrained_vs_free: number;
  compile_ms_median: number;
  compile_ms_max: number;
  compile_ms_nested: number;
  mask_ms_per_row: number;
  runs_ms: { free: number[]; constrained: number[] };
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};

async function benchModel(rt: Runtime, dir: string, spec: Spec, steps: number, rounds: number, log: (s: string) => void): Promise<ModelResult> {
  const model = await GpuModel.load(rt, new LocalDirSource(dir), { weightFormat: 'f32' });
  const c = model.config;
  const eos = c.eosTokenIds.length ? c.eosTokenIds : [0];
  const vinfo = spec.preset ? syntheticByteLevelVocab(c.vocabSize, eos) : vocabInfo(await loadTokenizer(new LocalDirSource(dir)), c.vocabSize, eos);
  const ge = new GrammarEngine(vinfo);
  // ---- compile: the 32 schemas (cold), the nested schema
  const compileMs: number[] = [];
  for (let i = 0; i < N_REQ; i++) {
    const t = performance.now();
    await ge.compile({ kind: 'json_schema', schema: schemaOf(i), strict: true }, `schema ${i}`);
    compileMs.push(performance.now() - t);
  }
  let t0 = performance.now();
  await ge.compile({ kind: 'json_schema', schema: NESTED, strict: true }, 'nested');
  const nestedMs = performance.now() - t0;
  log(`  compile: median ${median(compileMs).toFixed(1)} ms, max ${Math.max(...compileMs).toFixed(1)} ms over ${N_REQ} schemas (the first includes loading XGrammar); nested ${nestedMs.toFixed(1)} ms`);

  const P = spec.prompt;
  const blocksPerSeq = Math.ceil((P + steps + 2) / 16) + 1;
  const cache = PagedKvCache.create(rt, { numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, numBlocks: N_REQ * blocksPerSeq + 4, blockSize: 16 });
  const runner = new GpuStepRunner(model, cache);
  const sampleOf = (i: number, k: number): SampleParams => ({ temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 100 + i, step: k });
  // ---- prefill once (untimed): the first generated token of each sequence
  const prompts = Array.from({ length: N_REQ }, (_, i) => Array.from({ length: P }, (_, j) => (1 + i * 131 + j * 7919) % c.vocabSize));
  t0 = performance.now();
  const segs0: StepSegment[] = [];
  for (let s = 0; s < N_REQ; s++) {
    cache.allocateOrThrow(s, P);
    segs0.push({ seqId: s, tokens: prompts[s]!, startPos: 0, adapter: null, sample: sampleOf(s, 0), history: prompts[s]! });
  }
  const first = (await runner.runStep({ segments: segs0 })).map((r) => r.token!);
  log(`  prefilled ${N_REQ}×${P} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  let maskMs = 0;
  let maskRows = 0;
  /** `steps` decode steps from the prompt; constrained: every row under its own schema. Returns ms. */
  const decode = async (constrained: boolean): Promise<number> => {
    for (let s = 0; s < N_REQ; s++) cache.truncate(s, P);
    const cons: GrammarConstraint[] = [];
    if (constrained) for (let i = 0; i < N_REQ; i++) cons.push(await ge.constraint({ kind: 'json_schema', schema: schemaOf(i), strict: true }, `schema ${i}`));
    // the first token (sampled at prefill, unconstrained) is replaced by the schema's first allowed token: '{'
    const cur = [...first];
    for (const [i, m] of cons.entries()) {
      cur[i] = await firstAllowed(m);
      m.accept(cur[i]!);
    }
    const stepOnce = async (k: number, timed: boolean) => {
      const segs: StepSegment[] = [];
      for (let s = 0; s < N_REQ; s++) {
        cache.allocateOrThrow(s, 1);
        const seg: StepSegment = { seqId: s, tokens: [cur[s]!], startPos: P + k, adapter: null, sample: sampleOf(s, k + 1), history: [] };
        if (constrained) {
          const t = performance.now();
          seg.mask = await cons[s]!.nextMask();
          if (timed) {
            maskMs += performance.now() - t;
            maskRows++;
          }
        }
        segs.push(seg);
      }
      const res = await runner.runStep({ segments: segs });
      res.forEach((r, s) => {
        cur[s] = r.token!;
        if (constrained && !cons[s]!.accept(r.token!)) throw new Error(`bench: row ${s} sampled token ${r.token} outside its mask`);
      });
    };
    await stepOnce(0, false); // warm-up (pipelines, pooled buffers)
    const t = performance.now();
    for (let k = 1; k <= steps; k++) await stepOnce(k, true);
    const ms = performance.now() - t;
    for (const m of cons) m.free();
    return ms;
  };
  const firstAllowed = async (m: GrammarConstraint): Promise<number> => {
    const mask = (await m.nextMask())!;
    for (let t = 0; t < c.vocabSize; t++) if ((mask[t >>> 5]! >>> (t & 31)) & 1) return t;
    throw new Error('no allowed first token');
  };

  const tf: number[] = [], tc: number[] = [];
  for (let round = 0; round < rounds; round++) {
    tf.push(await decode(false));
    tc.push(await decode(true));
    log(`  round ${round + 1}/${rounds}: free ${tf.at(-1)!.toFixed(0)} ms, constrained ${tc.at(-1)!.toFixed(0)} ms (${steps} steps × ${N_REQ} rows)`);
  }
  const tokS = (ms: number) => ((N_REQ * steps) / ms) * 1000;
  const free = tokS(Math.min(...tf)), cons = tokS(Math.min(...tc));
  cache.destroy();
  model.destroy();
  return {
    model: spec.name, requests: N_REQ, decode_steps: steps, rounds,
    free32_tok_s: free, constrained32_tok_s: cons, constrained_vs_free: cons / free,
    compile_ms_median: median(compileMs), compile_ms_max: Math.max(...compileMs), compile_ms_nested: nestedMs,
    mask_ms_per_row: maskMs / maskRows,
    runs_ms: { free: tf, constrained: tc },
  };
}

function toMarkdown(r: { adapter: string; load: string; date: string; models: ModelResult[] }): string {
  const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  let md = `# bench/structured results\n\n${r.date} · ${r.adapter} · host load (1/5/15 min) ${r.load}\n\n`;
  md += 'Decode tok/s of 32 concurrent requests, each under its own JSON schema (CPU masks + one bitmask upload + masked sampling + matcher advances), ÷ the same 32 unconstrained; both at temperature 1, rounds interleaved, fastest kept. Compile: XGrammar, cold cache. Mask: CPU time of one row\'s next-token bitmask.\n\n';
  md += '| model | steps × rounds | free tok/s | constrained tok/s | **constrained_vs_free** | compile median / max ms | nested compile ms | mask ms / token / row |\n|---|---|---|---|---|---|---|---|\n';
  for (const m of r.models) {
    md += `| ${m.model} | ${m.decode_steps} × ${m.rounds} | ${f(m.free32_tok_s)} | ${f(m.constrained32_tok_s)} | **${f(m.constrained_vs_free, 3)}** | ${f(m.compile_ms_median, 1)} / ${f(m.compile_ms_max, 1)} | ${f(m.compile_ms_nested, 1)} | ${f(m.mask_ms_per_row, 3)} |\n`;
  }
  md += '\nRuns (ms): ' + r.models.map((m) => `${m.model}: free ${m.runs_ms.free.map((x) => x.toFixed(0)).join(', ')}; constrained ${m.runs_ms.constrained.map((x) => x.toFixed(0)).join(', ')}`).join(' · ') + '\n';
  return md;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      models: { type: 'string', default: 'stories260K,smollm2-135m' },
      steps: { type: 'string' },
      rounds: { type: 'string' },
      'cache-dir': { type: 'string', default: join(tmpdir(), 'lorafleet-bench-models') },
      'no-write': { type: 'boolean', default: false },
    },
  });
  const log = (s: string) => (values.json ? process.stderr : process.stdout).write(s + '\n');
  const rt = await Runtime.create();
  log(adapterLine(rt));
  const models: ModelResult[] = [];
  for (const name of values.models!.split(',')) {
    const spec = SPECS[name];
    if (!spec) throw new Error(`bench structured: unknown model ${name} (${Object.keys(SPECS).join(', ')})`);
    log(`${spec.name}:`);
    const dir = await benchModelDir(spec.preset, STORIES, values['cache-dir']!, log);
    models.push(await benchModel(rt, dir, spec, values.steps ? Number(values.steps) : spec.steps, values.rounds ? Number(values.rounds) : spec.rounds, log));
    const m = models.at(-1)!;
    log(`  → constrained_vs_free ${m.constrained_vs_free.toFixed(3)} (free ${m.free32_tok_s.toFixed(2)} tok/s, constrained ${m.constrained32_tok_s.toFixed(2)} tok/s), mask ${m.mask_ms_per_row.toFixed(3)} ms/token/row`);
  }
  const result = { adapter: adapterLine(rt), load: loadavg().map((x) => x.toFixed(1)).join(' / '), date: new Date().toISOString(), models };
  if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  if (!values['no-write']) {
    writeFileSync(join(here, 'results.json'), JSON.stringify(result, null, 2) + '\n');
    writeFileSync(join(here, 'results.md'), toMarkdown(result));
  }
  rt.destroyAll();
  return 0;
}

runIfMain(import.meta.url, run);
