// A CPU StepRunner for scheduler tests (and a CPU fallback for tiny models): it keeps a real
// paged "KV cache" — each slot stores the token id computed at that position, tagged with the
// sequence that wrote it — in the same block layout as engine/kv, and computes each segment's
// next-token logits from what it reads back out of those pages. So it fails loudly when the
// scheduler runs a position whose earlier positions were never computed (or were freed, or
// belong to another sequence), when pages were not reserved, or when a segment's tokens,
// history, start position or sampling flag disagree with each other.
//
// The "model" is any function (adapter, tokens) → logits of the last position: the float64
// reference (reference/llama.ts) or the toy hash LM below.

import { BlockAllocator } from '../../engine/kv/block-allocator.ts';
import type { SampleParams } from '../../shaders/sample/sample.ts';
import { sampleRef } from '../../shaders/sample/sample.ref.ts';
import type { KvAllocator } from '../../engine/scheduler/scheduler.ts';
import type { SegmentResult, StepBatch, StepRunner } from '../../engine/scheduler/types.ts';

export type LastLogitsModel = (adapter: string | null, tokens: readonly number[]) => ArrayLike<number>;

/** BlockAllocator + one (seq, token) record per physical slot; freed blocks are poisoned. */
export class TrackedKv implements KvAllocator {
  readonly alloc: BlockAllocator;
  readonly slotSeq: Int32Array;
  readonly slotTok: Int32Array;
  constructor(numBlocks: number, blockSize: number) {
    this.alloc = new BlockAllocator(numBlocks, blockSize);
    this.slotSeq = new Int32Array(numBlocks * blockSize).fill(-1);
    this.slotTok = new Int32Array(numBlocks * blockSize).fill(-1);
  }
  get numBlocks(): number {
    return this.alloc.numBlocks;
  }
  get blockSize(): number {
    return this.alloc.blockSize;
  }
  freeBlocks(): number {
    return this.alloc.freeBlocks();
  }
  canAllocate(numTokens: number, seqId?: number): boolean {
    return this.alloc.canAllocate(numTokens, seqId);
  }
  allocate(seqId: number, numTokens: number): boolean {
    return this.alloc.allocate(seqId, numTokens);
  }
  numTokens(seqId: number): number {
    return this.alloc.numTokens(seqId);
  }
  free(seqId: number): number {
    if (this.alloc.has(seqId)) {
      for (const b of this.alloc.blockTableView(seqId)) {
        this.slotSeq.fill(-1, b * this.blockSize, (b + 1) * this.blockSize);
        this.slotTok.fill(-1, b * this.blockSize, (b + 1) * this.blockSize);
      }
    }
    return this.alloc.free(seqId);
  }
  /** Live sequences holding pages. */
  sequences(): number[] {
    return this.alloc.sequences() as number[];
  }
}

export interface CpuRunnerOptions {
  /** Assert each batch has at most this many tokens. */
  maxBatchTokens?: number;
  /** Called before each step (tests use it to cancel mid-step or to gate steps). */
  beforeStep?: (batch: StepBatch) => void | Promise<void>;
}

export class CpuStepRunner implements StepRunner {
  /** Every batch run, for assertions. */
  readonly log: StepBatch[] = [];
  constructor(
    readonly kv: TrackedKv,
    readonly model: LastLogitsModel,
    readonly opts: CpuRunnerOptions = {},
  ) {}

