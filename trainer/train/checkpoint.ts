// Outputs and resumable checkpoints.
//
//   output_dir/
//     adapter_config.json, adapter_model.safetensors   the PEFT adapter (float32, PEFT names)
//     train_log.jsonl                                   one object per logged step / eval
//     loss.svg                                          loss curve (train, and eval when present)
//     checkpoint-N/                                     every save_steps (and the last step)
//       adapter_config.json, adapter_model.safetensors
//       optimizer.safetensors                           AdamW exp_avg / exp_avg_sq per tensor
//       trainer_state.json                              { global_step, epoch, micro_batches, rng, config }
import { encodePeftAdapter, ADAPTER_WEIGHTS, type LoraPair } from '../../engine/lora/peft.ts';
import { parseSafetensorsBuffer, writeSafetensors, type TensorToWrite } from '../../engine/model/safetensors.ts';
import { bytesToFloat32 } from '../../engine/model/dtype.ts';
import type { LoraModule } from '../../engine/lora/hook.ts';
import { z } from 'zod';
import { joinPath, type TrainIO } from './io.ts';
import type { LoraSetup, OptimizerState } from './backend.ts';
import { TrainConfigError } from './config.ts';

export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const STATE_FILE = 'trainer_state.json';

export async function writeAdapter(io: TrainIO, dir: string, lora: LoraSetup, w: Map<string, LoraPair>, baseModel: string | null): Promise<void> {
  const files = encodePeftAdapter({ r: lora.r, alpha: lora.alpha, targetModules: lora.modules as LoraModule[], useRslora: lora.useRslora, tensors: w, baseModel });
  for (const [f, bytes] of Object.entries(files)) await io.write(joinPath(dir, f), bytes);
}

/** Read lora_A/B back from an adapter_model.safetensors we (or PEFT) wrote. */
export function readAdapterTensors(bytes: Uint8Array, file: string): Map<string, LoraPair> {
  const h = parseSafetensorsBuffer(bytes, file);
  const out = new Map<string, Partial<LoraPair>>();
  for (const t of h.tensors.values()) {
    const m = /model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$/.exec(t.name);
    if (!m) continue;
    const key = `${m[1]}.${m[2]}`;
    const e = out.get(key) ?? {};
    e[m[3] as 'A' | 'B'] = bytesToFloat32(bytes.subarray(t.start, t.end), t.dtype);
    out.set(key, e);
  }
  return out as Map<string, LoraPair>;
}

const stateSchema = z.object({
  global_step: z.number().int().nonnegative(),
  micro_batches: z.number().int().nonnegative(),
  epoch: z.number().nonnegative(),
  config_hash: z.string(),
  tokens: z.number().nonnegative().default(0),
});
export type TrainerState = z.infer<typeof stateSchema>;

export async function writeCheckpoint(io: TrainIO, dir: string, lora: LoraSetup, w: Map<string, LoraPair>, opt: OptimizerState, state: TrainerState, baseModel: string | null): Promise<void> {
  // optimizer and state first: a directory with trainer_state.json is complete
  const t: Record<string, TensorToWrite> = {};
  for (const [key, p] of w) {
    const m = opt.m.get(key), v = opt.v.get(key);
    if (!m || !v) continue;
    t[`${key}.A.exp_avg`] = { dtype: 'F32', shape: [p.A.length], data: m.A };
    t[`${key}.A.exp_avg_sq`] = { dtype: 'F32', shape: [p.A.length], data: v.A };
    t[`${key}.B.exp_avg`] = { dtype: 'F32', shape: [p.B.length], data: m.B };
    t[`${key}.B.exp_avg_sq`] = { dtype: 'F32', shape: [p.B.length], data: v.B };
  }
  await writeAdapter(io, dir, lora, w, baseModel);
  await io.write(joinPath(dir, OPTIMIZER_FILE), writeSafetensors(t, { step: String(opt.step) }));
  await io.write(joinPath(dir, STATE_FILE), JSON.stringify(state, null, 2));
}

