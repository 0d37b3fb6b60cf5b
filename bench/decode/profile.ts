// Where a decode step's time goes: one GpuStepRunner decode step (batch of one greedy sequence),
// split into JS-side phases (wall clock, performance.now()) and per-kernel GPU time
// (rt.setProfiling(true): one compute pass per dispatch with timestamps, so the GPU sum there
// includes a pass per dispatch and is an upper bound of what the batched step pays).
//
//   npx tsx bench/decode/profile.ts [--models stories260K,smollm2-135m] [--steps 16]
//
// Modes (same process, interleaved by round so load drift hits both alike):
//   new     the current runtime (bind-group cache, explicit layouts with a dynamic params offset)
//           and forward (fused kernels)
//   (the 'legacy' mode — 'auto' layouts, a bind group per dispatch, unfused rope + kv_write — was
//   compared here against the current path; its numbers stay in results.md and the README, and the
//   switch itself left the runtime and the model in wave 2)
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { join, dirname } from 'node:path';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { LocalDirSource } from '../../engine/model/source.ts';
import { PagedKvCache } from '../../engine/kv/paged-cache.ts';
import { GpuModel } from '../../engine/forward/gpu-model.ts';
import { GpuStepRunner } from '../../engine/forward/runner.ts';
import { writeRandomModel, type PresetName } from '../../tests/helpers/random-model.ts';
import { createEngine } from '../../engine/api/engine.ts';
import type { SampleParams } from '../../shaders/sample/sample.ts';

const here = dirname(fileURLToPath(import.meta.url));
const STORIES = join(here, '../../../shared/models/stories260K');
const GREEDY: SampleParams = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0, step: 0 };

interface Phase {
  dispatchJs: number; // JS time inside rt.dispatch (pipeline lookup, params, bind group, record)
  copyJs: number;
  writeJs: number; // rt.write calls (queue.writeBuffer)
  flushJs: number; // submit (encoder.finish + queue.submit + arena upload)
  readWait: number; // rt.read: from the call to the mapped data (GPU execution + map latency)
  tables: number; // cache.uploadTables (runner)
  step: number; // whole runner.runStep
  dispatches: number;
  submits: number;
}

const zero = (): Phase => ({ dispatchJs: 0, copyJs: 0, writeJs: 0, flushJs: 0, readWait: 0, tables: 0, step: 0, dispatches: 0, submits: 0 });

function instrument(rt: Runtime, cache: PagedKvCache, acc: { cur: Phase }) {
  const wrap = <K extends keyof Phase>(obj: any, name: string, key: K, isAsync = false) => {
    const orig = obj[name].bind(obj);
    obj[name] = isAsync
      ? async (...a: unknown[]) => {
          const t = performance.now();
          try {
            return await orig(...a);
          } finally {
            (acc.cur[key] as number) += performance.now() - t;
          }
        }
      : (...a: unknown[]) => {
          const t = performance.now();
          try {
            return orig(...a);
          } finally {
            (acc.cur[key] as number) += performance.now() - t;
          }
        };
  };
  wrap(rt, 'dispatch', 'dispatchJs');
  wrap(rt, 'copy', 'copyJs');
  wrap(rt, 'write', 'writeJs');
  wrap(rt, 'flush', 'flushJs');
  // rt.read flushes (submits) first: its wait is counted without that submit, which goes to flushJs
  const origRead = rt.read.bind(rt);
  (rt as any).read = async (...a: Parameters<Runtime['read']>) => {
    const t = performance.now();
    const f0 = acc.cur.flushJs;
    try {
      return await origRead(...a);
    } finally {
      acc.cur.readWait += performance.now() - t - (acc.cur.flushJs - f0);
    }
  };
  wrap(cache, 'uploadTables', 'tables');
}