  async runStep(batch: StepBatch): Promise<SegmentResult[]> {
    this.log.push(batch);
    await this.opts.beforeStep?.(batch);
    const { kv } = this;
    const seen = new Set<number>();
    let total = 0;
    for (const g of batch.segments) {
      const fail = (msg: string) => {
        throw new Error(`CpuStepRunner: seq ${g.seqId} @${g.startPos}+${g.tokens.length}: ${msg}`);
      };
      if (seen.has(g.seqId)) fail('appears twice in one batch');
      seen.add(g.seqId);
      if (g.tokens.length === 0) fail('empty segment');
      total += g.tokens.length;
      const end = g.startPos + g.tokens.length;
      if (kv.numTokens(g.seqId) < end) fail(`only ${kv.numTokens(g.seqId)} KV slots reserved`);
      if (g.history.length < end) fail(`history has ${g.history.length} tokens`);
      for (let i = 0; i < g.tokens.length; i++) if (g.history[g.startPos + i] !== g.tokens[i]) fail('tokens disagree with history');
      if ((g.sample !== null) !== (end === g.history.length)) fail(`sample=${g.sample !== null} but segment ends at ${end} of ${g.history.length}`);
      // Earlier positions must have been computed by this sequence (and not freed since).
      for (let p = 0; p < g.startPos; p++) {
        const slot = kv.alloc.slot(g.seqId, p);
        if (kv.slotSeq[slot] !== g.seqId || kv.slotTok[slot] !== g.history[p]) fail(`position ${p} was not computed (slot holds seq ${kv.slotSeq[slot]} token ${kv.slotTok[slot]})`);
      }
    }
    if (this.opts.maxBatchTokens !== undefined && total > this.opts.maxBatchTokens) throw new Error(`CpuStepRunner: ${total} tokens > budget ${this.opts.maxBatchTokens}`);

    const out: SegmentResult[] = [];
    for (const g of batch.segments) {
      const end = g.startPos + g.tokens.length;
      g.tokens.forEach((t, i) => {
        const slot = kv.alloc.slot(g.seqId, g.startPos + i);
        kv.slotSeq[slot] = g.seqId;
        kv.slotTok[slot] = t;
      });
      if (!g.sample) {
        out.push({ seqId: g.seqId, token: null });
        continue;
      }
      const ctx: number[] = [];
      for (let p = 0; p < end; p++) ctx.push(kv.slotTok[kv.alloc.slot(g.seqId, p)]!);
      const logits = Float32Array.from(this.model(g.adapter, ctx));
      const r: SegmentResult = { seqId: g.seqId, token: cpuSample(logits, g.sample, g.history, g.mask) };
      if (g.wantLogits) r.logits = logits;
      out.push(r);
    }
    return out;
  }
}

/** CPU sampling with the sampler's float64 reference (same semantics and random stream as the GPU sampler). */
export function cpuSample(logits: ArrayLike<number>, p: SampleParams, history: ReadonlyArray<number>, mask?: Uint32Array | null): number {
  return sampleRef(logits, logits.length, { ...p, historyOffset: 0, historyLength: history.length }, history, mask).token;
}

/** Toy LM: last-position logits are a hash of (adapter, every token so far). */
export function toyModel(vocab: number): LastLogitsModel {
  return (adapter, tokens) => {
    let h = 0x811c9dc5;
    const mix = (x: number) => {
      h ^= x;
      h = Math.imul(h, 0x01000193);
    };
    for (const c of adapter ?? '') mix(c.charCodeAt(0));
    mix(0xffff);
    for (const t of tokens) mix(t + 1);
    const logits = new Float64Array(vocab);
    for (let v = 0; v < vocab; v++) {
      let x = Math.imul(h ^ Math.imul(v + 1, 0x27d4eb2d), 0x165667b1);
      x ^= x >>> 15;
      x = Math.imul(x, 0x85ebca6b);
      x ^= x >>> 13;
      logits[v] = ((x >>> 0) % 4096) / 256 - 8;
    }
    return logits;
  };
}

/** The oracle: one request alone, no scheduler, no KV cache: full recompute each token. */
export function soloGenerate(
  model: LastLogitsModel,
  req: { promptTokens: number[]; adapter: string | null; sample: Omit<SampleParams, 'step'>; maxTokens: number; stopTokenIds?: number[] },
): { output: number[]; logits: Float32Array[]; reason: 'stop' | 'length'; stopToken: number | null } {
  const hist = [...req.promptTokens];
  const output: number[] = [];
  const logits: Float32Array[] = [];
  for (let step = 0; step < req.maxTokens; step++) {
    const l = Float32Array.from(model(req.adapter, hist));
    logits.push(l);
    const t = cpuSample(l, { ...req.sample, step } as SampleParams, hist);
    hist.push(t);
    if (req.stopTokenIds?.includes(t)) return { output, logits, reason: 'stop', stopToken: t };
    output.push(t);
  }
  return { output, logits, reason: 'length', stopToken: null };
}
