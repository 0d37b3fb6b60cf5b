// Decode bench: prefill tokens/s and decode tokens/s of the whole engine step (GpuStepRunner:
// forward + GPU sampling + the one readback per step), for stories260K and random-weight models
// with SmolLM2-135M and Qwen2.5-0.5B shapes; and the weight bytes streamed per decoded token as
// GB/s, against the best M=1 matvec GB/s of bench/kernels (its results.json, or one matvec
// measured in this run when that file is missing).
//
//   lorafleet bench decode [--json] [--quick] [--models stories260K,smollm2-135m,qwen2.5-0.5b]
//                          [--formats f32,q8] [--cache-dir DIR] [--no-write]
//
// Random model directories are written once into --cache-dir (default: $TMPDIR/lorafleet-bench-models).
// Writes bench/decode/results.md and results.json.
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { LocalDirSource } from '../../engine/model/source.ts';
import { PagedKvCache } from '../../engine/kv/paged-cache.ts';
import { GpuModel } from '../../engine/forward/gpu-model.ts';
import { GpuStepRunner } from '../../engine/forward/runner.ts';
import { matmul, matmulBytes } from '../../shaders/matmul/matmul.ts';
import { uploadWeight, destroyWeight, type WeightFormat } from '../../shaders/matmul/weights.ts';
import { randomArray } from '../../shaders/lib/check.ts';
import type { PresetName } from '../../tests/helpers/random-model.ts';
import { benchModelDir, adapterLine, runIfMain } from '../common.ts';
import type { SampleParams } from '../../shaders/sample/sample.ts';

const here = dirname(fileURLToPath(import.meta.url));
const STORIES = join(here, '../../../shared/models/stories260K');

interface ModelSpec {
  name: string;
  preset: PresetName | null;
  prompt: number;
  decode: number;
}

const SPECS: Record<string, ModelSpec> = {
  stories260K: { name: 'stories260K', preset: null, prompt: 64, decode: 64 },
  'smollm2-135m': { name: 'smollm2-135m (random weights)', preset: 'smollm2-135m', prompt: 16, decode: 6 },
  'qwen2.5-0.5b': { name: 'qwen2.5-0.5b (random weights)', preset: 'qwen2.5-0.5b', prompt: 6, decode: 2 },
};

interface Row {
  model: string;
  format: WeightFormat;
  loadS: number;
  weightMB: number;
  promptTokens: number;
  prefillMs: number;
  prefillTokS: number;
  decodeTokens: number;
  decodeMsPerTok: number;
  decodeTokS: number;
  /** Matrix weight bytes streamed per decoded token / time per token. */
  decodeGBs: number;
  /** GB/s of one M=1 matmul on this model's layer-0 gate|up, timed right after the decode loop. */
  matvecGBs: number;
  /** decodeGBs / matvecGBs: the share of the same-moment matvec bound the whole decode step reaches. */
  vsOwnMatvec: number;
  /** decodeGBs / best matvec GB/s of the same format (bench/kernels results.json, or the in-run baseline). */
  vsMatvec: number | null;
}

const GREEDY: SampleParams = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0, step: 0 };

