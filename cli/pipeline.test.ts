// lorafleet pipeline on a tiny corpus with tiny step counts: every data stage, the adapter sets,
// CPT and the merged Domain-Base; a rerun skips every stage (same keys); a changed CPT setting
// reruns CPT and the merge only; a run killed inside CPT (manifest 'running', a checkpoint on
// disk, no final adapter) resumes from the checkpoint. The whole pipeline through eval and the
// report runs with LORAFLEET_SOAK=1 (minutes on a loaded 2-core CPU).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { cp, mkdtemp, mkdir, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runPipeline } from './pipeline.ts';
import { PipelineConfigSchema, loadPipelineConfig } from './pipeline/config.ts';
import { canonicalToolCall } from './pipeline/sets.ts';
import { STORIES_DIR } from '../tests/fixtures/stories.ts';
import { Runtime } from '../shaders/gpu/runtime.ts';

const SAMPLE = fileURLToPath(new URL('../trainer/data/samples/harborline', import.meta.url));
let docs: string;
let rt: Runtime;

beforeAll(async () => {
  rt = await Runtime.create(); // one device for every run: kernels compile once
  docs = await mkdtemp(join(tmpdir(), 'lf-pipe-docs-'));
  await cp(join(SAMPLE, 'domain.json'), join(docs, 'domain.json'));
  await cp(join(SAMPLE, 'docs', 'overview.md'), join(docs, 'overview.md'));
  await cp(join(SAMPLE, 'docs', 'runbooks.md'), join(docs, 'runbooks.md'));
});

afterAll(() => rt?.destroyAll());

const tiny = (cpt: Record<string, unknown> = {}) =>
  PipelineConfigSchema.parse({
    train: { max_steps: 1, micro_batch_size: 1, lora_r: 2, lora_alpha: 4, sequence_len: 64 },
    stages: { cpt: { max_steps: 2, save_steps: 1, micro_batch_size: 1, sequence_len: 64, ...cpt } },
  });

describe('lorafleet pipeline', () => {
  it('caches every stage by content hash, reruns what a changed setting touches, resumes a killed stage', async () => {
    const out = await mkdtemp(join(tmpdir(), 'lf-pipe-out-'));
    const quiet = { quiet: true, say: () => {}, rt };
    const r1 = await runPipeline({ docs, out, model: STORIES_DIR, config: tiny(), until: 'domain-base', ...quiet });
    const names = r1.records.map((r) => r.stage);
    expect(names).toEqual(['ingest', 'chunk', 'dedupe', 'synth', 'format', 'sets', 'cpt', 'domain-base']);
    expect(r1.records.every((r) => !r.skipped)).toBe(true);
    for (const f of ['tool.train.jsonl', 'classifier.train.jsonl', 'cpt.jsonl', 'dpo-tool.train.jsonl']) expect(existsSync(join(out, 'sets', f))).toBe(true);
    // tool calls in the sets are spelled as the tool grammar emits them
    const tool = (await readFile(join(out, 'sets', 'tool.train.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { messages: { role: string; content: string }[] });
    const calls = tool.map((r) => r.messages.at(-1)!.content).filter((c) => c.startsWith('<tool_call>'));
    expect(calls.length).toBeGreaterThan(0);
    for (const c of calls) expect(canonicalToolCall(c)).toBe(c);
    expect(r1.records.find((r) => r.stage === 'cpt')!.summary.steps).toBe(2);
    expect(existsSync(join(out, 'domain-base', 'model.safetensors'))).toBe(true);

    // same inputs and settings: every stage is skipped
    const r2 = await runPipeline({ docs, out, model: STORIES_DIR, config: tiny(), until: 'domain-base', ...quiet });
    expect(r2.records.map((r) => r.skipped)).toEqual(names.map(() => true));

    // a changed CPT learning rate: data stages cached, CPT and the merge rerun
    const r3 = await runPipeline({ docs, out, model: STORIES_DIR, config: tiny({ learning_rate: 1e-3 }), until: 'domain-base', ...quiet });
    expect(Object.fromEntries(r3.records.map((r) => [r.stage, r.skipped]))).toEqual({ ingest: true, chunk: true, dedupe: true, synth: true, format: true, sets: true, cpt: false, 'domain-base': false });

    // killed inside CPT after its first checkpoint: the manifest still says running, the final adapter is missing
    const man = join(out, '.stages', 'cpt.json');
    const m = JSON.parse(await readFile(man, 'utf8'));
    await writeFile(man, JSON.stringify({ ...m, state: 'running' }));
    await rm(join(out, 'cpt', 'adapter_model.safetensors'));
    await rm(join(out, 'cpt', 'checkpoint-2'), { recursive: true, force: true });
    expect((await readdir(join(out, 'cpt'))).filter((f) => f.startsWith('checkpoint-'))).toEqual(['checkpoint-1']);
    const r4 = await runPipeline({ docs, out, model: STORIES_DIR, config: tiny({ learning_rate: 1e-3 }), until: 'cpt', ...quiet });
    const cpt = r4.records.find((r) => r.stage === 'cpt')!;
    expect(cpt.skipped).toBe(false);
    expect(cpt.resumed).toBe(true);
    expect(cpt.summary.resumedFrom).toBe(1);
    expect(existsSync(join(out, 'cpt', 'adapter_model.safetensors'))).toBe(true);
    await rm(out, { recursive: true, force: true });
  }, 600_000);

  it('config errors name the file and the field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lf-pipe-cfg-'));
    await writeFile(join(dir, 'bad.yaml'), 'stages:\n  cpt: { max_steps: 2 }\n  toool: { max_steps: 1 }\n');
    await expect(loadPipelineConfig(join(dir, 'bad.yaml'))).rejects.toThrow(/bad\.yaml: invalid pipeline config: stages: Unrecognized key.*toool/);
    await writeFile(join(dir, 'bad2.yaml'), 'train: { learning_rate: fast }\n');
    const out = join(dir, 'out');
    await mkdir(out);
    // the trainer validates its own keys when the stage is built, naming the stage
    await expect(runPipeline({ docs, out, model: STORIES_DIR, config: await loadPipelineConfig(join(dir, 'bad2.yaml')), quiet: true, say: () => {} })).rejects.toThrow(/pipeline stage cpt: invalid training config: learning_rate/);
  }, 300_000);
});

describe.skipIf(!process.env.LORAFLEET_SOAK)('lorafleet pipeline, whole (LORAFLEET_SOAK=1)', () => {
  it('documents → served adapters → report', async () => {
    const out = await mkdtemp(join(tmpdir(), 'lf-pipe-all-'));
    const r = await runPipeline({ docs, out, model: STORIES_DIR, config: PipelineConfigSchema.parse({ train: { max_steps: 1, micro_batch_size: 1, lora_r: 2, lora_alpha: 4, sequence_len: 96 }, eval: { max_rows: 2 } }), quiet: true, say: () => {} });
    expect((await readdir(r.adaptersDir)).sort()).toEqual(['chat_adapter', 'classifier_adapter', 'ner_adapter', 'tool_adapter']);
    const md = await readFile(r.report!.md, 'utf8');
    expect(md).toContain('## Router');
    expect(await readFile(r.report!.html, 'utf8')).toContain('new Chart(');
  }, 3_600_000);
});
