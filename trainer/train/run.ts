// One training run from a config: base model → GPU (f32), datasets → items (+ held-out split),
// adapter (fresh PEFT init or lora_model_dir) → GpuTrainBackend → train(). Browser-safe: files
// through TrainIO, models through ModelSource (the caller opens them: local dir, hub URL, memory).
import type { Runtime } from '../../shaders/gpu/runtime.ts';
import { GpuModel } from '../../engine/forward/gpu-model.ts';
import type { ModelSource } from '../../engine/model/source.ts';
import { loadTokenizer } from '../../engine/model/tokenizer.ts';
import { loadPeftAdapter, scalingFor, type LoraPair } from '../../engine/lora/peft.ts';
import { targetModules, type TrainConfig } from './config.ts';
import { parseRows, encodeRows, toItems, emptyStats, shuffled, type Examples, type LoadStats, type TrainItems, type TrainTokenizer } from './data.ts';
import { initLora, type LoraSetup } from './backend.ts';
import { GpuTrainBackend } from './gpu-backend.ts';
import { train, type TrainResult, type TrainOptions } from './trainer.ts';
import { joinPath, type TrainIO } from './io.ts';

export interface RunOptions {
  config: TrainConfig;
  /** Directory relative paths in the config are resolved against (the config file's). */
  baseDir: string;
  io: TrainIO;
  rt: Runtime;
  /** Opens a model / adapter location (already resolved against baseDir). */
  openSource: (location: string) => ModelSource;
  resume?: boolean;
  /** Train on this already loaded base (e.g. a serving engine's GpuModel, f32) instead of loading base_model; it is not destroyed. */
  model?: GpuModel;
  onLog?: TrainOptions['onLog'];
  onProgress?: TrainOptions['onProgress'];
  onStep?: TrainOptions['onStep'];
  /** Messages for the user (data counts, warnings). */
  say?: (msg: string) => void;
  signal?: AbortSignal;
}

export interface RunResult extends TrainResult {
  stats: LoadStats;
  evalStats?: LoadStats;
  outputDir: string;
  trainItems: number;
  evalItems: number;
}