async function benchModel(rt: Runtime, dir: string, spec: ModelSpec, format: WeightFormat, quick: boolean, log: (s: string) => void): Promise<Omit<Row, 'vsMatvec' | 'vsOwnMatvec'>> {
  const t0 = performance.now();
  const model = await GpuModel.load(rt, new LocalDirSource(dir), { weightFormat: format });
  const loadS = (performance.now() - t0) / 1000;
  const c = model.config;
  const P = quick ? Math.max(4, spec.prompt >> 2) : spec.prompt;
  const N = quick ? Math.max(2, spec.decode >> 2) : spec.decode;
  const cache = PagedKvCache.create(rt, { numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, numBlocks: Math.ceil((P + N + 8) / 16) * 2 + 2, blockSize: 16 });
  const runner = new GpuStepRunner(model, cache);
  const prompt = Array.from({ length: P }, (_, i) => (i * 7919 + 13) % c.vocabSize);
  try {
    // warm-up: a 2-token prefill and a decode step compile every pipeline both phases use
    // (pipelines depend on the kernel variant, not on the token count)
    cache.allocateOrThrow(1000, 3);
    const [w] = await runner.runStep({ segments: [{ seqId: 1000, tokens: prompt.slice(0, 2), startPos: 0, adapter: null, sample: GREEDY, history: prompt }] });
    await runner.runStep({ segments: [{ seqId: 1000, tokens: [w!.token!], startPos: 2, adapter: null, sample: GREEDY, history: prompt }] });
    cache.free(1000);

    cache.allocateOrThrow(1, P);
    let t = performance.now();
    let [r] = await runner.runStep({ segments: [{ seqId: 1, tokens: prompt, startPos: 0, adapter: null, sample: GREEDY, history: prompt }] });
    const prefillMs = performance.now() - t;
    const seq = [...prompt];
    t = performance.now();
    for (let i = 0; i < N; i++) {
      const tok = r!.token!;
      seq.push(tok);
      cache.allocateOrThrow(1, 1);
      [r] = await runner.runStep({ segments: [{ seqId: 1, tokens: [tok], startPos: seq.length - 1, adapter: null, sample: { ...GREEDY, step: i + 1 }, history: seq }] });
    }
    const decodeMs = performance.now() - t;
    const msPerTok = decodeMs / N;
    // The same moment's matvec bound: layer 0's gate|up (the biggest per-layer matrix) alone, M = 1.
    const wGU = model.layers[0]!.gateUp;
    const xv = rt.upload(new Float32Array(wGU.K).fill(0.01));
    const ov = rt.createBuffer(wGU.N * 4, 'bench-mv-out');
    matmul(rt, xv, wGU, ov, 1);
    await rt.sync();
    const reps = 5;
    t = performance.now();
    for (let i = 0; i < reps; i++) matmul(rt, xv, wGU, ov, 1);
    await rt.sync();
    const mvMs = (performance.now() - t) / reps;
    rt.destroy(xv);
    rt.destroy(ov);
    const matvecGBs = matmulBytes(wGU, 1) / mvMs / 1e6;
    const row = {
      model: spec.name,
      format,
      loadS,
      weightMB: model.weightBytes / 1e6,
      promptTokens: P,
      prefillMs,
      prefillTokS: (P / prefillMs) * 1000,
      decodeTokens: N,
      decodeMsPerTok: msPerTok,
      decodeTokS: 1000 / msPerTok,
      decodeGBs: model.decodeWeightBytes / msPerTok / 1e6,
      matvecGBs,
    };
    log(
      `${spec.name.padEnd(30)} ${format.padEnd(4)} load ${loadS.toFixed(1)} s · prefill ${P} tok ${row.prefillTokS.toFixed(1)} tok/s · ` +
        `decode ${N} tok ${row.decodeTokS.toFixed(2)} tok/s (${msPerTok.toFixed(1)} ms/tok, ${row.decodeGBs.toFixed(2)} GB/s of weights; ` +
        `gate|up matvec alone ${matvecGBs.toFixed(2)} GB/s)`,
    );
    return row;
  } finally {
    cache.destroy();
    model.destroy();
    rt.trimPool();
  }
}