async function profileModel(rt: Runtime, dir: string, name: string, steps: number, modes: string[], log: (s: string) => void) {
  const model = await GpuModel.load(rt, new LocalDirSource(dir));
  const c = model.config;
  const P = 8;
  const cache = PagedKvCache.create(rt, { numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, numBlocks: Math.ceil((P + 2 * steps * modes.length + 16) / 16) + 4, blockSize: 16 });
  const runner = new GpuStepRunner(model, cache);
  const acc = { cur: zero() };
  instrument(rt, cache, acc);
  const prompt = Array.from({ length: P }, (_, i) => (i * 7919 + 13) % c.vocabSize);
  const seqs = new Map<string, { id: number; seq: number[]; next: number }>();
  const out: Record<string, { phases: Phase[]; gpu: Array<{ name: string; ms: number; count: number }>; tokens: number[] }> = {};
  try {
    let id = 1;
    for (const m of modes) {
      cache.allocateOrThrow(id, P);
      const [r] = await runner.runStep({ segments: [{ seqId: id, tokens: prompt, startPos: 0, adapter: null, sample: GREEDY, history: prompt }] });
      seqs.set(m, { id, seq: [...prompt], next: r!.token! });
      out[m] = { phases: [], gpu: [], tokens: [] };
      id++;
    }
    const decodeOne = async (m: string) => {
      const s = seqs.get(m)!;
      s.seq.push(s.next);
      cache.allocateOrThrow(s.id, 1);
      const st0 = rt.stats();
      const t = performance.now();
      const [r] = await runner.runStep({ segments: [{ seqId: s.id, tokens: [s.next], startPos: s.seq.length - 1, adapter: null, sample: GREEDY, history: s.seq }] });
      acc.cur.step += performance.now() - t;
      const st1 = rt.stats();
      acc.cur.dispatches += st1.dispatches - st0.dispatches;
      acc.cur.submits += st1.submits - st0.submits;
      s.next = r!.token!;
      out[m]!.tokens.push(s.next);
    };
    // warm-up decode step per mode (pipelines, pool buckets)
    for (const m of modes) {
      acc.cur = zero();
      await decodeOne(m);
    }
    // timed rounds, interleaved
    for (let i = 0; i < steps; i++) {
      for (const m of modes) {
        acc.cur = zero();
        await decodeOne(m);
        out[m]!.phases.push(acc.cur);
      }
    }
    // profiled steps per mode (interleaved); per kernel the median over them of its per-step total
    const profiled = 5;
    const gpuRuns: Record<string, Array<Array<{ name: string; ms: number; count: number }>>> = Object.fromEntries(modes.map((m) => [m, []]));
    for (let i = 0; i < profiled; i++) {
      for (const m of modes) {
        acc.cur = zero();
        rt.setProfiling(true);
        await rt.profile(true);
        await decodeOne(m);
        gpuRuns[m]!.push(await rt.profile(true));
        rt.setProfiling(false);
      }
    }
    for (const m of modes) {
      const names = [...new Set(gpuRuns[m]!.flatMap((r) => r.map((g) => g.name)))];
      out[m]!.gpu = names
        .map((name) => {
          const per = gpuRuns[m]!.map((r) => r.find((g) => g.name === name) ?? { name, ms: 0, count: 0 });
          const ms = per.map((g) => g.ms).sort((a, b) => a - b)[Math.floor(per.length / 2)]!;
          return { name, ms, count: per[0]!.count };
        })
        .sort((a, b) => b.ms - a.ms);
    }
    // per phase: the median over the timed steps (a shared, loaded host: means are dominated by stalls)
    const median = (xs: number[]) => {
      const a = [...xs].sort((x, y) => x - y);
      return a.length % 2 ? a[(a.length - 1) / 2]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2;
    };
    const rows = modes.map((m) => {
      const ps = out[m]!.phases.map((p) => ({ ...p, other: p.step - p.dispatchJs - p.copyJs - p.writeJs - p.flushJs - p.readWait - p.tables }));
      const keys = Object.keys(ps[0]!) as Array<keyof (typeof ps)[0]>;
      const perStep = Object.fromEntries(keys.map((k) => [k, median(ps.map((p) => p[k]))])) as Record<string, number>;
      perStep.stepMean = ps.reduce((a, p) => a + p.step, 0) / ps.length;
      return { mode: m, perStep, gpu: out[m]!.gpu, tokens: out[m]!.tokens };
    });
    for (const r of rows) {
      const gpuMs = r.gpu.reduce((a, g) => a + g.ms, 0);
      log(`${name} [${r.mode}] ${JSON.stringify(Object.fromEntries(Object.entries(r.perStep).map(([k, v]) => [k, +v.toFixed(3)])))} gpu(profiled) ${gpuMs.toFixed(2)} ms`);
      log('   ' + r.gpu.map((g) => `${g.name}×${g.count} ${g.ms.toFixed(2)}`).join(', '));
    }
    if (modes.length > 1) {
      const same = rows.every((r) => r.tokens.join() === rows[0]!.tokens.join());
      log(`${name}: tokens identical across modes: ${same}; step ratio ${modes[1]}/${modes[0]} = ${(rows[1]!.perStep.step! / rows[0]!.perStep.step!).toFixed(2)}`);
    }
    return { model: name, hidden: c.hiddenSize, layers: c.numLayers, vocab: c.vocabSize, steps, rows };
  } finally {
    cache.destroy();
    model.destroy();
    rt.trimPool();
  }
}

