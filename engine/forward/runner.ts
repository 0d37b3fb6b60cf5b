// StepRunner over the GPU model and the paged KV cache: the scheduler picks segments and
// reserves their KV pages; the runner builds the step's batch metadata (block tables, slot
// mapping, positions) and runs one forward pass.
import type { StepBatch, StepRunner, SegmentResult } from '../scheduler/types.ts';
import type { PagedKvCache, BatchEntry } from '../kv/paged-cache.ts';
import type { GpuModel, ForwardSegment } from './gpu-model.ts';

export interface RunnerStats {
  steps: number;
  tokens: number;
}

export class GpuStepRunner implements StepRunner {
  readonly model: GpuModel;
  readonly cache: PagedKvCache;
  readonly stats: RunnerStats = { steps: 0, tokens: 0 };

  constructor(model: GpuModel, cache: PagedKvCache) {
    if (cache.numLayers !== model.config.numLayers || cache.numKvHeads !== model.config.numKvHeads || cache.headDim !== model.config.headDim) {
      throw new Error(
        `GpuStepRunner: cache shape (layers ${cache.numLayers}, kv heads ${cache.numKvHeads}, head_dim ${cache.headDim}) does not match the model ` +
          `(${model.config.numLayers}, ${model.config.numKvHeads}, ${model.config.headDim})`,
      );
    }
    this.model = model;
    this.cache = cache;
  }

  async runStep(batch: StepBatch, opts: { allLogits?: boolean } = {}): Promise<SegmentResult[]> {
    const segs = batch.segments;
    const entries: BatchEntry[] = [];
    const seen = new Set<number>();
    for (const s of segs) {
      if (seen.has(s.seqId)) throw new Error(`runStep: sequence ${s.seqId} appears twice in one step`);
      seen.add(s.seqId);
      if (s.tokens.length === 0) throw new Error(`runStep: sequence ${s.seqId} has an empty segment`);
      const need = s.startPos + s.tokens.length;
      const have = this.cache.numTokens(s.seqId);
      if (have < need) {
        throw new Error(`runStep: sequence ${s.seqId} has ${have} KV slots reserved, the segment needs positions up to ${need - 1} (reserve them first)`);
      }
      const positions = new Array<number>(s.tokens.length);
      for (let i = 0; i < s.tokens.length; i++) positions[i] = s.startPos + i;
      entries.push({ seqId: s.seqId, positions });
    }
    const meta = this.cache.uploadTables(entries);
    const fsegs: ForwardSegment[] = segs.map((s) => ({
      tokens: s.tokens,
      startPos: s.startPos,
      adapter: s.adapter,
      sample: s.sample,
      history: s.history,
      wantLogits: s.wantLogits,
      mask: s.mask,
    }));
    const r = await this.model.forward({ segments: fsegs, cache: this.cache, meta, allLogits: opts.allLogits });
    this.stats.steps++;
    for (const s of segs) this.stats.tokens += s.tokens.length;
    return segs.map((s, i) => {
      const out: SegmentResult = { seqId: s.seqId, token: r.tokens[i] ?? null };
      const lg = r.logits[i];
      if (lg) out.logits = lg;
      return out;
    });
  }
}
