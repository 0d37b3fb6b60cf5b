import { describe, expect, it } from 'vitest';
import { bf16BitsToFloat, bytesToFloat32, f16BitsToFloat, float32ToBytes, floatToBf16Bits, floatToF16Bits } from './dtype.ts';
import { openSafetensors, parseSafetensorsBuffer, readTensorF32, readTensorRaw, writeSafetensors } from './safetensors.ts';
import { MemorySource } from './source.ts';

describe('f16 / bf16 conversion', () => {
  // [bits, value] pairs from IEEE 754 binary16 tables
  const f16: [number, number][] = [
    [0x0000, 0], [0x8000, -0], [0x3c00, 1], [0xbc00, -1], [0x4000, 2], [0x3555, 0.333251953125], [0x7bff, 65504],
    [0x0400, 2 ** -14], [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x3bff, 0.99951171875], [0x3c01, 1.0009765625],
    [0xc100, -2.5], [0x7c00, Infinity], [0xfc00, -Infinity],
  ];
  it('f16 bits → float exact', () => {
    for (const [b, v] of f16) expect(Object.is(f16BitsToFloat(b), v)).toBe(true);
    expect(f16BitsToFloat(0x7e00)).toBeNaN();
  });
  it('float → f16 bits, round to nearest even, overflow, subnormals', () => {
    for (const [b, v] of f16) expect(floatToF16Bits(v)).toBe(b);
    expect(floatToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even (down)
    expect(floatToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(floatToF16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // above tie → up
    expect(floatToF16Bits(65520)).toBe(0x7c00); // rounds past max → inf
    expect(floatToF16Bits(65519)).toBe(0x7bff);
    expect(floatToF16Bits(2 ** -25)).toBe(0x0000); // tie between 0 and min subnormal → 0 (even)
    expect(floatToF16Bits(3 * 2 ** -26)).toBe(0x0001);
    expect(floatToF16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // largest subnormal rounds up into normal
    expect(floatToF16Bits(NaN) & 0x7fff).toBeGreaterThan(0x7c00);
    expect(floatToF16Bits(1e-10)).toBe(0);
  });
  it('every f16 value round-trips', () => {
    const bad: number[] = [];
    let nan = 0;
    for (let b = 0; b < 0x10000; b++) {
      const v = f16BitsToFloat(b);
      if (Number.isNaN(v)) nan++;
      else if (floatToF16Bits(v) !== b) bad.push(b);
    }
    expect(bad).toEqual([]);
    expect(nan).toBe(2046);
  });
  it('bf16 exact and rounding', () => {
    const pairs: [number, number][] = [[0x3f80, 1], [0xbf80, -1], [0x4049, 3.140625], [0x3e80, 0.25], [0x7f80, Infinity], [0x0001, 2 ** -133], [0x7f7f, 3.3895313892515355e38]];
    for (const [b, v] of pairs) {
      expect(bf16BitsToFloat(b)).toBe(v);
      expect(floatToBf16Bits(v)).toBe(b);
    }
    expect(floatToBf16Bits(Math.PI)).toBe(0x4049);
    expect(floatToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(floatToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(bf16BitsToFloat(floatToBf16Bits(NaN))).toBeNaN();
  });
  it('bulk decode matches scalar decode', () => {
    const vals = [0, 1, -2.5, 0.333251953125, 65504, 2 ** -24];
    expect(Array.from(bytesToFloat32(float32ToBytes(vals, 'F16'), 'F16'))).toEqual(vals);
    expect(Array.from(bytesToFloat32(float32ToBytes([1, -3.140625, 0.25], 'BF16'), 'BF16'))).toEqual([1, -3.140625, 0.25]);
  });
});

function sample() {
  return writeSafetensors(
    {
      a: { dtype: 'F32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6.5] },
      b: { dtype: 'F16', shape: [4], data: [0.5, -1, 65504, 2 ** -24] },
      c: { dtype: 'BF16', shape: [1, 2], data: [3.140625, -0.25] },
      empty: { dtype: 'F32', shape: [0, 4], data: [] },
    },
    { format: 'pt' },
  );
}

/** Rewrite the JSON header of a file (keeping the data) — for corruption tests. */
function patchHeader(file: Uint8Array, edit: (h: Record<string, any>) => void): Uint8Array {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const h = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n)));
  edit(h);
  const j = new TextEncoder().encode(JSON.stringify(h));
  const out = new Uint8Array(8 + j.byteLength + file.byteLength - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(j.byteLength), true);
  out.set(j, 8);
  out.set(file.subarray(8 + n), 8 + j.byteLength);
  return out;
}

describe('safetensors', () => {
  it('writer → reader round trip (F32 / F16 / BF16 / empty, metadata, raw bytes)', async () => {
    const file = sample();
    expect((Number(new DataView(file.buffer).getBigUint64(0, true)) + 8) % 8).toBe(0);
    const src = new MemorySource({ 'model.safetensors': file });
    const st = await openSafetensors(src);
    expect(st.metadata).toEqual({ format: 'pt' });
    expect([...st.tensors.keys()]).toEqual(['a', 'b', 'c', 'empty']);
    expect(st.tensors.get('a')!.shape).toEqual([2, 3]);
    expect(Array.from(await readTensorF32(src, st.tensors.get('a')!))).toEqual([1, 2, 3, 4, 5, 6.5]);
    expect(Array.from(await readTensorF32(src, st.tensors.get('b')!))).toEqual([0.5, -1, 65504, 2 ** -24]);
    expect(Array.from(await readTensorF32(src, st.tensors.get('c')!))).toEqual([3.140625, -0.25]);
    expect((await readTensorF32(src, st.tensors.get('empty')!)).length).toBe(0);
    const raw = await readTensorRaw(src, st.tensors.get('b')!);
    expect(Array.from(new Uint16Array(raw.buffer, raw.byteOffset, 4))).toEqual([0x3800, 0xbc00, 0x7bff, 0x0001]);
    // raw bytes written back give the identical file section
    const again = writeSafetensors({ b: { dtype: 'F16', shape: [4], data: raw } });
    expect(Array.from(await readTensorF32(new MemorySource({ x: again }), parseSafetensorsBuffer(again, 'x').tensors.get('b')!))).toEqual([0.5, -1, 65504, 2 ** -24]);
  });

  it('writer rejects data that does not match the shape', () => {
    expect(() => writeSafetensors({ a: { dtype: 'F32', shape: [2, 2], data: [1, 2, 3] } })).toThrow(/tensor "a": shape \[2, 2\] × F32 needs 16 bytes, data has 12/);
  });

  const cases: [string, (f: Uint8Array) => Uint8Array, RegExp][] = [
    ['truncated file', (f) => f.subarray(0, f.byteLength - 3), /model\.safetensors: tensor "c": data_offsets \[\d+, \d+\] run past the end of the data/],
    ['truncated header', (f) => f.subarray(0, 20), /model\.safetensors: header length \d+ runs past the end of the 20-byte file/],
    ['too short', (f) => f.subarray(0, 5), /too short for a safetensors header/],
    ['absurd header length', (f) => { const g = f.slice(); new DataView(g.buffer).setBigUint64(0, 1n << 40n, true); return g; }, /header length 1099511627776 exceeds/],
    ['header not JSON', (f) => { const g = f.slice(); g[9] = 0x7b; g[8] = 0x7b; return g; }, /header is not valid UTF-8 JSON/],
    ['offsets lying (span ≠ shape)', (f) => patchHeader(f, (h) => { h.a.data_offsets = [0, 20]; }), /tensor "a": shape \[2, 3\] × F32 needs 24 bytes but data_offsets \[0, 20\] span 20/],
    ['offsets past end', (f) => patchHeader(f, (h) => { h.c.data_offsets = [1000, 1004]; }), /tensor "c": data_offsets \[1000, 1004\] run past the end/],
    ['overlapping spans', (f) => patchHeader(f, (h) => { h.b.data_offsets = [16, 24]; }), /tensor "b" bytes \[16, 24\) overlap tensor "a" \[0, 24\)/],
    ['wrong shape', (f) => patchHeader(f, (h) => { h.a.shape = [3, 3]; }), /tensor "a": shape \[3, 3\] × F32 needs 36 bytes but data_offsets \[0, 24\] span 24/],
    ['end before begin', (f) => patchHeader(f, (h) => { h.a.data_offsets = [24, 0]; }), /tensor "a": data_offsets \[24, 0\] end before begin/],
    ['I8 dtype', (f) => patchHeader(f, (h) => { h.empty.dtype = 'I8'; }), /tensor "empty": dtype I8 is not supported \(supported: F32, F16, BF16\); quantised/],
    ['unknown dtype', (f) => patchHeader(f, (h) => { h.empty.dtype = 'Q4'; }), /tensor "empty": dtype Q4 is unknown/],
    ['bad shape', (f) => patchHeader(f, (h) => { h.a.shape = [2, -3]; }), /tensor "a": shape must be an array of non-negative integers/],
    ['gap', (f) => patchHeader(f, (h) => { delete h.b; }), /gap of 8 bytes before tensor "c"/],
    ['trailing bytes', (f) => { const g = new Uint8Array(f.byteLength + 4); g.set(f); return g; }, /trailing bytes or wrong offsets/],
  ];
  for (const [what, corrupt, re] of cases) {
    it(`rejects: ${what}`, async () => {
      const bad = corrupt(sample());
      expect(() => parseSafetensorsBuffer(bad)).toThrow(re);
      // through a source, the error comes before any tensor byte is read
      const reads: [number, number][] = [];
      const src = new MemorySource({ 'model.safetensors': bad });
      const orig = src.readBytes.bind(src);
      src.readBytes = (f, s = 0, e) => { reads.push([s, e ?? -1]); return orig(f, s, e); };
      await expect(openSafetensors(src)).rejects.toThrow(re);
      const n = bad.byteLength >= 8 ? Number(new DataView(bad.buffer, bad.byteOffset).getBigUint64(0, true)) : 0;
      for (const [, e] of reads) expect(e).toBeLessThanOrEqual(8 + n);
    });
  }

  it('sharded index: reads all shards, checks the weight_map', async () => {
    const s1 = writeSafetensors({ x: { dtype: 'F32', shape: [2], data: [1, 2] } });
    const s2 = writeSafetensors({ y: { dtype: 'BF16', shape: [1], data: [4] } });
    const idx = { metadata: { total_size: 10 }, weight_map: { x: 'model-00001-of-00002.safetensors', y: 'model-00002-of-00002.safetensors' } };
    const files = { 'model-00001-of-00002.safetensors': s1, 'model-00002-of-00002.safetensors': s2, 'model.safetensors.index.json': new TextEncoder().encode(JSON.stringify(idx)) };
    const src = new MemorySource(files);
    const st = await openSafetensors(src);
    expect(st.files).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(Array.from(await readTensorF32(src, st.tensors.get('y')!))).toEqual([4]);
    const idx2 = { weight_map: { ...idx.weight_map, z: 'model-00002-of-00002.safetensors' } };
    await expect(openSafetensors(new MemorySource({ ...files, 'model.safetensors.index.json': new TextEncoder().encode(JSON.stringify(idx2)) }))).rejects.toThrow(
      /model-00002-of-00002\.safetensors: tensor "z" is listed in model\.safetensors\.index\.json but missing from the shard/,
    );
    await expect(openSafetensors(new MemorySource({}))).rejects.toThrow(/neither model\.safetensors nor model\.safetensors\.index\.json found/);
  });
});