type Res = { engine?: { tokens: number; engineMs: number; runnerMs: number }; date: string; loadavg: number[]; results: Array<{ model: string; steps: number; rows: Array<{ mode: string; perStep: Record<string, number>; gpu: Array<{ name: string; ms: number; count: number }> }> }> };

export const PROFILE_BEGIN = '<!-- profile:begin (bench/decode/profile.ts) -->';
export const PROFILE_END = '<!-- profile:end -->';

function profileMarkdown(r: Res, info: Runtime['info']): string {
  let s = `${PROFILE_BEGIN}\n## Where a decode step's time goes (bench/decode/profile.ts)\n\n`;
  s += `${r.date} · ${info.description} (${info.backend}) · host 1-min load average ${r.loadavg.map((x) => x.toFixed(1)).join(' → ')}. `;
  s += 'One greedy sequence, GpuStepRunner decode steps; modes interleaved step by step in one process (same load). ';
  s += '`legacy` = rt.setLegacy(true) (auto layouts, a new bind group per dispatch) + model.fusedKernels = false (separate rope and kv_write, positions copy, ids copied behind the logits). ';
  s += 'JS phases are wall-clock ms per step, median over the timed steps (mean of the whole step in brackets): dispatch = recording (pipeline lookup, params, bind group, pass commands); flush = encoder.finish + queue.submit; ';
  s += 'read wait = rt.read from call to mapped data minus its submit (waits for the GPU work of the step); tables = KV block tables upload; other = the rest of runStep (forward bookkeeping, runner). ';
  s += 'GPU = per-kernel timestamps, median over 5 profiled steps per mode of the kernel’s per-step total (profile mode ends the compute pass after every dispatch).\n\n';
  s += '| model | mode | steps | ms/step | dispatch JS | flush JS | read wait | tables | copy+write | other | dispatches | submits | step ratio legacy/new |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n';
  for (const m of r.results) {
    const byMode = Object.fromEntries(m.rows.map((x) => [x.mode, x.perStep]));
    const ratio = byMode.legacy && byMode.new ? (byMode.legacy.step! / byMode.new.step!).toFixed(2) : '–';
    for (const x of m.rows) {
      const p = x.perStep;
      s += `| ${m.model} | ${x.mode} | ${m.steps} | ${p.step!.toFixed(2)} (${p.stepMean!.toFixed(2)}) | ${p.dispatchJs!.toFixed(2)} | ${p.flushJs!.toFixed(2)} | ${p.readWait!.toFixed(2)} | ${p.tables!.toFixed(2)} | ${(p.copyJs! + p.writeJs!).toFixed(2)} | ${p.other!.toFixed(2)} | ${p.dispatches!.toFixed(0)} | ${p.submits!.toFixed(0)} | ${x.mode === 'new' ? ratio : ''} |\n`;
    }
  }
  s += '\nGPU time per kernel and decode step (ms, ×dispatches per step; median of 5 profiled steps):\n\n';
  for (const m of r.results) {
    for (const x of m.rows) {
      const tot = x.gpu.reduce((a, g) => a + g.ms, 0);
      s += `- ${m.model} [${x.mode}] total ${tot.toFixed(2)} ms: ${x.gpu.map((g) => `${g.name} ×${g.count} ${g.ms.toFixed(2)}`).join(', ')}\n`;
    }
  }
  if (r.engine) {
    const e = r.engine;
    s += `\nWhole engine (scheduler + runner + detokenizer + async iteration), stories260K greedy via engine.generate, interval between yielded tokens: `;
    s += `${e.engineMs.toFixed(2)} ms/token vs ${e.runnerMs.toFixed(2)} ms per runner-only decode step (medians over ${e.tokens} tokens, same process, alternating runs): `;
    s += `engine-side overhead ≈ ${(e.engineMs - e.runnerMs).toFixed(2)} ms/token.\n`;
  }
  return s + PROFILE_END + '\n';
}

/** Replaces (or appends) the profile section of results.md; run.ts keeps it when it rewrites the file. */
function writeProfileSection(file: string, section: string): void {
  const cur = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const a = cur.indexOf(PROFILE_BEGIN);
  const b = cur.indexOf(PROFILE_END);
  const next = a >= 0 && b > a ? cur.slice(0, a) + section + cur.slice(b + PROFILE_END.length + 1) : cur + (cur.endsWith('\n') || !cur ? '' : '\n') + '\n' + section;
  writeFileSync(file, next);
}

