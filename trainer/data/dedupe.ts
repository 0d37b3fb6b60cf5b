/**
 * De-duplication.
 *
 * Exact: SHA-256 of the text after aggressive normalisation (NFKC, lower case, punctuation and whitespace
 * collapsed) — the first occurrence is kept.
 *
 * Near: MinHash over word shingles with LSH banding, then verification.
 *   - shingles: 3-word shingles of the normalised text (texts of < 3 words use the words themselves);
 *   - 120 hash functions (32-bit, seeded murmur3 finaliser over the shingle's FNV-1a hash);
 *   - LSH: 20 bands × 6 rows. A pair with Jaccard s becomes a candidate with probability 1 − (1 − s^6)^20:
 *     s = 0.8 → 0.998, s = 0.9 → 1.000, s = 0.7 → 0.92, s = 0.5 → 0.27, s = 0.3 → 0.015.
 *     The S-curve's midpoint (1/b)^(1/r) = (1/20)^(1/6) ≈ 0.61 sits well below the 0.8 target, so recall at
 *     0.8 is ≈ 99.8 % per pair;
 *   - every candidate pair is then verified on the exact Jaccard of the shingle sets (≥ threshold, default 0.8),
 *     so false positives from the permissive banding cost time, not precision.
 * Clusters are formed with union-find; the member kept is the best by a rank (e.g. the canonical/newest copy:
 * not under legacy/ or old/, highest version, newest mtime — see `sourceRank`), ties to the earliest.
 */
import { fnv1a, normalizeForHash, sha256 } from './util.ts';

export const MINHASH = { shingle: 3, numHashes: 120, bands: 20, rows: 6, threshold: 0.8 } as const;

export function candidateProbability(s: number, bands: number = MINHASH.bands, rows: number = MINHASH.rows): number {
  return 1 - (1 - s ** rows) ** bands;
}

export function shingles(text: string, k: number = MINHASH.shingle): Set<string> {
  const words = normalizeForHash(text).split(' ').filter(Boolean);
  const out = new Set<string>();
  if (words.length < k) {
    if (words.length) out.add(words.join(' '));
    return out;
  }
  for (let i = 0; i + k <= words.length; i++) out.add(words.slice(i, i + k).join(' '));
  return out;
}

export function jaccard(a: Set<string>, b: Set<string>): number {
  if (!a.size && !b.size) return 1;
  let inter = 0;
  const [small, big] = a.size < b.size ? [a, b] : [b, a];
  for (const x of small) if (big.has(x)) inter++;
  return inter / (a.size + b.size - inter);
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const SEEDS = Array.from({ length: 1024 }, (_, i) => fmix32(0x9e3779b9 ^ Math.imul(i + 1, 0x27d4eb2f)));

export function minhash(sh: Set<string>, numHashes: number = MINHASH.numHashes): Uint32Array {
  const sig = new Uint32Array(numHashes).fill(0xffffffff);
  for (const s of sh) {
    const h = fnv1a(s);
    for (let i = 0; i < numHashes; i++) {
      const v = fmix32(h ^ (SEEDS[i] as number));
      if (v < (sig[i] as number)) sig[i] = v;
    }
  }
  return sig;
}

export function estimateJaccard(a: Uint32Array, b: Uint32Array): number {
  let eq = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) eq++;
  return eq / a.length;
}

class UnionFind {
  parent: number[];
  constructor(n: number) {
    this.parent = Array.from({ length: n }, (_, i) => i);
  }
  find(x: number): number {
    let r = x;
    while (this.parent[r] !== r) r = this.parent[r] as number;
    while (this.parent[x] !== r) {
      const nx = this.parent[x] as number;
      this.parent[x] = r;
      x = nx;
    }
    return r;
  }
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent[Math.max(ra, rb)] = Math.min(ra, rb); // the earliest index is the root
  }
}

export interface LshOptions {
  shingle?: number;
  numHashes?: number;
  bands?: number;
  rows?: number;
  threshold?: number;
}

