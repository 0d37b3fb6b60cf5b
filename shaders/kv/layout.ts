// Paged KV layout: what the kernels (kv_write, rope_kv_write, attention) need to know of a paged
// KV cache — page buffers, block size, and the per-step batch metadata — as structural types, so
// the serving cache (engine/kv/paged-cache.ts) and the kernel checks both fit them.
//
// Buffer shapes (f32, row-major, llama2.c style):
//
//   k[layer] : [numBlocks, numKvHeads, blockSize, headDim]   one GPUBuffer per layer
//   v[layer] : [numBlocks, numKvHeads, blockSize, headDim]   one GPUBuffer per layer
//
//   element (block b, kv head h, offset o, dim d) at ((b * numKvHeads + h) * blockSize + o) * headDim + d
//   token position p of sequence s lives in block table_s[p / blockSize] at offset p % blockSize;
//   its physical slot is table_s[p / blockSize] * blockSize + p % blockSize (vLLM's slot_mapping).
//   Each layer's buffer must fit maxStorageBufferBindingSize; when the capacity comes from a byte
//   budget numBlocks is clamped to that, an explicit numBlocks over it throws.
//
//   qkv activation (input of kvWrite / pagedAttention): [T, rowStride] with, per row,
//   q at columns [qCol, qCol + numHeads*headDim), k at [kCol, kCol + numKvHeads*headDim),
//   v at [vCol, vCol + numKvHeads*headDim). The fused default: rowStride = (numHeads + 2*numKvHeads)*headDim,
//   qCol = 0, kCol = numHeads*headDim, vCol = (numHeads + numKvHeads)*headDim.
//   attention output: [T, outStride] with token t, head h at columns outCol + h*headDim ...
//
//   batch metadata (one u32 GPU buffer, BatchMeta.buffer, rewritten every step):
//     words [0, 4T)                 per token t: tableStart, pos, slot, seqIndex
//                                   tableStart: word index (in this buffer) of the token's block table
//                                   pos: absolute position; the token attends to positions [0, pos]
//                                        (or [pos-window+1, pos]) of its sequence
//                                   slot: physical slot where kvWrite puts its k/v row
//     words [seqBase, seqBase+2S)   per batch entry s: tableStart, numTokens allocated to the sequence
//     words [tableBase, ...)        the block tables of the batch entries, concatenated
//
// Kernels: kvWrite (shaders/kv_write/) puts a step's k/v rows into their slots; pagedAttention
// (shaders/attention/) reads through the block tables.
//
// Tokens are numbered in batch order: entry 0's positions first, then entry 1's, ...; row t of
// qkv / out is token t. Prefill segments (many consecutive positions) and decode tokens (one
// position) mix freely; the K/V of every position a token attends to must have been written
// (earlier steps, or this step's kvWrite before pagedAttention).

import type { Runtime } from '../gpu/runtime.ts';

/** A sequence id (engine/kv/block-allocator.ts's SeqId). */
export type SeqId = number | string;

/** The page buffers and geometry the kernels read and write (a PagedKvCache, or a check's stand-in). */
export interface KvPages {
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly blockSize: number;
  /** Per-layer K pages, [numBlocks, numKvHeads, blockSize, headDim] f32. */
  readonly k: readonly GPUBuffer[];
  /** Per-layer V pages, same layout. */
  readonly v: readonly GPUBuffer[];
}

/** Block tables as buildBatchMeta reads them (engine/kv/block-allocator.ts's BlockAllocator fits). */
export interface BlockTables {
  readonly blockSize: number;
  /** Tokens allocated to the sequence (positions 0 .. n-1 are valid). */
  numTokens(seqId: SeqId): number;
  /** The sequence's block ids in position order. */
  blockTableView(seqId: SeqId): readonly number[];
}

/** Bytes of one block of K (or V) in one layer. */
export function kvBlockBytesPerLayer(cfg: { numKvHeads: number; headDim: number; blockSize?: number }): number {
  return cfg.numKvHeads * (cfg.blockSize ?? 16) * cfg.headDim * 4;
}

/** One batch entry: a sequence and the positions of its tokens in this step. */
export interface BatchEntry {
  seqId: SeqId;
  positions: readonly number[];
}

/** Words per token record in the batch metadata buffer. */
export const TOKEN_WORDS = 4;

