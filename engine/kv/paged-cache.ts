// Paged KV cache: GPU pages + CPU block allocator + per-step batch metadata.
// The page and metadata layouts, and the structural types the kernels take, are in
// shaders/kv/layout.ts; this file owns capacity, allocation and the per-step upload.

import type { Runtime } from '../../shaders/gpu/runtime.ts';
import {
  BatchMetaBuffer, buildBatchMeta, kvBlockBytesPerLayer, TOKEN_WORDS,
  type BatchEntry, type BatchMeta, type BatchMetaHost, type KvPages,
} from '../../shaders/kv/layout.ts';
import { BlockAllocator, KvCacheFullError, type SeqId } from './block-allocator.ts';

export { BlockAllocator, KvCacheFullError, type SeqId };
export { BatchMetaBuffer, buildBatchMeta, TOKEN_WORDS, type BatchEntry, type BatchMeta, type BatchMetaHost, type KvPages };

export interface KvCacheConfig {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  /** Tokens per block (default 16). */
  blockSize?: number;
  /** Capacity as a block count ... */
  numBlocks?: number;
  /** ... or as a byte budget for K and V of all layers together (numBlocks wins when both are given). */
  maxBytes?: number;
}

export class PagedKvCache implements KvPages {
  readonly rt: Runtime;
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly blockSize: number;
  readonly numBlocks: number;
  /** Per-layer K pages, [numBlocks, numKvHeads, blockSize, headDim] f32. */
  readonly k: GPUBuffer[];
  /** Per-layer V pages, same layout. */
  readonly v: GPUBuffer[];
  readonly allocator: BlockAllocator;
  private meta: BatchMetaBuffer;

  /** Bytes of one block of K (or V) in one layer. */
  static blockBytesPerLayer(cfg: Pick<KvCacheConfig, 'numKvHeads' | 'headDim' | 'blockSize'>): number {
    return kvBlockBytesPerLayer(cfg);
  }

  /** Bytes of one block across K and V of all layers. */
  static bytesPerBlock(cfg: KvCacheConfig): number {
    return 2 * cfg.numLayers * PagedKvCache.blockBytesPerLayer(cfg);
  }

  static create(rt: Runtime, cfg: KvCacheConfig): PagedKvCache {
    return new PagedKvCache(rt, cfg);
  }

  constructor(rt: Runtime, cfg: KvCacheConfig) {
    const blockSize = cfg.blockSize ?? 16;
    for (const [n, v] of [['numLayers', cfg.numLayers], ['numKvHeads', cfg.numKvHeads], ['headDim', cfg.headDim], ['blockSize', blockSize]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`PagedKvCache: ${n}=${v} must be a positive integer`);
    }
    const perLayer = PagedKvCache.blockBytesPerLayer({ ...cfg, blockSize });
    const maxBinding = Math.min(rt.device.limits.maxStorageBufferBindingSize, rt.device.limits.maxBufferSize);
    const maxBlocks = Math.floor(maxBinding / perLayer);
    let numBlocks: number;
    if (cfg.numBlocks !== undefined) {
      numBlocks = cfg.numBlocks;
      if (numBlocks > maxBlocks) {
        throw new Error(`PagedKvCache: ${numBlocks} blocks × ${perLayer} B per layer exceeds the ${maxBinding}-byte binding limit (max ${maxBlocks} blocks)`);
      }
    } else if (cfg.maxBytes !== undefined) {
      numBlocks = Math.min(maxBlocks, Math.floor(cfg.maxBytes / (2 * cfg.numLayers * perLayer)));
    } else {
      throw new Error('PagedKvCache: give numBlocks or maxBytes');
    }
    if (!Number.isInteger(numBlocks) || numBlocks < 1) throw new Error(`PagedKvCache: capacity of ${numBlocks} blocks (need at least 1)`);
    this.rt = rt;
    this.numLayers = cfg.numLayers;
    this.numKvHeads = cfg.numKvHeads;
    this.headDim = cfg.headDim;
    this.blockSize = blockSize;
    this.numBlocks = numBlocks;
    this.allocator = new BlockAllocator(numBlocks, blockSize);
    this.k = [];
    this.v = [];
    for (let l = 0; l < cfg.numLayers; l++) {
      this.k.push(rt.createBuffer(numBlocks * perLayer, `kv-k-${l}`));
      this.v.push(rt.createBuffer(numBlocks * perLayer, `kv-v-${l}`));
    }
    this.meta = new BatchMetaBuffer(rt);
  }

  /** Total bytes of the K and V pages. */
  get bytes(): number {
    return 2 * this.numLayers * this.numBlocks * PagedKvCache.blockBytesPerLayer(this);
  }

  /** Elements of one layer's K (or V) buffer. */
  get layerElements(): number {
    return this.numBlocks * this.numKvHeads * this.blockSize * this.headDim;
  }

  // ------------------------------------------------------------ allocator pass-throughs

  allocate(seqId: SeqId, numTokens: number): boolean {
    return this.allocator.allocate(seqId, numTokens);
  }
  allocateOrThrow(seqId: SeqId, numTokens: number): void {
    this.allocator.allocateOrThrow(seqId, numTokens);
  }
  free(seqId: SeqId): number {
    return this.allocator.free(seqId);
  }
  truncate(seqId: SeqId, numTokens: number): void {
    this.allocator.truncate(seqId, numTokens);
  }
  freeBlocks(): number {
    return this.allocator.freeBlocks();
  }
  canAllocate(numTokens: number, seqId?: SeqId): boolean {
    return this.allocator.canAllocate(numTokens, seqId);
  }
  blockTable(seqId: SeqId): number[] {
    return this.allocator.blockTable(seqId);
  }
  numTokens(seqId: SeqId): number {
    return this.allocator.numTokens(seqId);
  }

  /**
   * Writes this step's batch metadata (token records, per-entry table offsets, block tables)
   * into the cache's reusable metadata buffer. One batch per step: the next call overwrites it
   * (queue-ordered, so work already recorded keeps reading the old contents). For several
   * concurrent batches use separate BatchMetaBuffer objects.
   */
  uploadTables(batch: readonly BatchEntry[]): BatchMeta {
    return this.meta.upload(this.allocator, batch);
  }

  destroy(): void {
    for (const b of [...this.k, ...this.v]) this.rt.destroy(b);
    this.k.length = 0;
    this.v.length = 0;
    this.meta.destroy();
  }
}
