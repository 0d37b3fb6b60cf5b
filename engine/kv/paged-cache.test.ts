// PagedKvCache on the GPU (SwiftShader on CPU machines): capacity, page buffers, batch metadata
// upload reusing its buffer. Kernel correctness is in shaders/kv_write.check.ts and
// shaders/attention.check.ts.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { PagedKvCache, KvCacheFullError, TOKEN_WORDS, type BatchEntry } from './paged-cache.ts';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt?.destroyAll());

describe('PagedKvCache', () => {
  test('capacity from a block count or a byte budget; page buffers per layer', () => {
    const cfg = { numLayers: 3, numKvHeads: 2, headDim: 8, blockSize: 4 };
    const before = rt.stats().allocatedBytes;
    const a = new PagedKvCache(rt, { ...cfg, numBlocks: 10 });
    expect(a.numBlocks).toBe(10);
    expect(a.k).toHaveLength(3);
    expect(a.v).toHaveLength(3);
    const perLayer = 10 * 2 * 4 * 8 * 4;
    expect(a.k[0].size).toBe(perLayer);
    expect(a.bytes).toBe(2 * 3 * perLayer);
    expect(rt.stats().allocatedBytes - before).toBe(2 * 3 * perLayer);
    a.destroy();
    expect(rt.stats().allocatedBytes).toBe(before);

    const perBlock = PagedKvCache.bytesPerBlock(cfg);
    expect(perBlock).toBe(2 * 3 * 2 * 4 * 8 * 4);
    const b = PagedKvCache.create(rt, { ...cfg, maxBytes: 7.5 * perBlock });
    expect(b.numBlocks).toBe(7);
    expect(b.freeBlocks()).toBe(7);
    b.destroy();

    expect(() => new PagedKvCache(rt, { ...cfg, maxBytes: perBlock - 1 })).toThrow(/capacity/);
    expect(() => new PagedKvCache(rt, cfg)).toThrow(/numBlocks or maxBytes/);
    const maxBinding = rt.device.limits.maxStorageBufferBindingSize;
    const blockBytes = PagedKvCache.blockBytesPerLayer(cfg);
    expect(() => new PagedKvCache(rt, { ...cfg, numBlocks: Math.floor(maxBinding / blockBytes) + 1 })).toThrow(/binding limit/);
  });

  test('full cache: allocate false / KvCacheFullError; free returns every block', () => {
    const c = new PagedKvCache(rt, { numLayers: 1, numKvHeads: 1, headDim: 4, blockSize: 16, numBlocks: 3 });
    expect(c.allocate('a', 33)).toBe(true);
    expect(c.canAllocate(1, 'a')).toBe(true);
    expect(c.canAllocate(16, 'a')).toBe(false);
    expect(c.allocate('b', 1)).toBe(false);
    expect(() => c.allocateOrThrow('b', 1)).toThrow(KvCacheFullError);
    expect(c.free('a')).toBe(3);
    expect(c.freeBlocks()).toBe(3);
    c.destroy();
  });

  test('uploadTables writes the metadata words and reuses its buffer (grows only when needed)', async () => {
    const c = new PagedKvCache(rt, { numLayers: 1, numKvHeads: 1, headDim: 4, blockSize: 2, numBlocks: 4096 });
    c.allocateOrThrow(1, 5);
    c.allocateOrThrow(2, 3);
    const batch: BatchEntry[] = [
      { seqId: 2, positions: [1, 2] },
      { seqId: 1, positions: [4] },
    ];
    const m1 = c.uploadTables(batch);
    const words = await rt.readU32(m1.buffer, m1.words.length);
    expect([...words]).toEqual([...m1.words]);
    expect(m1.numTokens).toBe(3);
    expect(words[TOKEN_WORDS * 2 + 1]).toBe(4); // token 2 = seq 1, position 4
    expect(words[TOKEN_WORDS * 2 + 2]).toBe(c.blockTable(1)[2] * 2 + 0);

    const stats0 = rt.stats();
    for (let step = 0; step < 20; step++) {
      c.allocateOrThrow(1, 1);
      c.allocateOrThrow(2, 1);
      c.uploadTables([
        { seqId: 1, positions: [c.numTokens(1) - 1] },
        { seqId: 2, positions: [c.numTokens(2) - 1] },
      ]);
    }
    await rt.sync();
    const stats1 = rt.stats();
    expect(stats1.allocatedBytes).toBe(stats0.allocatedBytes);
    expect(stats1.liveBuffers).toBe(stats0.liveBuffers);

    // a much larger batch grows the buffer once; the old one is destroyed
    c.allocateOrThrow(3, 3000);
    const big = c.uploadTables([{ seqId: 3, positions: Array.from({ length: 3000 }, (_, i) => i) }]);
    expect(big.buffer).not.toBe(m1.buffer);
    expect(rt.stats().liveBuffers).toBe(stats0.liveBuffers);
    const back = await rt.readU32(big.buffer, big.words.length);
    expect(back[TOKEN_WORDS * 2999 + 1]).toBe(2999);
    expect(back[TOKEN_WORDS * 2999 + 2]).toBe(c.allocator.slot(3, 2999));
    c.destroy();
  });
});
