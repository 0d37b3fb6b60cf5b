// A minimal paged KV cache for the kernel checks (kv_write, rope_kv_write, attention): page
// buffers in the layout of ./layout.ts, a LIFO free list of blocks and per-sequence block tables.
// The serving cache is engine/kv/paged-cache.ts; the checks use this stand-in so that shaders/
// depends on nothing above it.
import type { Runtime } from '../gpu/runtime.ts';
import { BatchMetaBuffer, kvBlockBytesPerLayer, type BatchEntry, type BatchMeta, type BlockTables, type KvPages, type SeqId } from './layout.ts';

export class CheckKvPages implements KvPages, BlockTables {
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly blockSize: number;
  readonly k: GPUBuffer[] = [];
  readonly v: GPUBuffer[] = [];
  private free_: number[];
  private tables = new Map<SeqId, { blocks: number[]; len: number }>();
  private meta: BatchMetaBuffer;
  /** Elements of one layer's K (or V) buffer. */
  readonly layerElements: number;

  constructor(private rt: Runtime, cfg: { numLayers: number; numKvHeads: number; headDim: number; blockSize: number; numBlocks: number }) {
    this.numLayers = cfg.numLayers;
    this.numKvHeads = cfg.numKvHeads;
    this.headDim = cfg.headDim;
    this.blockSize = cfg.blockSize;
    const bytes = cfg.numBlocks * kvBlockBytesPerLayer(cfg);
    this.layerElements = bytes / 4;
    for (let l = 0; l < cfg.numLayers; l++) {
      this.k.push(rt.createBuffer(bytes, `check-kv-k-${l}`));
      this.v.push(rt.createBuffer(bytes, `check-kv-v-${l}`));
    }
    this.free_ = Array.from({ length: cfg.numBlocks }, (_, i) => cfg.numBlocks - 1 - i);
    this.meta = new BatchMetaBuffer(rt);
  }

  /** Grows the sequence by n tokens (new blocks from the free list); throws when none are left. */
  allocateOrThrow(seqId: SeqId, n: number): void {
    const s = this.tables.get(seqId) ?? { blocks: [], len: 0 };
    const need = Math.ceil((s.len + n) / this.blockSize) - s.blocks.length;
    if (need > this.free_.length) throw new Error(`CheckKvPages: ${need} blocks needed, ${this.free_.length} free`);
    for (let i = 0; i < need; i++) s.blocks.push(this.free_.pop()!);
    s.len += n;
    this.tables.set(seqId, s);
  }

  free(seqId: SeqId): void {
    const s = this.tables.get(seqId);
    if (!s) return;
    for (const b of s.blocks) this.free_.push(b);
    this.tables.delete(seqId);
  }

  numTokens(seqId: SeqId): number {
    return this.tables.get(seqId)?.len ?? 0;
  }

  blockTableView(seqId: SeqId): readonly number[] {
    return this.tables.get(seqId)?.blocks ?? [];
  }

  blockTable(seqId: SeqId): number[] {
    return [...this.blockTableView(seqId)];
  }

  uploadTables(batch: readonly BatchEntry[]): BatchMeta {
    return this.meta.upload(this, batch);
  }

  destroy(): void {
    for (const b of [...this.k, ...this.v]) this.rt.destroy(b);
    this.k.length = 0;
    this.v.length = 0;
    this.meta.destroy();
  }
}