/** The newest complete checkpoint-N under dir, or null. */
export async function latestCheckpoint(io: TrainIO, dir: string): Promise<{ dir: string; step: number } | null> {
  const steps = (await io.list(dir)).map((n) => /^checkpoint-(\d+)$/.exec(n)).filter((m): m is RegExpExecArray => !!m).map((m) => Number(m[1])).sort((a, b) => b - a);
  for (const s of steps) {
    const d = joinPath(dir, `checkpoint-${s}`);
    if ((await io.exists(joinPath(d, STATE_FILE))) && (await io.exists(joinPath(d, OPTIMIZER_FILE))) && (await io.exists(joinPath(d, ADAPTER_WEIGHTS)))) return { dir: d, step: s };
  }
  return null;
}

export async function readCheckpoint(io: TrainIO, dir: string): Promise<{ adapter: Map<string, LoraPair>; optimizer: OptimizerState; state: TrainerState }> {
  const adapter = readAdapterTensors(await io.readBytes(joinPath(dir, ADAPTER_WEIGHTS)), joinPath(dir, ADAPTER_WEIGHTS));
  const ob = await io.readBytes(joinPath(dir, OPTIMIZER_FILE));
  const h = parseSafetensorsBuffer(ob, joinPath(dir, OPTIMIZER_FILE));
  const get = (n: string) => {
    const t = h.tensors.get(n);
    if (!t) throw new TrainConfigError(`${dir}/${OPTIMIZER_FILE}: missing ${n}`);
    return bytesToFloat32(ob.subarray(t.start, t.end), t.dtype);
  };
  const m = new Map<string, LoraPair>(), v = new Map<string, LoraPair>();
  for (const key of adapter.keys()) {
    m.set(key, { A: get(`${key}.A.exp_avg`), B: get(`${key}.B.exp_avg`) });
    v.set(key, { A: get(`${key}.A.exp_avg_sq`), B: get(`${key}.B.exp_avg_sq`) });
  }
  const raw = JSON.parse(await io.readText(joinPath(dir, STATE_FILE)));
  const st = stateSchema.safeParse(raw);
  if (!st.success) throw new TrainConfigError(`${dir}/${STATE_FILE}: ${st.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return { adapter, optimizer: { step: Number(h.metadata.step ?? st.data.global_step), m, v }, state: st.data };
}

// ------------------------------------------------------------------ loss curve

/** A small self-contained SVG line chart of train loss (and eval loss) against the step. */
export function lossCurveSvg(train: Array<[number, number]>, evals: Array<[number, number]> = [], title = 'loss'): string {
  const W = 640, H = 360, L = 56, R = 16, T = 28, B = 40;
  const all = [...train, ...evals].filter(([, y]) => Number.isFinite(y));
  const xs = all.map(([x]) => x), ys = all.map(([, y]) => y);
  const x0 = Math.min(0, ...xs), x1 = Math.max(1, ...xs);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (!all.length) [y0, y1] = [0, 1];
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const px = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const path = (pts: Array<[number, number]>) => pts.filter(([, y]) => Number.isFinite(y)).map(([x, y], i) => `${i ? 'L' : 'M'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => y0 + f * (y1 - y0));
  const esc = (s: string) => s.replace(/[<&>]/g, (c) => ({ '<': '&lt;', '&': '&amp;', '>': '&gt;' })[c]!);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="13">${esc(title)}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#444"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#444"/>`,
    ...ticks.map((y) => `<text x="${L - 6}" y="${py(y) + 4}" text-anchor="end">${y.toFixed(3)}</text><line x1="${L}" y1="${py(y)}" x2="${W - R}" y2="${py(y)}" stroke="#eee"/>`),
    `<text x="${L}" y="${H - B + 16}">${x0}</text><text x="${W - R}" y="${H - B + 16}" text-anchor="end">${x1}</text>`,
    `<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">step</text>`,
    train.length ? `<path d="${path(train)}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>` : '',
    evals.length ? `<path d="${path(evals)}" fill="none" stroke="#d62728" stroke-width="1.5" stroke-dasharray="4 3"/>` : '',
    ...evals.map(([x, y]) => (Number.isFinite(y) ? `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="2.5" fill="#d62728"/>` : '')),
    `<text x="${W - R - 120}" y="${T + 12}" fill="#1f77b4">— train loss</text>`,
    evals.length ? `<text x="${W - R - 120}" y="${T + 26}" fill="#d62728">- - eval loss</text>` : '',
    `</svg>`,
  ].join('\n');
}