/** Best M=1 GB/s per format from bench/kernels/results.json, else measured here on an 896→4864 matvec. */
async function matvecBaseline(rt: Runtime, formats: WeightFormat[], log: (s: string) => void): Promise<{ source: string; gbps: Partial<Record<WeightFormat, number>> }> {
  const file = join(here, '../kernels/results.json');
  const gbps: Partial<Record<WeightFormat, number>> = {};
  if (existsSync(file)) {
    const j = JSON.parse(readFileSync(file, 'utf8')) as { date?: string; rows: Array<{ M: number; format: WeightFormat; gbps: number }> };
    for (const r of j.rows) if (r.M === 1) gbps[r.format] = Math.max(gbps[r.format] ?? 0, r.gbps);
    if (formats.every((f) => gbps[f] !== undefined)) return { source: `bench/kernels/results.json (${j.date ?? 'undated'}, best M=1 row per format)`, gbps };
  }
  const K = 896;
  const Nn = 4864;
  const data = randomArray(Nn * K, 5, 0.05);
  const x = rt.upload(randomArray(K, 6));
  const out = rt.createBuffer(Nn * 4, 'bench-out');
  for (const f of formats) {
    if (gbps[f] !== undefined) continue;
    const w = uploadWeight(rt, 'bench-matvec', data, Nn, K, f);
    matmul(rt, x, w, out, 1);
    await rt.sync();
    const reps = 10;
    const t = performance.now();
    for (let i = 0; i < reps; i++) matmul(rt, x, w, out, 1);
    await rt.sync();
    const ms = (performance.now() - t) / reps;
    gbps[f] = matmulBytes(w, 1) / ms / 1e6;
    log(`matvec ${K}→${Nn} ${f}: ${ms.toFixed(2)} ms, ${gbps[f]!.toFixed(2)} GB/s (wall clock)`);
    destroyWeight(rt, w);
  }
  rt.destroy(x);
  rt.destroy(out);
  return { source: `measured in this run (matvec ${K}→${Nn}, wall clock, 10 reps)`, gbps };
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      models: { type: 'string', default: Object.keys(SPECS).join(',') },
      formats: { type: 'string', default: 'f32' },
      'cache-dir': { type: 'string', default: join(tmpdir(), 'lorafleet-bench-models') },
      'no-write': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const log = (s: string) => {
    if (!values.json) console.log(s);
  };
  const formats = values.formats!.split(',') as WeightFormat[];
  for (const f of formats) if (!['f32', 'f16', 'q8'].includes(f)) throw new Error(`--formats: unknown format '${f}'`);
  const names = values.models!.split(',');
  for (const n of names) if (!SPECS[n]) throw new Error(`--models: unknown model '${n}' (have ${Object.keys(SPECS).join(', ')})`);

  const load0 = loadavg()[0]!;
  const rt = await Runtime.create();
  const t0 = performance.now();
  const info = rt.info;
  log(adapterLine(rt));
  const base = await matvecBaseline(rt, formats, log);
  const rows: Row[] = [];
  for (const n of names) {
    const spec = SPECS[n]!;
    const dir = await benchModelDir(spec.preset, STORIES, values['cache-dir']!, log);
    for (const f of formats) {
      const r = await benchModel(rt, dir, spec, f, values.quick!, log);
      const mv = base.gbps[f];
      rows.push({ ...r, vsOwnMatvec: r.decodeGBs / r.matvecGBs, vsMatvec: mv ? r.decodeGBs / mv : null });
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const result = { date: new Date().toISOString(), info, seconds, cpus: cpus().length, loadavg: [load0, loadavg()[0]!], matvec: base, rows };
  if (!values['no-write']) {
    writeFileSync(join(here, 'results.json'), JSON.stringify(result, null, 2) + '\n');
    // keep the section bench/decode/profile.ts maintains
    const mdFile = join(here, 'results.md');
    const prev = existsSync(mdFile) ? readFileSync(mdFile, 'utf8') : '';
    const a = prev.indexOf('<!-- profile:begin');
    writeFileSync(mdFile, toMarkdown(result) + (a >= 0 ? '\n' + prev.slice(a) : ''));
  }
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else log(`done in ${seconds.toFixed(1)} s`);
  rt.destroyAll();
  return 0;
}

function toMarkdown(r: { date: string; info: Runtime['info']; seconds: number; cpus: number; loadavg: number[]; matvec: { source: string; gbps: Partial<Record<WeightFormat, number>> }; rows: Row[] }): string {
  const i = r.info;
  let s = `# bench/decode results\n\n${r.date} · ${r.seconds.toFixed(0)} s\n\n`;
  s += `Adapter: ${i.vendor} / ${i.architecture} / ${i.device} / ${i.description} (backend ${i.backend}, CPU adapter: ${i.isCpu}; `;
  s += `shader-f16 ${i.features.shaderF16}, subgroups ${i.features.subgroups}). Host: ${r.cpus} CPUs, 1-min load average ${r.loadavg.map((x) => x.toFixed(1)).join(' → ')} (start → end): on a CPU adapter every number scales with the share of the cores this run got.\n\n`;
  s += 'Whole engine steps (GpuStepRunner: forward, lm_head, GPU sampling, one readback), wall clock, after a warm-up step. ';
  s += 'Prefill = one step over the whole prompt. Decode GB/s = bytes of all weight matrices (qkv, o, gate|up, down, lm_head) / time per decoded token. ';
  s += `Matvec baseline: ${r.matvec.source}: ${Object.entries(r.matvec.gbps).map(([f, g]) => `${f} ${g!.toFixed(2)} GB/s`).join(', ')}.\n\n`;
  s += 'Same-moment matvec: one M=1 matmul on the model\'s layer-0 gate|up weight, timed right after its decode loop (the load on a shared CPU drifts, so this is the fairer bound). ';
  s += 'A ratio above 1 means the load dropped between the two measurements.\n\n';
  s += '| model | format | weights MB | load s | prompt | prefill tok/s | decode tokens | ms/token | decode tok/s | weight GB/s | same-moment matvec GB/s | vs it | vs baseline matvec |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n';
  for (const x of r.rows) {
    s += `| ${x.model} | ${x.format} | ${x.weightMB.toFixed(1)} | ${x.loadS.toFixed(1)} | ${x.promptTokens} | ${x.prefillTokS.toFixed(1)} | ${x.decodeTokens} | ${x.decodeMsPerTok.toFixed(1)} | ${x.decodeTokS.toFixed(2)} | ${x.decodeGBs.toFixed(2)} | ${x.matvecGBs.toFixed(2)} | ${x.vsOwnMatvec.toFixed(2)} | ${x.vsMatvec !== null ? x.vsMatvec.toFixed(2) : '–'} |\n`;
  }
  return s;
}

runIfMain(import.meta.url, run);