/** MinHash-LSH index over a list of texts. */
export class NearDupIndex {
  readonly shingleSets: Set<string>[] = [];
  readonly sigs: Uint32Array[] = [];
  private readonly buckets: Map<number, number[]>[];
  readonly o: Required<LshOptions>;
  constructor(opts: LshOptions = {}) {
    this.o = { ...MINHASH, ...opts };
    if (this.o.bands * this.o.rows > this.o.numHashes) throw new Error('bands × rows must be ≤ numHashes');
    this.buckets = Array.from({ length: this.o.bands }, () => new Map());
  }
  /** One bucket key per band: a 53-bit hash of the band's rows (two independent 32-bit mixes). */
  private keys(sig: Uint32Array): number[] {
    const r = this.o.rows;
    const out: number[] = new Array(this.o.bands);
    for (let b = 0; b < this.o.bands; b++) {
      let h1 = 0x811c9dc5;
      let h2 = 0x9747b28c;
      for (let i = b * r; i < b * r + r; i++) {
        const v = sig[i] as number;
        h1 = fmix32(h1 ^ v);
        h2 = fmix32(Math.imul(h2, 31) + v);
      }
      out[b] = (h1 >>> 0) * 0x200000 + (h2 & 0x1fffff);
    }
    return out;
  }
  /** Candidate ids for a text (not verified). */
  private probe(sig: Uint32Array): Set<number> {
    const c = new Set<number>();
    this.keys(sig).forEach((k, b) => {
      for (const id of this.buckets[b]?.get(k) ?? []) c.add(id);
    });
    return c;
  }
  add(text: string): number {
    const sh = shingles(text, this.o.shingle);
    const sig = minhash(sh, this.o.numHashes);
    const id = this.sigs.length;
    this.shingleSets.push(sh);
    this.sigs.push(sig);
    this.keys(sig).forEach((k, b) => {
      const m = this.buckets[b] as Map<number, number[]>;
      const arr = m.get(k);
      if (arr) arr.push(id);
      else m.set(k, [id]);
    });
    return id;
  }
  /** Verified near-duplicates (exact shingle Jaccard ≥ threshold) of `text` among indexed items. */
  query(text: string): { id: number; jaccard: number }[] {
    const sh = shingles(text, this.o.shingle);
    const sig = minhash(sh, this.o.numHashes);
    const out: { id: number; jaccard: number }[] = [];
    for (const id of this.probe(sig)) {
      const j = jaccard(sh, this.shingleSets[id] as Set<string>);
      if (j >= this.o.threshold) out.push({ id, jaccard: j });
    }
    return out;
  }
  /** All verified near-duplicate pairs among indexed items (i < j). */
  pairs(): { a: number; b: number; jaccard: number }[] {
    const seen = new Set<number>();
    const n = this.sigs.length;
    const out: { a: number; b: number; jaccard: number }[] = [];
    for (const m of this.buckets) {
      for (const ids of m.values()) {
        if (ids.length < 2) continue;
        for (let x = 0; x < ids.length; x++) {
          for (let y = x + 1; y < ids.length; y++) {
            const a = ids[x] as number;
            const b = ids[y] as number;
            const key = a < b ? a * n + b : b * n + a;
            if (seen.has(key)) continue;
            seen.add(key);
            const j = jaccard(this.shingleSets[a] as Set<string>, this.shingleSets[b] as Set<string>);
            if (j >= this.o.threshold) out.push(a < b ? { a, b, jaccard: j } : { a: b, b: a, jaccard: j });
          }
        }
      }
    }
    return out;
  }
}

export interface DedupeResult<T> {
  kept: T[];
  exactDuplicates: { item: T; of: T }[];
  nearDuplicates: { item: T; of: T; jaccard: number }[];
  /** for every input index, the index of the item it was merged into (itself when kept) */
  clusterOf: number[];
}

export interface DedupeOptions<T = unknown> extends LshOptions {
  /**
   * Which member of a cluster survives: the one with the smallest rank (compared element by element when arrays),
   * ties to the earliest. Without it the earliest item is kept.
   */
  rank?: (item: T, index: number) => number | number[];
}

