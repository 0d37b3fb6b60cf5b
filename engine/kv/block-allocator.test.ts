import { describe, test, expect } from 'vitest';
import { BlockAllocator, KvCacheFullError } from './block-allocator.ts';
import { buildBatchMeta, TOKEN_WORDS } from './paged-cache.ts';
import { uniform01 } from '../../shaders/lib/random.ts';

const rng = uniform01;

describe('BlockAllocator', () => {
  test('allocate grows block tables by whole blocks; free returns them', () => {
    const a = new BlockAllocator(10, 4);
    expect(a.freeBlocks()).toBe(10);
    expect(a.allocate('x', 0)).toBe(true); // registers the sequence, no blocks
    expect(a.blockTable('x')).toEqual([]);
    expect(a.allocate('x', 5)).toBe(true); // 2 blocks
    expect(a.blockTable('x')).toHaveLength(2);
    expect(a.numTokens('x')).toBe(5);
    expect(a.allocate('x', 3)).toBe(true); // 8 tokens: still 2 blocks
    expect(a.blockTable('x')).toHaveLength(2);
    expect(a.allocate('x', 1)).toBe(true); // 9 tokens: 3 blocks
    expect(a.blockTable('x')).toHaveLength(3);
    expect(a.freeBlocks()).toBe(7);
    expect(a.allocate(7, 4)).toBe(true);
    expect(a.freeBlocks()).toBe(6);
    const tx = a.blockTable('x');
    expect(new Set([...tx, ...a.blockTable(7)]).size).toBe(4);
    // slot = block * blockSize + offset
    expect(a.slot('x', 6)).toBe(tx[1] * 4 + 2);
    expect(() => a.slot('x', 9)).toThrow();
    expect(a.free('x')).toBe(3);
    expect(a.free('x')).toBe(0);
    expect(a.has('x')).toBe(false);
    expect(a.freeBlocks()).toBe(9);
    a.validate();
  });

  test('out of blocks: allocate returns false and changes nothing; allocateOrThrow throws KvCacheFullError', () => {
    const a = new BlockAllocator(3, 16);
    expect(a.allocate(1, 40)).toBe(true); // 3 blocks
    expect(a.freeBlocks()).toBe(0);
    expect(a.canAllocate(8, 1)).toBe(true); // fits in the last block's 8 free slots
    expect(a.canAllocate(9, 1)).toBe(false);
    expect(a.canAllocate(1)).toBe(false); // a new sequence needs a block
    expect(a.allocate(1, 9)).toBe(false);
    expect(a.numTokens(1)).toBe(40);
    expect(a.allocate(2, 1)).toBe(false);
    expect(a.has(2)).toBe(false);
    let err: unknown;
    try {
      a.allocateOrThrow(2, 20);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KvCacheFullError);
    expect((err as KvCacheFullError).neededBlocks).toBe(2);
    expect((err as KvCacheFullError).freeBlocks).toBe(0);
    expect(a.allocate(1, 8)).toBe(true);
    expect(a.numTokens(1)).toBe(48);
    a.validate();
  });

  test('truncate frees tail blocks only', () => {
    const a = new BlockAllocator(8, 4);
    a.allocateOrThrow('s', 13); // 4 blocks
    const t = a.blockTable('s');
    a.truncate('s', 8);
    expect(a.blockTable('s')).toEqual(t.slice(0, 2));
    expect(a.numTokens('s')).toBe(8);
    expect(a.freeBlocks()).toBe(6);
    a.truncate('s', 0);
    expect(a.blockTable('s')).toEqual([]);
    expect(() => a.truncate('s', 1)).toThrow();
    a.validate();
  });

  test('random alloc/grow/truncate/free never leaks', () => {
    const rand = rng(7);
    const a = new BlockAllocator(64, 5);
    const start = a.freeBlocks();
    const live = new Map<number, number>();
    let refused = 0;
    for (let step = 0; step < 3000; step++) {
      const r = rand();
      const id = Math.floor(rand() * 12);
      if (r < 0.55) {
        const n = Math.floor(rand() * 30);
        const could = a.canAllocate(n, a.has(id) ? id : undefined);
        const ok = a.allocate(id, n);
        if (ok !== could) throw new Error(`step ${step}: canAllocate said ${could}, allocate did ${ok}`);
        if (ok) live.set(id, (live.get(id) ?? 0) + n);
        else refused++;
      } else if (r < 0.7 && live.has(id)) {
        const n = Math.floor(rand() * (live.get(id)! + 1));
        a.truncate(id, n);
        live.set(id, n);
      } else {
        a.free(id);
        live.delete(id);
      }
      for (const [sid, n] of live) {
        if (a.numTokens(sid) !== n || a.blockTable(sid).length !== Math.ceil(n / 5)) {
          throw new Error(`step ${step}: sequence ${sid} has ${a.numTokens(sid)} tokens / ${a.blockTable(sid).length} blocks, expected ${n}`);
        }
      }
      if (step % 50 === 0) a.validate();
    }
    expect(refused).toBeGreaterThan(0); // the test did hit a full cache
    for (const id of [...live.keys()]) a.free(id);
    expect(a.freeBlocks()).toBe(start);
    expect(a.sequences()).toEqual([]);
    a.validate();
  });
});

describe('buildBatchMeta', () => {
  test('token records, per-entry offsets and tables', () => {
    const a = new BlockAllocator(16, 4);
    a.allocateOrThrow('a', 3);
    a.allocateOrThrow('b', 6);
    a.allocateOrThrow('a', 4); // 'a' now spans blocks [0, 3]: non-contiguous
    const m = buildBatchMeta(a, [
      { seqId: 'a', positions: [3, 4, 5, 6] },
      { seqId: 'b', positions: [5] },
    ]);
    expect(m.numTokens).toBe(5);
    expect(m.numSeqs).toBe(2);
    expect(m.seqBase).toBe(5 * TOKEN_WORDS);
    expect(m.tableBase).toBe(m.seqBase + 4);
    expect(m.maxContext).toBe(7);
    const ta = a.blockTable('a'), tb = a.blockTable('b');
    expect(ta).toEqual([0, 3]);
    expect(tb).toEqual([1, 2]);
    const w = [...m.words];
    expect(w.slice(m.tableBase)).toEqual([...ta, ...tb]);
    expect(w.slice(m.seqBase, m.tableBase)).toEqual([m.tableBase, 7, m.tableBase + 2, 6]);
    const rec = (t: number) => w.slice(TOKEN_WORDS * t, TOKEN_WORDS * (t + 1));
    expect(rec(0)).toEqual([m.tableBase, 3, 0 * 4 + 3, 0]);
    expect(rec(1)).toEqual([m.tableBase, 4, 3 * 4 + 0, 0]);
    expect(rec(3)).toEqual([m.tableBase, 6, 3 * 4 + 2, 0]);
    expect(rec(4)).toEqual([m.tableBase + 2, 5, 2 * 4 + 1, 1]);
    expect(() => buildBatchMeta(a, [{ seqId: 'b', positions: [6] }])).toThrow(/outside/);
    expect(() => buildBatchMeta(a, [{ seqId: 'zz', positions: [0] }])).toThrow(/unknown/);
  });
});
