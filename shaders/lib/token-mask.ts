// Grammar token masks for the sampling kernels (shaders/sample, shaders/argmax): the masked
// variant of a kernel reads a u32 bitmask buffer `bits` [masked rows, ceil(vocab/32)] (bit t of
// a row set = token t allowed; XGrammar's layout) and `rowOffsets` [rows] u32: the word offset of
// row r's mask in `bits`, or NO_MASK for a row without one. The kernel source carries three
// markers that this module fills: MASK_DECL (the two bindings, or nothing), and the functions
// mask_begin(row) / mask_allows(i), which the unmasked variant defines as no-ops, so batches
// without constrained rows run exactly the kernels they ran before, and unconstrained rows of a
// masked batch pay one uniform branch.

/** rowOffsets value of an unconstrained row. */
export const NO_MASK = 0xffffffff;

/** u32 words per mask row. */
export const maskWords = (vocab: number): number => Math.ceil(vocab / 32);

/** The GPU side of a step's masks. */
export interface TokenMaskBuffers {
  /** u32 [masked rows, ceil(vocab/32)] */
  bits: GPUBuffer;
  /** u32 [rows]: word offset into bits, or NO_MASK */
  rowOffsets: GPUBuffer;
}

/**
 * WGSL for the markers. `firstBinding`: binding numbers of bits and rowOffsets (bits at
 * firstBinding, rowOffsets after it).
 */
export function withTokenMask(body: string, masked: boolean, firstBinding: number): string {
  const decl = masked
    ? `@group(0) @binding(${firstBinding}) var<storage, read> mask_bits: array<u32>;
@group(0) @binding(${firstBinding + 1}) var<storage, read> mask_row: array<u32>;
var<private> s_moff: u32 = 0xffffffffu;
fn mask_begin(row: u32) { s_moff = mask_row[row]; }
fn mask_allows(i: u32) -> bool {
  return s_moff == 0xffffffffu || ((mask_bits[s_moff + (i >> 5u)] >> (i & 31u)) & 1u) != 0u;
}`
    : `fn mask_begin(row: u32) {}
fn mask_allows(i: u32) -> bool { return true; }`;
  if (!body.includes('MASK_DECL')) throw new Error('withTokenMask: kernel source has no MASK_DECL marker');
  return body.replace('MASK_DECL', decl);
}

/**
 * Packs per-row masks (null = unconstrained) into the two host arrays the kernels read; returns
 * null when no row has a mask (then the unmasked kernel runs).
 */
export function packTokenMasks(masks: ReadonlyArray<Uint32Array | null | undefined>, vocab: number): { bits: Uint32Array; rowOffsets: Uint32Array } | null {
  const W = maskWords(vocab);
  const n = masks.reduce((k, m) => k + (m ? 1 : 0), 0);
  if (n === 0) return null;
  const bits = new Uint32Array(n * W);
  const rowOffsets = new Uint32Array(masks.length).fill(NO_MASK);
  let k = 0;
  masks.forEach((m, r) => {
    if (!m) return;
    if (m.length < W) throw new Error(`packTokenMasks: row ${r} has ${m.length} mask words, vocab ${vocab} needs ${W}`);
    bits.set(m.subarray(0, W), k * W);
    rowOffsets[r] = k * W;
    k++;
  });
  return { bits, rowOffsets };
}

/** Is token t allowed by mask m (null: yes)? */
export const maskAllows = (m: Uint32Array | null | undefined, t: number): boolean => !m || ((m[t >>> 5]! >>> (t & 31)) & 1) === 1;

/**
 * Test masks for the kernel checks (seeded): per row one of none | the k lowest-logit tokens
 * (the mask must decide the result) | one token | a random half | a random sparse set.
 */
export function checkMasks(logits: ArrayLike<number>, rows: number, vocab: number, stride: number, seed: number): Array<Uint32Array | null> {
  let s = seed >>> 0;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const W = maskWords(vocab);
  const out: Array<Uint32Array | null> = [];
  const set = (m: Uint32Array, t: number) => (m[t >>> 5] = (m[t >>> 5]! | (1 << (t & 31))) >>> 0);
  for (let r = 0; r < rows; r++) {
    const kind = r % 5;
    if (kind === 0) { out.push(null); continue; }
    const m = new Uint32Array(W);
    if (kind === 1 || kind === 2) {
      // the k lowest logits (k = 1 for kind 2): far from the unmasked argmax
      const order = Array.from({ length: vocab }, (_, i) => i).sort((a, b) => (logits[r * stride + a]! - logits[r * stride + b]!) || a - b);
      const k = kind === 2 ? 1 : Math.min(vocab, 1 + Math.floor(rnd() * 12));
      for (let j = 0; j < k; j++) set(m, order[j]!);
    } else if (kind === 3) {
      for (let t = 0; t < vocab; t++) if (rnd() < 0.5) set(m, t);
      set(m, vocab - 1);
    } else {
      for (let j = 0; j < 5; j++) set(m, Math.floor(rnd() * vocab));
    }
    // bits past vocab in the last word are set: the kernels must not read them as tokens
    if (vocab % 32) m[W - 1] = (m[W - 1]! | ~((1 << (vocab % 32)) - 1)) >>> 0;
    out.push(m);
  }
  return out;
}