function cmpRank(a: number | number[], b: number | number[]): number {
  const x = Array.isArray(a) ? a : [a];
  const y = Array.isArray(b) ? b : [b];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

/** Exact then near de-duplication; of every cluster the best-ranked item (or the earliest) is kept. */
export function dedupe<T>(items: T[], textOf: (t: T) => string, opts: DedupeOptions<T> = {}): DedupeResult<T> {
  const exactDuplicates: { item: T; of: T }[] = [];
  const nearDuplicates: { item: T; of: T; jaccard: number }[] = [];
  const ranks = opts.rank ? items.map((it, i) => (opts.rank as NonNullable<DedupeOptions<T>['rank']>)(it, i)) : null;
  const better = (a: number, b: number) => (ranks ? cmpRank(ranks[a] as number, ranks[b] as number) < 0 : false) || (!ranks && a < b);
  // 1. exact groups (normalised hash); each group's representative is its best-ranked member
  const hashes = items.map((it) => sha256(normalizeForHash(textOf(it))));
  const groupOf = new Map<string, number[]>();
  hashes.forEach((h, i) => {
    const g = groupOf.get(h);
    if (g) g.push(i);
    else groupOf.set(h, [i]);
  });
  const exactRep = new Array<number>(items.length);
  const survivors: number[] = [];
  for (const g of groupOf.values()) {
    let r = g[0] as number;
    for (const i of g) if (better(i, r)) r = i;
    for (const i of g) exactRep[i] = r;
    survivors.push(r);
  }
  survivors.sort((a, b) => a - b);
  // 2. near clusters among the exact representatives (MinHash-LSH, verified); representative = best-ranked member
  const uf = new UnionFind(survivors.length);
  const near = (opts.threshold ?? MINHASH.threshold) <= 1;
  const idx = new NearDupIndex(opts);
  if (near) for (const i of survivors) idx.add(textOf(items[i] as T));
  for (const p of near ? idx.pairs() : []) uf.union(p.a, p.b);
  const clusterRep = new Map<number, number>();
  survivors.forEach((orig, local) => {
    const root = uf.find(local);
    const cur = clusterRep.get(root);
    if (cur === undefined || better(orig, cur)) clusterRep.set(root, orig);
  });
  const finalRep = new Map<number, number>();
  survivors.forEach((orig, local) => finalRep.set(orig, clusterRep.get(uf.find(local)) as number));
  const clusterOf = items.map((_, i) => finalRep.get(exactRep[i] as number) as number);
  const kept: T[] = [];
  items.forEach((it, i) => {
    const er = exactRep[i] as number;
    if (er !== i) exactDuplicates.push({ item: it, of: items[er] as T });
    else if (clusterOf[i] !== i) {
      const r = clusterOf[i] as number;
      nearDuplicates.push({ item: it, of: items[r] as T, jaccard: jaccard(shingles(textOf(it), idx.o.shingle), shingles(textOf(items[r] as T), idx.o.shingle)) });
    } else kept.push(it);
  });
  return { kept, exactDuplicates, nearDuplicates, clusterOf };
}

/** Path hints that mark a copy as superseded (folders or file names). */
export const LEGACY_PATH = /(^|[/_.-])(legacy|old|archive[sd]?|deprecated|obsolete|backup|bak|attic|outdated|superseded)([/_.-]|$)|~$/i;

/** Version in a file name: overview-v2.md, spec_v10.txt, guide.version-3.html → 2, 10, 3 (0 when none). */
export function versionOf(source: string): number {
  const name = source.split('#')[0]?.split('/').pop() ?? '';
  const m = /(?:^|[-_. ])v(?:ersion)?[-_ ]?(\d+)(?:[._-]\d+)*(?=[-_. ]|$)/i.exec(name.replace(/\.[a-z0-9]+$/i, ''));
  return m ? Number(m[1]) : 0;
}

export type KeepPolicy = 'canonical' | 'newest' | 'first';

/**
 * Rank for the copy to keep, smaller is better.
 *  canonical: not under a legacy/old/archive… path, then the highest version in the name, then the newest mtime;
 *  newest: the newest mtime, then the path hints;
 *  first: input order.
 */
export function sourceRank(policy: KeepPolicy, legacy: RegExp = LEGACY_PATH): (source: string, mtime?: string) => number[] {
  return (source, mtime) => {
    const path = source.split('#')[0] ?? source;
    const old = legacy.test(path) ? 1 : 0;
    const t = mtime ? -Date.parse(mtime) || 0 : 0;
    if (policy === 'first') return [];
    if (policy === 'newest') return [t, old, -versionOf(path)];
    return [old, -versionOf(path), t];
  };
}

/** Pairs above the threshold found by brute force — ground truth for tests and small audits. */
export function bruteForcePairs(texts: string[], threshold: number = MINHASH.threshold, k: number = MINHASH.shingle): { a: number; b: number; jaccard: number }[] {
  const sh = texts.map((t) => shingles(t, k));
  const out: { a: number; b: number; jaccard: number }[] = [];
  for (let a = 0; a < texts.length; a++)
    for (let b = a + 1; b < texts.length; b++) {
      const j = jaccard(sh[a] as Set<string>, sh[b] as Set<string>);
      if (j >= threshold) out.push({ a, b, jaccard: j });
    }
  return out;
}
