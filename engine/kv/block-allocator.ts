import { LorafleetError } from '../../shaders/lib/errors.ts';
// CPU-side block allocator for the paged KV cache (vLLM-style block tables).
//
// The cache holds `numBlocks` fixed-size blocks of `blockSize` token slots. Every sequence owns
// an ordered list of block ids (its block table): token position p of the sequence lives in
// block table[floor(p / blockSize)] at offset p % blockSize, i.e. physical slot
// table[floor(p / blockSize)] * blockSize + p % blockSize.
//
// Allocation is all-or-nothing: allocate() either grows the sequence by the requested number of
// tokens (taking whole blocks from the free list) or changes nothing and returns false, so a
// scheduler can preempt / swap a sequence and retry. allocateOrThrow() throws KvCacheFullError.
// Freed blocks go back on a LIFO free list (recently used blocks are reused first).

export type SeqId = number | string;

/** Thrown by allocateOrThrow() when the cache has too few free blocks. */
export class KvCacheFullError extends LorafleetError {
  readonly seqId: SeqId;
  readonly neededBlocks: number;
  readonly freeBlocks: number;
  constructor(seqId: SeqId, neededBlocks: number, freeBlocks: number) {
    super(`KV cache full: sequence ${String(seqId)} needs ${neededBlocks} more block(s), ${freeBlocks} free`, 'kv_cache_full');
    this.name = 'KvCacheFullError';
    this.seqId = seqId;
    this.neededBlocks = neededBlocks;
    this.freeBlocks = freeBlocks;
  }
}

interface SeqState {
  blocks: number[];
  /** Tokens allocated (positions 0 .. len-1 are valid). */
  len: number;
}

export class BlockAllocator {
  readonly numBlocks: number;
  readonly blockSize: number;
  private freeList: number[];
  private seqs = new Map<SeqId, SeqState>();

  constructor(numBlocks: number, blockSize: number) {
    if (!Number.isInteger(numBlocks) || numBlocks < 1) throw new Error(`BlockAllocator: numBlocks=${numBlocks} must be a positive integer`);
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new Error(`BlockAllocator: blockSize=${blockSize} must be a positive integer`);
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    // Pop from the end: block 0 is handed out first.
    this.freeList = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
  }

  /** Number of free blocks. */
  freeBlocks(): number {
    return this.freeList.length;
  }

  usedBlocks(): number {
    return this.numBlocks - this.freeList.length;
  }

  /** Free token capacity if all free blocks went to fresh sequences. */
  freeTokens(): number {
    return this.freeList.length * this.blockSize;
  }

  has(seqId: SeqId): boolean {
    return this.seqs.has(seqId);
  }

  sequences(): SeqId[] {
    return [...this.seqs.keys()];
  }

  /** Tokens allocated to the sequence (0 if unknown). */
  numTokens(seqId: SeqId): number {
    return this.seqs.get(seqId)?.len ?? 0;
  }

  /** The sequence's block ids in position order (a copy). */
  blockTable(seqId: SeqId): number[] {
    const s = this.seqs.get(seqId);
    if (!s) throw new Error(`KV cache: unknown sequence ${String(seqId)}`);
    return s.blocks.slice();
  }

  /** Read-only view used on the hot path (no copy). */
  blockTableView(seqId: SeqId): readonly number[] {
    const s = this.seqs.get(seqId);
    if (!s) throw new Error(`KV cache: unknown sequence ${String(seqId)}`);
    return s.blocks;
  }

  /** Blocks needed to append numTokens tokens to seqId (a new sequence when unknown). */
  blocksNeeded(seqId: SeqId | undefined, numTokens: number): number {
    checkCount(numTokens);
    const s = seqId === undefined ? undefined : this.seqs.get(seqId);
    const len = s?.len ?? 0;
    const have = s?.blocks.length ?? 0;
    return Math.max(0, Math.ceil((len + numTokens) / this.blockSize) - have);
  }