/**
 * Whole-engine decode (scheduler + runner + detokenizer + async iteration): stories260K greedy
 * through engine.generate, the interval between yielded tokens (median), next to runner-only
 * decode steps on the same runtime, interleaved in rounds.
 */
async function engineOverhead(rt: Runtime, tokens: number, rounds: number) {
  const engine = await createEngine({ model: STORIES, device: rt, kvBlocks: 64 });
  const model = engine.model;
  const c = model.config;
  const cache = PagedKvCache.create(rt, { numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, numBlocks: 16, blockSize: 16 });
  const runner = new GpuStepRunner(model, cache);
  const engineMs: number[] = [];
  const runnerMs: number[] = [];
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  try {
    for (let r = 0; r < rounds; r++) {
      let t = performance.now();
      let n = 0;
      for await (const _ of engine.generate({ prompt_ids: [1, 403, 407, 261, 378] }, { max_tokens: tokens, temperature: 0 })) {
        const now = performance.now();
        if (n++ > 0) engineMs.push(now - t); // skip the first token (prefill step)
        t = now;
      }
      const seq = [1, 403, 407, 261, 378];
      cache.allocateOrThrow(r + 1, seq.length);
      let [x] = await runner.runStep({ segments: [{ seqId: r + 1, tokens: seq, startPos: 0, adapter: null, sample: GREEDY, history: seq }] });
      for (let i = 1; i < n; i++) {
        seq.push(x!.token!);
        cache.allocateOrThrow(r + 1, 1);
        const t0 = performance.now();
        [x] = await runner.runStep({ segments: [{ seqId: r + 1, tokens: [x!.token!], startPos: seq.length - 1, adapter: null, sample: GREEDY, history: seq }] });
        runnerMs.push(performance.now() - t0);
      }
      cache.free(r + 1);
    }
  } finally {
    cache.destroy();
    await engine.destroy();
  }
  return { tokens: engineMs.length, engineMs: median(engineMs), runnerMs: median(runnerMs) };
}

const PRESETS: Record<string, PresetName | null> = { stories260K: null, 'smollm2-135m': 'smollm2-135m' };

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      models: { type: 'string', default: 'stories260K,smollm2-135m' },
      steps: { type: 'string', default: '16' },
      modes: { type: 'string', default: 'new' },
      'cache-dir': { type: 'string', default: join(tmpdir(), 'lorafleet-bench-models') },
      out: { type: 'string', default: '' },
      'no-write': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const rt = await Runtime.create();
  const l0 = loadavg()[0]!;
  const results = [];
  for (const n of values.models!.split(',')) {
    if (!(n in PRESETS)) throw new Error(`unknown model ${n}`);
    const preset = PRESETS[n]!;
    let dir = STORIES;
    if (preset) {
      dir = join(values['cache-dir']!, preset);
      if (!existsSync(join(dir, '.complete'))) {
        await writeRandomModel(dir, preset, { seed: 1 });
        writeFileSync(join(dir, '.complete'), '');
      }
    }
    const steps = n === 'stories260K' ? Number(values.steps) : Math.max(2, Math.ceil(Number(values.steps) / 4));
    results.push(await profileModel(rt, dir, n, steps, values.modes!.split(','), console.log));
  }
  let engine: Res['engine'];
  if (values.models!.split(',').includes('stories260K')) {
    engine = await engineOverhead(rt, 40, 3);
    console.log(`engine.generate stories260K: ${engine.engineMs.toFixed(2)} ms/token vs runner step ${engine.runnerMs.toFixed(2)} ms (medians over ${engine.tokens} tokens)`);
  }
  const res: Res = { date: new Date().toISOString(), loadavg: [l0, loadavg()[0]!], results, engine };
  console.log(`load average ${res.loadavg.map((x) => x.toFixed(1)).join(' → ')}`);
  if (values.out) writeFileSync(values.out, JSON.stringify(res, null, 2) + '\n');
  if (!values['no-write']) {
    writeFileSync(join(here, 'profile.json'), JSON.stringify(res, null, 2) + '\n');
    writeProfileSection(join(here, 'results.md'), profileMarkdown(res, rt.info));
  }
  rt.destroyAll();
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  run(process.argv.slice(2)).then((c) => process.exit(c));
}
