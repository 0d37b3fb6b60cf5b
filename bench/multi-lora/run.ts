// Multi-LoRA bench: heterogeneous batching vs the base model and vs merge-and-swap serving,
// measured in one run on the same engine (GpuModel + paged KV + GpuStepRunner + MultiLoraRuntime),
// on stories260K and on a random-weight SmolLM2-135M-shaped model, with rank-16 adapters on all
// seven projections. Method and findings: bench/multi-lora/README.md.
//
//   lorafleet bench multi-lora [--json] [--quick] [--models stories260K,smollm2-135m] [--steps N]
//                              [--rounds N] [--cache-dir DIR] [--no-write]
//
// Every configuration runs once per round, rounds interleave them (the order rotates from round to
// round), and each ratio is formed inside a round (numerator and denominator measured minutes
// apart at most) and reported as the median over rounds with its min..max spread. The host load
// average is recorded per round. --quick (fewer steps and rounds) prints the same keys.
//
// Keys (per model; the top-level copies are those of the last model, SmolLM2-135M by default):
//   hetero_vs_base      decode tok/s, 32 concurrent requests over 8 distinct adapters ÷ the same 32 on the base model
//   hetero_vs_base_gpu  the same from GPU time (timestamp queries: Σ kernel time of a base step ÷ a heterogeneous step)
//   batch_scaling       aggregate decode tok/s at 32 concurrent (8 adapters) ÷ 1 request (1 adapter)
//   vs_merge_swap       our heterogeneous decode tok/s ÷ serving the same requests adapter by adapter with the
//                       weights merged on the GPU (W + s·B·A, lora_merge kernel) and swapped between the 8 groups
//                       (restore the base weights by GPU copy, merge the next adapter); swap time counted
//   hot_switch_ms       what a step pays when its adapter mix changed: the multi-LoRA plan of the step (pins,
//                       residency lookups, work lists, upload), timed directly (a duration: ≥ 0 by construction);
//                       with every adapter resident nothing else in a step depends on the mix
//   hot_switch_e2e_ratio  end-to-end check of the above from paired rounds: step time with the mix changing every
//                       step ÷ with the fixed mix, the two runs back to back in every round (a ratio of two durations:
//                       > 0 by construction; 1 = switching costs nothing measurable). The earlier difference of the two
//                       (ms) came out negative within the noise, so it is no longer reported as a time
//   adapter_scaling     (stories260K) 1 / 8 / 32 / 128 distinct rank-16 adapters resident, 32 requests
//                       drawing from all of them (S-LoRA style): tok/s and ÷ base
//   rank_scaling        (stories260K) 8 adapters of rank 1 / 16 / 64 and of mixed ranks 1..64 in one step
//   cold_load_ms        a new rank-16 adapter from a PEFT directory on disk: parse + validate + upload to the GPU tier
//   cpu_tier_load_ms    the same adapter again after eviction, from the CPU tier (upload only)
// Timing runs reuse one prefilled KV cache (truncated back to the prompt before each run): the KV
// contents do not match the adapter of a timing run, which does not change the work done. Correctness
// of every path is tested elsewhere (engine/lora/multi-lora.test.ts).
// Writes bench/multi-lora/results.json and results.md.
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { LocalDirSource } from '../../engine/model/source.ts';
import { PagedKvCache } from '../../engine/kv/paged-cache.ts';
import { GpuModel } from '../../engine/forward/gpu-model.ts';
import { GpuStepRunner } from '../../engine/forward/runner.ts';
import type { PresetName } from '../../tests/helpers/random-model.ts';
import { benchModelDir, adapterLine, runIfMain } from '../common.ts';
import type { SampleParams } from '../../shaders/sample/sample.ts';
import type { StepSegment } from '../../engine/scheduler/types.ts';
import { createLoraSupport, type LoraSupport } from '../../engine/lora/index.ts';
import { AdapterPool } from '../../engine/lora/pool.ts';
import { adapterSpec, savePeftAdapter } from '../../engine/lora/peft.ts';
import { LORA_MODULES, type LoraModule, type LoraRuntime } from '../../engine/lora/hook.ts';
import { loraMerge } from '../../shaders/lora/lora.ts';
import type { GpuWeight } from '../../shaders/matmul/weights.ts';
import { randomLoraAdapter } from '../../tests/helpers/random-lora.ts';