  /** Whether numTokens more tokens fit for seqId (or for a new sequence when seqId is omitted). */
  canAllocate(numTokens: number, seqId?: SeqId): boolean {
    return this.blocksNeeded(seqId, numTokens) <= this.freeList.length;
  }

  /**
   * Appends numTokens token slots to the sequence (creating it when unknown; numTokens may be 0).
   * All-or-nothing: returns false and changes nothing when there are not enough free blocks.
   */
  allocate(seqId: SeqId, numTokens: number): boolean {
    const need = this.blocksNeeded(seqId, numTokens);
    if (need > this.freeList.length) return false;
    let s = this.seqs.get(seqId);
    if (!s) this.seqs.set(seqId, (s = { blocks: [], len: 0 }));
    for (let i = 0; i < need; i++) s.blocks.push(this.freeList.pop()!);
    s.len += numTokens;
    return true;
  }

  /** allocate(), throwing KvCacheFullError instead of returning false. */
  allocateOrThrow(seqId: SeqId, numTokens: number): void {
    if (!this.allocate(seqId, numTokens)) {
      throw new KvCacheFullError(seqId, this.blocksNeeded(seqId, numTokens), this.freeList.length);
    }
  }

  /** Shrinks the sequence to numTokens tokens (e.g. rejected speculative tokens), freeing tail blocks. */
  truncate(seqId: SeqId, numTokens: number): void {
    checkCount(numTokens);
    const s = this.seqs.get(seqId);
    if (!s) throw new Error(`KV cache: unknown sequence ${String(seqId)}`);
    if (numTokens > s.len) throw new Error(`KV cache: truncate(${String(seqId)}, ${numTokens}) beyond its ${s.len} tokens`);
    const keep = Math.ceil(numTokens / this.blockSize);
    while (s.blocks.length > keep) this.freeList.push(s.blocks.pop()!);
    s.len = numTokens;
  }

  /** Returns all of the sequence's blocks to the free list; returns how many (0 if unknown). */
  free(seqId: SeqId): number {
    const s = this.seqs.get(seqId);
    if (!s) return 0;
    this.seqs.delete(seqId);
    for (let i = s.blocks.length - 1; i >= 0; i--) this.freeList.push(s.blocks[i]);
    return s.blocks.length;
  }

  /** Physical slot (block * blockSize + offset) of token position pos of the sequence. */
  slot(seqId: SeqId, pos: number): number {
    const s = this.seqs.get(seqId);
    if (!s) throw new Error(`KV cache: unknown sequence ${String(seqId)}`);
    if (!Number.isInteger(pos) || pos < 0 || pos >= s.len) {
      throw new Error(`KV cache: position ${pos} outside sequence ${String(seqId)} (${s.len} tokens allocated)`);
    }
    return s.blocks[Math.floor(pos / this.blockSize)] * this.blockSize + (pos % this.blockSize);
  }

  /** Consistency check (tests): every block is either free or owned by exactly one sequence. */
  validate(): void {
    const seen = new Uint8Array(this.numBlocks);
    const mark = (b: number, what: string) => {
      if (!Number.isInteger(b) || b < 0 || b >= this.numBlocks) throw new Error(`block ${b} out of range (${what})`);
      if (seen[b]) throw new Error(`block ${b} owned twice (${what})`);
      seen[b] = 1;
    };
    for (const b of this.freeList) mark(b, 'free list');
    for (const [id, s] of this.seqs) {
      if (s.blocks.length !== Math.ceil(s.len / this.blockSize)) {
        throw new Error(`sequence ${String(id)}: ${s.blocks.length} blocks for ${s.len} tokens`);
      }
      for (const b of s.blocks) mark(b, `sequence ${String(id)}`);
    }
    if (seen.some((x) => !x)) throw new Error('leaked block: neither free nor owned');
  }
}

function checkCount(n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new Error(`KV cache: token count ${n} must be a non-negative integer`);
}