export const resolvePath = (dir: string, p: string): string => (p.startsWith('/') || /^[a-z]+:\/\//i.test(p) || !dir ? p : joinPath(dir, p));

function concat(all: Examples[]): Examples {
  if (!all.length) return { kind: 'lm', rows: [] };
  if (all.some((e) => e.kind !== all[0]!.kind)) throw new Error('datasets mix preference and non-preference rows');
  return all[0]!.kind === 'lm' ? { kind: 'lm', rows: all.flatMap((e) => (e.kind === 'lm' ? e.rows : [])) } : { kind: 'pref', rows: all.flatMap((e) => (e.kind === 'pref' ? e.rows : [])) };
}

/** Load the datasets of `cfg` (and test_datasets / val_set_size split). */
export async function loadData(cfg: TrainConfig, baseDir: string, io: TrainIO, tok: TrainTokenizer | null): Promise<{ train: TrainItems; eval?: TrainItems; stats: LoadStats; evalStats?: LoadStats }> {
  const read = async (specs: TrainConfig['datasets'], st: LoadStats) => {
    const out: Examples[] = [];
    for (const ds of specs) {
      const path = resolvePath(baseDir, ds.path);
      let text: string;
      try {
        text = await io.readText(path);
      } catch (e) {
        throw new Error(`${path}: cannot read dataset: ${(e as Error).message}`);
      }
      out.push(encodeRows(parseRows(text, path), ds, path, cfg, tok, st));
    }
    return concat(out);
  };
  const stats = emptyStats();
  let ex = await read(cfg.datasets, stats);
  let evalEx: Examples | undefined;
  const evalStats = emptyStats();
  if (cfg.test_datasets?.length) evalEx = await read(cfg.test_datasets, evalStats);
  else if (cfg.val_set_size > 0) {
    // HF datasets train_test_split(test_size, seed): shuffled, then the tail is the test split
    const n = ex.rows.length;
    const nVal = cfg.val_set_size < 1 ? Math.round(n * cfg.val_set_size) : Math.min(n - 1, Math.round(cfg.val_set_size));
    const idx = shuffled(Array.from({ length: n }, (_, i) => i), cfg.seed);
    const valSet = new Set(idx.slice(0, nVal));
    const pick = (keep: boolean): Examples => (ex.kind === 'lm' ? { kind: 'lm', rows: ex.rows.filter((_, i) => valSet.has(i) === keep) } : { kind: 'pref', rows: ex.rows.filter((_, i) => valSet.has(i) === keep) });
    evalEx = pick(true);
    ex = pick(false);
  }
  const train = toItems(ex, cfg, stats);
  const ev = evalEx ? toItems(evalEx, { ...cfg, sample_packing: cfg.sample_packing }, evalStats) : undefined;
  return { train, eval: ev, stats, evalStats: ev ? evalStats : undefined };
}

export async function runTraining(o: RunOptions): Promise<RunResult> {
  const cfg = o.config;
  const say = o.say ?? (() => {});
  const source = o.openSource(resolvePath(o.baseDir, cfg.base_model));
  const model = o.model ?? (await GpuModel.load(o.rt, source, { weightFormat: 'f32' }));
  let backend: GpuTrainBackend | null = null;
  try {
    const c = model.config;
    const tok = await loadTokenizer(source).catch(() => null);
    const data = await loadData(cfg, o.baseDir, o.io, tok);
    const st = data.stats;
    say(`data: ${st.rows} rows → ${data.train.items.length} training ${data.train.kind === 'pref' ? 'pairs' : 'sequences'} (${st.tokens} tokens${st.targets ? `, ${st.targets} targets` : ''}); truncated ${st.truncated}, dropped ${st.dropped}` +
      (data.eval ? `; held out ${data.eval.items.length}` : ''));
    // adapter: an existing PEFT dir, or PEFT's fresh init
    let setup: LoraSetup;
    let init: Map<string, LoraPair>;
    if (cfg.lora_model_dir) {
      const a = await loadPeftAdapter(o.openSource(resolvePath(o.baseDir, cfg.lora_model_dir)), c);
      setup = { r: a.r, alpha: a.alpha, useRslora: a.useRslora, scaling: a.scaling, modules: a.targetModules, dropout: cfg.lora_dropout };
      if (a.r !== cfg.lora_r || a.alpha !== cfg.lora_alpha) say(`lora_model_dir: using the adapter's r=${a.r}, alpha=${a.alpha} (config says ${cfg.lora_r}, ${cfg.lora_alpha})`);
      init = a.weights;
      // modules missing in some layers (layers_to_transform) are not trainable here
      for (let l = 0; l < c.numLayers; l++) for (const m of setup.modules) if (!init.has(`${l}.${m}`)) throw new Error(`lora_model_dir: adapter has no layer ${l} ${m} (partial-layer adapters cannot be trained further)`);
    } else {
      const modules = targetModules(cfg);
      setup = { r: cfg.lora_r, alpha: cfg.lora_alpha, useRslora: cfg.peft_use_rslora, scaling: scalingFor(cfg.lora_alpha, cfg.lora_r, cfg.peft_use_rslora), modules, dropout: cfg.lora_dropout };
      init = initLora(c, cfg.lora_r, modules, cfg.seed);
    }
    backend = new GpuTrainBackend(o.rt, model, setup, init, { recompute: cfg.gradient_checkpointing });
    const res = await train({
      config: cfg, backend, data, io: o.io, baseModel: cfg.base_model, resume: o.resume,
      onLog: o.onLog, onProgress: o.onProgress, onStep: o.onStep, signal: o.signal,
    });
    await o.io.write(joinPath(cfg.output_dir, 'data_stats.json'), JSON.stringify({ train: st, eval: data.evalStats ?? null }, null, 2));
    return { ...res, stats: st, evalStats: data.evalStats, outputDir: cfg.output_dir, trainItems: data.train.items.length, evalItems: data.eval?.items.length ?? 0 };
  } finally {
    backend?.destroy();
    if (!o.model) model.destroy();
  }
}