/** Batch metadata on the GPU (see the layout at the top of this file). */
export interface BatchMeta {
  numTokens: number;
  numSeqs: number;
  buffer: GPUBuffer;
  /** Word offset of the per-token records (always 0). */
  tokenBase: number;
  /** Word offset of the per-entry (tableStart, numTokens) pairs. */
  seqBase: number;
  /** Word offset of the concatenated block tables. */
  tableBase: number;
  /** max(pos) + 1 over the batch's tokens (0 for an empty batch). */
  maxContext: number;
  /** The CPU copy of the words written to `buffer` (valid until the next upload into it). */
  words: Uint32Array;
}

/** CPU side of a BatchMeta. */
export interface BatchMetaHost {
  numTokens: number;
  numSeqs: number;
  seqBase: number;
  tableBase: number;
  maxContext: number;
  words: Uint32Array;
}

/** Builds the metadata words of a batch from the allocator's block tables (no GPU work). */
export function buildBatchMeta(alloc: BlockTables, batch: readonly BatchEntry[], scratch?: Uint32Array): BatchMetaHost {
  const bs = alloc.blockSize;
  let T = 0;
  let tableWords = 0;
  for (const e of batch) {
    T += e.positions.length;
    tableWords += alloc.blockTableView(e.seqId).length;
  }
  const S = batch.length;
  const seqBase = TOKEN_WORDS * T;
  const tableBase = seqBase + 2 * S;
  const total = tableBase + tableWords;
  const words = scratch && scratch.length >= total ? scratch.subarray(0, total) : new Uint32Array(total);
  let t = 0;
  let tw = tableBase;
  let maxContext = 0;
  for (let s = 0; s < S; s++) {
    const { seqId, positions } = batch[s];
    const table = alloc.blockTableView(seqId);
    const len = alloc.numTokens(seqId);
    const tableStart = tw;
    for (let i = 0; i < table.length; i++) words[tw++] = table[i];
    words[seqBase + 2 * s] = tableStart;
    words[seqBase + 2 * s + 1] = len;
    for (const pos of positions) {
      if (!Number.isInteger(pos) || pos < 0 || pos >= len) {
        throw new Error(`batch meta: position ${pos} of sequence ${String(seqId)} outside its ${len} allocated tokens`);
      }
      const o = TOKEN_WORDS * t++;
      words[o] = tableStart;
      words[o + 1] = pos;
      words[o + 2] = table[Math.floor(pos / bs)] * bs + (pos % bs);
      words[o + 3] = s;
      if (pos + 1 > maxContext) maxContext = pos + 1;
    }
  }
  return { numTokens: T, numSeqs: S, seqBase, tableBase, maxContext, words };
}

/** A reusable u32 GPU buffer for batch metadata; grows (doubling) and never shrinks. */
export class BatchMetaBuffer {
  private rt: Runtime;
  private buf: GPUBuffer | null = null;
  private capWords = 0;
  private scratch = new Uint32Array(256);

  constructor(rt: Runtime) {
    this.rt = rt;
  }

  /** Builds and uploads the metadata of `batch` (overwrites the previous step's). */
  upload(alloc: BlockTables, batch: readonly BatchEntry[]): BatchMeta {
    let host = buildBatchMeta(alloc, batch, this.scratch);
    if (host.words.buffer !== this.scratch.buffer) {
      this.scratch = new Uint32Array(Math.max(host.words.length, this.scratch.length * 2));
      host = buildBatchMeta(alloc, batch, this.scratch);
    }
    return this.uploadHost(host);
  }

  uploadHost(host: BatchMetaHost): BatchMeta {
    const need = Math.max(host.words.length, 4);
    if (need > this.capWords) {
      if (this.buf) {
        this.rt.flush(); // work recorded against the old buffer must be submitted before it goes
        this.rt.destroy(this.buf);
      }
      this.capWords = Math.max(need, 2 * this.capWords, 1024);
      this.buf = this.rt.createBuffer(this.capWords * 4, 'kv-batch-meta');
    }
    if (host.words.length) this.rt.write(this.buf!, host.words);
    return {
      numTokens: host.numTokens,
      numSeqs: host.numSeqs,
      buffer: this.buf!,
      tokenBase: 0,
      seqBase: host.seqBase,
      tableBase: host.tableBase,
      maxContext: host.maxContext,
      words: host.words,
    };
  }

  destroy(): void {
    if (this.buf) this.rt.destroy(this.buf);
    this.buf = null;
    this.capWords = 0;
  }
}