const here = dirname(fileURLToPath(import.meta.url));
const STORIES = join(here, '../../../shared/models/stories260K');
const GREEDY: SampleParams = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0, step: 0 };

interface Spec {
  name: string;
  preset: PresetName | null;
  prompt: number;
  steps: number;
  rounds: number;
  quickSteps: number;
  quickRounds: number;
  /** Merge-and-swap groups measured per round (the 8 groups have identical shapes; the rest is scaled). */
  swapGroups: number;
  /** Adapter-count and rank scaling (needs ~1 MB of adapter pages per rank row on SmolLM2: stories only). */
  scaling: boolean;
}
const SPECS: Record<string, Spec> = {
  stories260K: { name: 'stories260K', preset: null, prompt: 8, steps: 12, rounds: 9, quickSteps: 6, quickRounds: 5, swapGroups: 8, scaling: true },
  // a 32-row step of this model takes seconds on SwiftShader with 2 cores, a merge tens of seconds
  'smollm2-135m': { name: 'smollm2-135m (random weights)', preset: 'smollm2-135m', prompt: 4, steps: 2, rounds: 3, quickSteps: 1, quickRounds: 1, swapGroups: 1, scaling: false },
};

const N_REQ = 32;
const N_ADAPTERS = 8;
const RANK = 16;
const COUNT_SCALING = [1, 8, 32, 128];
const RANK_SCALING: Array<{ label: string; ranks: number[] }> = [
  { label: '1', ranks: [1, 1, 1, 1, 1, 1, 1, 1] },
  { label: '16', ranks: [16, 16, 16, 16, 16, 16, 16, 16] },
  { label: '64', ranks: [64, 64, 64, 64, 64, 64, 64, 64] },
  { label: 'mixed 1-64', ranks: [1, 2, 4, 8, 16, 32, 64, 3] },
];

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}
export function stat(a: number[]): Stat {
  const s = a.filter((v) => Number.isFinite(v)).sort((x, y) => x - y);
  if (!s.length) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = s.length >> 1;
  return { median: s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

export interface ModelResult {
  model: string;
  /** When this row was measured, and whether with --quick (rows of models not rerun are kept from the last results.json). */
  date: string;
  quick: boolean;
  /** which LoRA path was measured: shrinks as matmul tails (the default) or separate shrink + expand dispatches (--separate) */
  lora_path?: 'fused' | 'separate';
  requests: number;
  adapters: number;
  rank: number;
  decode_steps: number;
  rounds: number;
  load_avg_1m: Stat;
  base32_tok_s: Stat;
  hetero32_tok_s: Stat;
  single1_tok_s: Stat;
  base1_tok_s: Stat;
  merge_swap_tok_s: Stat;
  merge_swap_ms_per_swap: Stat;
  hetero_vs_base: Stat;
  hetero_vs_base_gpu: Stat;
  /** Share of a heterogeneous step's GPU time spent in the LoRA kernels (timestamp queries). */
  lora_gpu_share: Stat;
  batch_scaling: Stat;
  base_batch_scaling: Stat;
  vs_merge_swap: Stat;
  hot_switch_ms: Stat;
  hot_switch_e2e_ratio: Stat;
  /** base, 8 adapters × 4 rows, and a step with both 4-row tiles and singleton adapters (+ base rows). */
  dispatches_per_step: { base: number; hetero: number; mixed: number };
  adapter_scaling: Array<{ adapters: number; tok_s: Stat; vs_base: Stat }>;
  rank_scaling: Array<{ ranks: string; tok_s: Stat; vs_base: Stat }>;
  cold_load_ms: number;
  cpu_tier_load_ms: number;
}

/** A LoraRuntime wrapper that times planStep (what a change of the adapter mix costs a step). */
function timedLora(inner: LoraRuntime, planMs: number[]): LoraRuntime {
  return {
    planStep: async (t) => {
      const t0 = performance.now();
      const p = await inner.planStep(t);
      planMs.push(performance.now() - t0);
      return p;
    },
    apply: (...a) => inner.apply(...a),
    applyGroup: (...a) => inner.applyGroup(...a),
    fused: inner.fused ? (p) => inner.fused!(p) : undefined,
    endStep: (p) => inner.endStep(p),
  };
}

async function benchModel(rt: Runtime, dir: string, spec: Spec, steps: number, rounds: number, quick: boolean, log: (s: string) => void, separate = false): Promise<ModelResult> {
  let tl = performance.now();
  const model = await GpuModel.load(rt, new LocalDirSource(dir), { weightFormat: 'f32' });
  const c = model.config;
  log(`  model loaded in ${((performance.now() - tl) / 1000).toFixed(1)} s`);
  const P = spec.prompt;
  const perPage = AdapterPool.bytesPerPage(c);
  // Adapters: 8 rank-16 (the main heterogeneous mix); with scaling, 128 rank-16 in all and 8 of each rank-scaling set.
  const mainNames = Array.from({ length: spec.scaling ? Math.max(...COUNT_SCALING) : N_ADAPTERS }, (_, a) => `ad${a}`);
  const rankSets = spec.scaling ? RANK_SCALING.map((s, i) => ({ ...s, names: s.ranks.map((_, j) => `rk${i}_${j}`) })) : [];
  const maxRank = spec.scaling ? 64 : RANK;
  const pages = mainNames.length * RANK + rankSets.reduce((n, s) => n + s.ranks.reduce((a, b) => a + b, 0), 0) + RANK + 1;
  const lora: LoraSupport = await createLoraSupport(rt, c, { maxRank, gpuBudgetBytes: pages * perPage + 64, maxSlots: mainNames.length + 8 * rankSets.length + 2, fused: !separate });
  const planMs: number[] = [];
  model.attachLora(timedLora(lora.runtime, planMs));
  tl = performance.now();
  for (let a = 0; a < mainNames.length; a++) {
    const ad = randomLoraAdapter(c, { name: mainNames[a]!, r: RANK, seed: 1000 + a, std: 0.02 });
    await lora.pool.register(ad.name, ad);
    await lora.pool.acquire(ad.name); // hot
  }
  for (const [i, s] of rankSets.entries()) {
    for (const [j, r] of s.ranks.entries()) {
      const ad = randomLoraAdapter(c, { name: s.names[j]!, r, seed: 5000 + 100 * i + j, std: 0.02 });
      await lora.pool.register(ad.name, ad);
      await lora.pool.acquire(ad.name);
    }
  }
  const names = mainNames.slice(0, N_ADAPTERS);
  const blocksPerSeq = Math.ceil((P + steps + 4) / 16) + 1;
  const cache = PagedKvCache.create(rt, { numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, numBlocks: N_REQ * blocksPerSeq + 4, blockSize: 16 });
  const runner = new GpuStepRunner(model, cache);
  const tmp = await mkdtemp(join(tmpdir(), 'mlora-bench-'));
  try {
    // Prefill 32 sequences once (untimed); every timing run truncates back to P tokens.
    const prompts = Array.from({ length: N_REQ }, (_, i) => Array.from({ length: P }, (_, j) => (1 + i * 131 + j * 7919) % c.vocabSize));
    const last: number[] = [];
    for (let i = 0; i < N_REQ; i += 8) {
      const segs: StepSegment[] = [];
      for (let s = i; s < Math.min(N_REQ, i + 8); s++) {
        cache.allocateOrThrow(s, P);
        segs.push({ seqId: s, tokens: prompts[s]!, startPos: 0, adapter: null, sample: GREEDY, history: prompts[s]! });
      }
      for (const r of await runner.runStep({ segments: segs })) last[r.seqId] = r.token!;
    }
    log(`  ${mainNames.length + rankSets.length * 8} adapters resident; prefilled ${N_REQ}×${P} tokens in ${((performance.now() - tl) / 1000).toFixed(1)} s (incl. adapters)`);

    const warmed = new Set<string>();
    /** Decodes `nSteps` steps of requests `ids` (adapter per (request, step)); returns ms of the timed steps. The first run of a `key` is preceded by an untimed warm-up step (pipelines, pooled buffers). */
    const decode = async (key: string, ids: number[], adapterOf: (id: number, step: number) => string | null, nSteps = steps): Promise<number> => {
      for (const id of ids) cache.truncate(id, P);
      const tok = ids.map((id) => last[id]!);
      let pos = 0;
      const stepOnce = async (k: number) => {
        const segs: StepSegment[] = ids.map((id, i) => {
          cache.allocateOrThrow(id, 1);
          return { seqId: id, tokens: [tok[i]!], startPos: P + pos, adapter: adapterOf(id, k), sample: GREEDY, history: [tok[i]!] };
        });
        pos++;
        const res = await runner.runStep({ segments: segs });
        res.forEach((r, i) => (tok[i] = r.token!));
      };
      if (!warmed.has(key)) {
        await stepOnce(0);
        warmed.add(key);
      }
      const t = performance.now();
      for (let k = 1; k <= nSteps; k++) await stepOnce(k);
      return performance.now() - t;
    };
    const all = Array.from({ length: N_REQ }, (_, i) => i);
    const tokS = (n: number, ms: number) => ((n * steps) / ms) * 1000;

    // Merge-and-swap: one group = swap (restore base weights by GPU copy, merge the group's adapter), then decode its 4 requests.
    const layersW = model.layers.map((L) => ({ qkv: L.qkv, o: L.o, gateUp: L.gateUp, down: L.down }));
    const backups = new Map<GPUBuffer, GPUBuffer>();
    for (const L of layersW) for (const w of Object.values(L) as GpuWeight[]) for (const p of w.parts) {
      const b = rt.createBuffer(p.data.size, 'bench-backup');
      rt.copy(p.data, 0, b, 0, p.data.size);
      backups.set(p.data, b);
    }
    const Q = c.numHeads * c.headDim, KV = c.numKvHeads * c.headDim, I = c.intermediateSize;
    const where: Record<LoraModule, [keyof (typeof layersW)[number], number]> = {
      q_proj: ['qkv', 0], k_proj: ['qkv', Q], v_proj: ['qkv', Q + KV], o_proj: ['o', 0], gate_proj: ['gateUp', 0], up_proj: ['gateUp', I], down_proj: ['down', 0],
    };
    const swapTo = async (name: string | null) => {
      for (const [src, dst] of backups) rt.copy(dst, 0, src, 0, src.size); // restore base
      if (name) {
        const r = await lora.pool.acquire(name);
        const info = lora.pool.residentInfo(name)!;
        for (let l = 0; l < c.numLayers; l++) {
          for (const m of LORA_MODULES) {
            if (!(info.masks[l]! & (1 << LORA_MODULES.indexOf(m)))) continue;
            const [wk, rowOff] = where[m];
            const w = layersW[l]![wk];
            const { bank, index } = lora.pool.bankOf(l, m);
            for (const p of w.parts) {
              loraMerge(rt, { W: p.data, partRowStart: p.rowStart, partRows: p.rows, bank, module: index, tables: lora.pool.tables, slot: r.slot, rank: r.rank, scale: lora.pool.scalingOf(name), rowOff });
            }
          }
        }
      }
      await rt.sync();
    };
    await swapTo(names[0]!); // warm-up: merge pipeline
    await swapTo(null);

    // ---- the configurations of a round
    type Cfg = { key: string; run: (round: number) => Promise<number> };
    const t: Record<string, number[]> = {};
    const rec = (k: string, v: number) => (t[k] ??= []).push(v);
    const swapMsR: number[] = [];
    const cfgs: Cfg[] = [
      // base and hetero back to back (base, hetero, rotating mix in even rounds; rotating, hetero, base in
      // odd ones): hetero is adjacent to both halves of its pairs, base (hetero_vs_base) and the mix changing
      // every step (hot_switch_e2e_ratio)
      {
        key: 'pair',
        run: async (round) => {
          const b = async () => rec('base32', await decode('base32', all, () => null));
          const h = () => decode('hetero32', all, (id) => names[id % N_ADAPTERS]!);
          const rot = async () => {
            const n0 = planMs.length;
            const tr = await decode('rot32', all, (id, k) => names[(id + k) % N_ADAPTERS]!);
            rec('plan_rot', stat(planMs.slice(n0)).median);
            rec('rot32', tr);
          };
          let th: number;
          if (round % 2) {
            await rot();
            th = await h();
            await b();
          } else {
            await b();
            th = await h();
            await rot();
          }
          return th;
        },
      },
      { key: 'single1', run: () => decode('single1', [0], () => names[0]!) },
      { key: 'base1', run: () => decode('base1', [0], () => null) },
      {
        key: 'merge_swap',
        run: async (round) => {
          let sw = 0, de = 0;
          for (let i = 0; i < spec.swapGroups; i++) {
            const g = (round * spec.swapGroups + i) % N_ADAPTERS;
            const t0 = performance.now();
            await swapTo(names[g]!);
            sw += performance.now() - t0;
            de += await decode('merged', all.filter((id) => id % N_ADAPTERS === g), () => null);
          }
          await swapTo(null);
          swapMsR.push(sw / spec.swapGroups);
          return ((sw + de) * N_ADAPTERS) / spec.swapGroups; // the 8 groups
        },
      },
    ];
    if (spec.scaling) {
      for (const n of COUNT_SCALING) {
        if (n === N_ADAPTERS) continue; // = hetero32
        cfgs.push({ key: `count${n}`, run: () => decode(`count${n}`, all, (id, k) => mainNames[(id + N_REQ * k) % n]!) });
      }
      for (const [i, s] of rankSets.entries()) {
        if (s.label === String(RANK)) continue; // = hetero32
        cfgs.push({ key: `rank${i}`, run: () => decode(`rank${i}`, all, (id) => s.names[id % s.names.length]!) });
      }
    }
    const loads: number[] = [];
    for (let round = 0; round < rounds; round++) {
      loads.push(loadavg()[0]!);
      const tr = performance.now();
      for (let j = 0; j < cfgs.length; j++) {
        const cfg = cfgs[(j + round) % cfgs.length]!; // rotate the order
        const v = await cfg.run(round);
        rec(cfg.key === 'pair' ? 'hetero32' : cfg.key, v);
      }
      log(`  round ${round + 1}/${rounds}: ${((performance.now() - tr) / 1000).toFixed(1)} s, load ${loads[round]!.toFixed(1)}; base ${tokS(N_REQ, t.base32!.at(-1)!).toFixed(1)} tok/s, hetero ${tokS(N_REQ, t.hetero32!.at(-1)!).toFixed(1)} tok/s`);
    }
    const per = (f: (r: number) => number) => stat(Array.from({ length: rounds }, (_, r) => f(r)));
    const ms = (k: string, r: number) => t[k]![r]!;
    const base32 = per((r) => tokS(N_REQ, ms('base32', r)));
    const hetero32 = per((r) => tokS(N_REQ, ms('hetero32', r)));
    const single1 = per((r) => tokS(1, ms('single1', r)));
    const base1 = per((r) => tokS(1, ms('base1', r)));
    const mergeSwap = per((r) => tokS(N_REQ, ms('merge_swap', r)));
    const heteroVsBase = per((r) => ms('base32', r) / ms('hetero32', r));
    const batchScaling = per((r) => (N_REQ * ms('single1', r)) / ms('hetero32', r));
    const baseBatchScaling = per((r) => (N_REQ * ms('base1', r)) / ms('base32', r));
    const vsMerge = per((r) => ms('merge_swap', r) / ms('hetero32', r));
    const hotE2e = per((r) => ms('rot32', r) / ms('hetero32', r));
    const hot = stat(t.plan_rot!);
    const f = (s: Stat, d = 2) => `${s.median.toFixed(d)} [${s.min.toFixed(d)}..${s.max.toFixed(d)}]`;
    log(`  (median [min..max] over ${rounds} rounds)`);
    log(`  base, 32 requests:                       ${f(base32)} tok/s`);
    log(`  8 adapters, 32 requests (heterogeneous): ${f(hetero32)} tok/s   hetero_vs_base ${f(heteroVsBase, 3)}`);
    log(`  1 request: adapter ${f(single1)} tok/s, base ${f(base1)} tok/s   batch_scaling ${f(batchScaling)}`);
    log(`  merge-and-swap, 8 groups of 4:           ${f(mergeSwap)} tok/s (swap ${f(stat(swapMsR), 1)} ms each)   vs_merge_swap ${f(vsMerge)}`);
    log(`  hot switch: plan of a changed mix ${f(hot, 3)} ms/step; paired e2e (changing ÷ fixed mix) ${f(hotE2e, 3)}`);

    const adapterScaling = spec.scaling
      ? COUNT_SCALING.map((n) => {
          const k = n === N_ADAPTERS ? 'hetero32' : `count${n}`;
          return { adapters: n, tok_s: per((r) => tokS(N_REQ, ms(k, r))), vs_base: per((r) => ms('base32', r) / ms(k, r)) };
        })
      : [];
    const rankScaling = rankSets.map((s, i) => {
      const k = s.label === String(RANK) ? 'hetero32' : `rank${i}`;
      return { ranks: s.label, tok_s: per((r) => tokS(N_REQ, ms(k, r))), vs_base: per((r) => ms('base32', r) / ms(k, r)) };
    });
    for (const a of adapterScaling) log(`  ${String(a.adapters).padStart(3)} distinct adapters: ${f(a.tok_s)} tok/s, ÷ base ${f(a.vs_base, 3)}`);
    for (const a of rankScaling) log(`  8 adapters of rank ${a.ranks.padEnd(10)}: ${f(a.tok_s)} tok/s, ÷ base ${f(a.vs_base, 3)}`);

    // GPU time per kernel (timestamp queries) of one base and one heterogeneous 32-request step, per
    // profiled round: less sensitive to other processes than wall clock.
    const gpuRatio: number[] = [], share: number[] = [];
    const dispatches = { base: NaN, hetero: NaN, mixed: NaN };
    const countDispatches = async (k: 'base' | 'hetero' | 'mixed', adapterOf: (id: number) => string | null) => {
      if (!warmed.has(`${k}32`)) await decode(`${k}32`, all, adapterOf, 0); // the warm-up step only
      const d0 = rt.stats().dispatches;
      await decode(`${k}32`, all, adapterOf, 1);
      dispatches[k] = rt.stats().dispatches - d0;
    };
    await countDispatches('base', () => null);
    await countDispatches('hetero', (id) => names[id % N_ADAPTERS]!);
    // tiles and singletons in one step: rows 0..15 over 4 adapters, 16..19 one adapter each, the rest base
    await countDispatches('mixed', (id) => (id < 16 ? names[id % 4]! : id < 20 ? names[4 + id - 16]! : null));
    if (rt.setProfiling(true)) {
      const profRounds = Math.max(1, Math.min(4, rounds));
      for (let r = 0; r < profRounds; r++) {
        const sum = (p: Array<{ name: string; ms: number }>) => p.reduce((a, x) => a + x.ms, 0);
        const prof = async (k: 'base' | 'hetero') => {
          await rt.profile(true);
          await decode(k === 'base' ? 'base32' : 'hetero32', all, (id) => (k === 'base' ? null : names[id % N_ADAPTERS]!), 2);
          return rt.profile(true);
        };
        let pb, ph;
        if (r % 2) {
          ph = await prof('hetero');
          pb = await prof('base');
        } else {
          pb = await prof('base');
          ph = await prof('hetero');
        }
        gpuRatio.push(sum(pb) / sum(ph));
        share.push(ph.filter((x) => x.name.startsWith('lora_')).reduce((a, x) => a + x.ms, 0) / sum(ph));
      }
      rt.setProfiling(false);
    }
    const gpu = stat(gpuRatio), loraShare = stat(share);
    log(`  GPU time (timestamps, ${gpu.n} profiled pairs): base ÷ hetero ${f(gpu, 3)}; LoRA kernels ${f(stat(share.map((x) => 100 * x)), 1)} % of a heterogeneous step; dispatches/step base ${dispatches.base}, hetero ${dispatches.hetero}, tiles + singletons ${dispatches.mixed}`);

    for (const b of backups.values()) rt.destroy(b);

    // Cold load: PEFT directory → parse/validate → GPU (evicting the LRU adapter); then CPU-tier reload.
    const cold = randomLoraAdapter(c, { name: 'cold', r: RANK, seed: 77, std: 0.02 });
    await savePeftAdapter(join(tmp, 'cold'), adapterSpec(cold));
    await rt.sync();
    let t0 = performance.now();
    await lora.pool.register('cold', join(tmp, 'cold'));
    await lora.pool.acquire('cold');
    await rt.sync();
    const coldMs = performance.now() - t0;
    const evicted = lora.pool.evict('cold');
    await rt.sync();
    t0 = performance.now();
    await lora.pool.acquire('cold');
    await rt.sync();
    const cpuMs = performance.now() - t0;
    log(`  cold load (disk → GPU): ${coldMs.toFixed(1)} ms; CPU tier → GPU: ${cpuMs.toFixed(1)} ms${evicted ? '' : ' (warning: was still resident)'}`);

    return {
      model: spec.name,
      date: new Date().toISOString(),
      quick,
      lora_path: separate ? 'separate' : 'fused',
      requests: N_REQ,
      adapters: N_ADAPTERS,
      rank: RANK,
      decode_steps: steps,
      rounds,
      load_avg_1m: stat(loads),
      base32_tok_s: base32,
      hetero32_tok_s: hetero32,
      single1_tok_s: single1,
      base1_tok_s: base1,
      merge_swap_tok_s: mergeSwap,
      merge_swap_ms_per_swap: stat(swapMsR),
      hetero_vs_base: heteroVsBase,
      hetero_vs_base_gpu: gpu,
      lora_gpu_share: loraShare,
      batch_scaling: batchScaling,
      base_batch_scaling: baseBatchScaling,
      vs_merge_swap: vsMerge,
      hot_switch_ms: hot,
      hot_switch_e2e_ratio: hotE2e,
      dispatches_per_step: dispatches,
      adapter_scaling: adapterScaling,
      rank_scaling: rankScaling,
      cold_load_ms: coldMs,
      cpu_tier_load_ms: cpuMs,
    };
  } finally {
    model.attachLora(null);
    lora.destroy();
    cache.destroy();
    model.destroy();
    rt.trimPool();
    await rm(tmp, { recursive: true, force: true });
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      models: { type: 'string', default: Object.keys(SPECS).join(',') },
      steps: { type: 'string' },
      rounds: { type: 'string' },
      'cache-dir': { type: 'string', default: join(tmpdir(), 'lorafleet-bench-models') },
      'no-write': { type: 'boolean', default: false },
      /** the separate shrink + expand dispatches instead of shrinks as matmul tails (A/B of the fused path) */
      separate: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
    strict: true,
  });
  const log = (s: string) => {
    if (!values.json) console.log(s);
  };
  const names = values.models!.split(',');
  for (const n of names) if (!SPECS[n]) throw new Error(`--models: unknown model '${n}' (have ${Object.keys(SPECS).join(', ')})`);
  const posInt = (v: string | undefined, flag: string) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: expected a positive integer, got '${v}'`);
    return n;
  };
  const stepsArg = posInt(values.steps, '--steps');
  const roundsArg = posInt(values.rounds, '--rounds');
  const rt = await Runtime.create();
  const t0 = performance.now();
  const info = rt.info;
  log(adapterLine(rt));
  const load0 = loadavg();
  log(`host: ${cpus().length} CPUs, load average ${load0.map((x) => x.toFixed(2)).join(' ')}${values.quick ? ' · --quick' : ''}`);
  const rows: ModelResult[] = [];
  for (const n of names) {
    const spec = SPECS[n]!;
    const dir = await benchModelDir(spec.preset, STORIES, values['cache-dir']!, log);
    const steps = stepsArg ?? (values.quick ? spec.quickSteps : spec.steps);
    const rounds = roundsArg ?? (values.quick ? spec.quickRounds : spec.rounds);
    log(`${spec.name}: ${N_REQ} requests, ${N_ADAPTERS} rank-${RANK} adapters on q/k/v/o/gate/up/down, ${steps} timed decode steps, ${rounds} rounds`);
    rows.push(await benchModel(rt, dir, spec, steps, rounds, values.quick!, log, values.separate!));
  }
  const seconds = (performance.now() - t0) / 1000;
  const outDir = values.out ?? here;
  // --separate measures the other LoRA path: its own files, so the default path's results are not overwritten
  const stem = values.separate ? 'results-separate' : 'results';
  let models = rows;
  if (!values['no-write']) {
    // Keep the rows of models this run did not measure (each row carries its own date).
    try {
      const old = JSON.parse(readFileSync(join(outDir, `${stem}.json`), 'utf8')) as { models?: ModelResult[] };
      const kept = (old.models ?? []).filter((m) => m.date && m.hetero_vs_base?.median !== undefined && !rows.some((r) => r.model === m.model));
      const order = (m: ModelResult) => Object.values(SPECS).findIndex((s) => s.name === m.model);
      models = [...rows, ...kept].sort((a, b) => order(a) - order(b));
    } catch {
      /* no previous results */
    }
  }
  const lastRow = models[models.length - 1]!;
  const keys = ['hetero_vs_base', 'hetero_vs_base_gpu', 'batch_scaling', 'vs_merge_swap', 'hot_switch_ms', 'hot_switch_e2e_ratio', 'cold_load_ms', 'cpu_tier_load_ms'] as const;
  const top = Object.fromEntries(keys.map((k) => {
    const v = lastRow[k] as Stat | number | undefined; // rows kept from older results may lack newer keys
    return [k, typeof v === 'number' ? v : (v?.median ?? null)];
  }));
  const result = {
    ...top,
    top_level_model: lastRow.model,
    date: new Date().toISOString(),
    seconds,
    quick: values.quick!,
    host: { cpus: cpus().length, load_avg_start: load0, load_avg_end: loadavg() },
    device: info,
    models,
  };
  if (!values['no-write']) {
    writeFileSync(join(outDir, `${stem}.json`), JSON.stringify(result, null, 2) + '\n');
    writeFileSync(join(outDir, `${stem}.md`), toMarkdown(result));
  }
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else log(`done in ${seconds.toFixed(1)} s`);
  rt.destroyAll();
  return 0;
}

type Result = { date: string; seconds: number; quick: boolean; host: { cpus: number; load_avg_start: number[]; load_avg_end: number[] }; device: Runtime['info']; models: ModelResult[] };

function toMarkdown(r: Result): string {
  const i = r.device;
  const f = (s: Stat, d = 2) => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`;
  let s = `# bench/multi-lora results\n\n${r.date} · ${r.seconds.toFixed(0)} s${r.quick ? ' · --quick' : ''} · ${i.vendor} / ${i.architecture} / ${i.description} (backend ${i.backend}, CPU adapter: ${i.isCpu})\n\n`;
  s += `Host: ${r.host.cpus} CPUs, load average ${r.host.load_avg_start.map((x) => x.toFixed(1)).join(' / ')} at the start, ${r.host.load_avg_end.map((x) => x.toFixed(1)).join(' / ')} at the end (1 / 5 / 15 min).\n\n`;
  s += `${N_REQ} concurrent decode requests, ${N_ADAPTERS} distinct rank-${RANK} adapters on all seven projections, f32 weights. `;
  s += 'Each cell: median over interleaved rounds (min–max); every ratio is formed within a round. See README.md for the method.\n\n';
  s += '| model | measured | steps × rounds | load (1 min) | base tok/s | hetero tok/s | hetero_vs_base | hetero_vs_base_gpu | LoRA GPU share | batch_scaling | vs_merge_swap | hot switch ms (plan) | hot switch e2e: changing ÷ fixed mix (paired) | swap ms | dispatches/step base → hetero (tiles + singletons) | cold load ms | CPU-tier load ms |\n';
  s += '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n';
  for (const x of r.models) {
    s += `| ${x.model} | ${x.date.slice(0, 16)}${x.quick ? ' --quick' : ''}${x.lora_path ? ` · ${x.lora_path}` : ''} | ${x.decode_steps} × ${x.rounds} | ${f(x.load_avg_1m, 1)} | ${f(x.base32_tok_s, 1)} | ${f(x.hetero32_tok_s, 1)} | ${f(x.hetero_vs_base, 3)} | ${f(x.hetero_vs_base_gpu, 3)} | ${f(x.lora_gpu_share, 3)} | ${f(x.batch_scaling)} | ${f(x.vs_merge_swap)} | ${f(x.hot_switch_ms, 3)} | ${x.hot_switch_e2e_ratio ? f(x.hot_switch_e2e_ratio, 3) : '–'} | ${f(x.merge_swap_ms_per_swap, 0)} | ${x.dispatches_per_step.base} → ${x.dispatches_per_step.hetero} (${x.dispatches_per_step.mixed ?? '–'}) | ${x.cold_load_ms.toFixed(1)} | ${x.cpu_tier_load_ms.toFixed(1)} |\n`;
  }
  for (const x of r.models) {
    if (!x.adapter_scaling.length && !x.rank_scaling.length) continue;
    s += `\n${x.model}, 32 requests:\n\n| distinct adapters resident and used | tok/s | ÷ base |\n|---|---|---|\n`;
    for (const a of x.adapter_scaling) s += `| ${a.adapters} | ${f(a.tok_s, 1)} | ${f(a.vs_base, 3)} |\n`;
    s += `\n| 8 adapters of rank | tok/s | ÷ base |\n|---|---|---|\n`;
    for (const a of x.rank_scaling) s += `| ${a.ranks} | ${f(a.tok_s, 1)} | ${f(a.vs_base, 3)} |\n`;
  }
  return s;
}

runIfMain(import.meta.url, run);
