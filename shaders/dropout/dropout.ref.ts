// float64 reference for shaders/dropout: the same PCG hash as the kernel (32-bit integer math via
// Math.imul), so masks agree bit for bit; the scaling is float64.

export function pcgRef(v: number): number {
  const s = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((w >>> 22) ^ w) >>> 0;
}

/** keep[i] for i < n: pcg(pcg(seed) + offset + i) >= round(p·2^32). */
export function dropoutKeepRef(n: number, p: number, seed: number, offset = 0): Uint8Array {
  const th = Math.min(0xffffffff, Math.round(p * 2 ** 32));
  const h = pcgRef(seed >>> 0);
  return Uint8Array.from({ length: n }, (_, i) => (pcgRef((h + offset + i) >>> 0) >= th ? 1 : 0));
}

export function dropoutRef(x: ArrayLike<number>, p: number, seed: number, offset = 0): Float64Array {
  const keep = dropoutKeepRef(x.length, p, seed, offset);
  return Float64Array.from(x, (v, i) => (keep[i] ? v / (1 - p) : 0));
}
