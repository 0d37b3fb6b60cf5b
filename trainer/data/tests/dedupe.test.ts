import { describe, expect, it } from 'vitest';
import { bruteForcePairs, candidateProbability, dedupe, estimateJaccard, jaccard, LEGACY_PATH, minhash, MINHASH, NearDupIndex, shingles, sourceRank, versionOf } from '../dedupe.ts';
import { rng } from '../util.ts';

/** A corpus with planted duplicates: exact copies (re-cased, re-spaced), near copies with k word edits, and unrelated docs. */
function plantedCorpus(seed: number) {
  const r = rng(seed);
  const syl = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'to', 'vi', 'ze', 'po', 'qua', 'dri', 'fen', 'gal', 'hor', 'jun'];
  const vocab = Array.from({ length: 1500 }, () => Array.from({ length: 2 + Math.floor(r() * 2) }, () => syl[Math.floor(r() * syl.length)]).join(''));
  const word = () => vocab[Math.floor(r() * vocab.length)] as string;
  const docs: { id: number; text: string; kind: 'base' | 'exact' | 'near'; of?: number }[] = [];
  const nBase = 200;
  for (let i = 0; i < nBase; i++) docs.push({ id: docs.length, text: Array.from({ length: 100 + Math.floor(r() * 80) }, word).join(' ') + '.', kind: 'base' });
  // 60 exact duplicates: same words, different case/whitespace/punctuation
  for (let i = 0; i < 60; i++) {
    const of = Math.floor(r() * nBase);
    const t = (docs[of] as { text: string }).text;
    docs.push({ id: docs.length, text: `  ${t.toUpperCase().replace(/ /g, '  \n')} !`, kind: 'exact', of });
  }
  // 240 near copies: 1..14 word substitutions/insertions/deletions, spanning Jaccard ≈ 0.55–0.98
  for (let i = 0; i < 240; i++) {
    const of = Math.floor(r() * nBase);
    const words = (docs[of] as { text: string }).text.split(' ');
    const edits = 1 + Math.floor(r() * 14);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(r() * words.length);
      const op = r();
      if (op < 0.6) words[at] = word();
      else if (op < 0.8) words.splice(at, 0, word());
      else words.splice(at, 1);
    }
    docs.push({ id: docs.length, text: words.join(' '), kind: 'near', of });
  }
  // shuffle deterministically so duplicates are not always after their originals
  for (let i = docs.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [docs[i], docs[j]] = [docs[j] as (typeof docs)[0], docs[i] as (typeof docs)[0]];
  }
  return docs;
}

describe('MinHash-LSH de-duplication', () => {
  it('documents its parameters and the threshold they imply', () => {
    expect(MINHASH.bands * MINHASH.rows).toBeLessThanOrEqual(MINHASH.numHashes);
    const mid = (1 / MINHASH.bands) ** (1 / MINHASH.rows);
    console.log(
      `[dedupe] shingle=${MINHASH.shingle} words, ${MINHASH.numHashes} hashes, ${MINHASH.bands} bands × ${MINHASH.rows} rows → LSH threshold ≈ ${mid.toFixed(3)}; ` +
        `P(candidate | J=0.8) = ${candidateProbability(0.8).toFixed(4)}, J=0.5 → ${candidateProbability(0.5).toFixed(3)}, J=0.3 → ${candidateProbability(0.3).toFixed(4)}`,
    );
    expect(mid).toBeLessThan(0.7);
    expect(candidateProbability(0.8)).toBeGreaterThan(0.99);
  });

  it('MinHash estimates Jaccard', () => {
    const a = shingles('the quick brown fox jumps over the lazy dog and runs far away into the woods tonight');
    const b = shingles('the quick brown fox jumps over the lazy cat and runs far away into the woods tonight');
    const est = estimateJaccard(minhash(a), minhash(b));
    expect(Math.abs(est - jaccard(a, b))).toBeLessThan(0.15);
    expect(estimateJaccard(minhash(a), minhash(a))).toBe(1);
  });

  it('finds planted duplicates: exact recall 100 %, near (J ≥ 0.8) recall and precision ≥ 95 %', () => {
    const docs = plantedCorpus(1234);
    const texts = docs.map((d) => d.text);
    const t0 = performance.now();
    const res = dedupe(
      docs.map((d, i) => ({ ...d, i })),
      (d) => d.text,
    );
    const ms = performance.now() - t0;

    // exact: every planted exact copy must be removed as an exact duplicate
    const exactRemoved = new Set(res.exactDuplicates.map((x) => x.item.i));
    const planted = docs.map((d, i) => [d, i] as const).filter(([d]) => d.kind === 'exact');
    // an exact pair is found when both sides end up in the same exact-duplicate cluster (whichever came first)
    const exactRoot = new Map<number, number>(res.exactDuplicates.map((x) => [x.item.i, x.of.i]));
    const root = (i: number) => exactRoot.get(i) ?? i;
    // `of` is the original's id (its index before shuffling)
    const posOfId = new Map(docs.map((d, i) => [d.id, i]));
    const exactFound = planted.filter(([d, i]) => root(i) === root(posOfId.get(d.of as number) as number)).length;
    const exactRecall = exactFound / planted.length;

    // near: compare the LSH pairs with brute-force exact-Jaccard ground truth on the exact-deduplicated set
    const survivors = [...new Set(res.clusterOf.map((_, i) => i).filter((i) => !exactRemoved.has(i)))];
    const survTexts = survivors.map((i) => texts[i] as string);
    const above06 = bruteForcePairs(survTexts, 0.6);
    const truth = above06.filter((p) => p.jaccard >= 0.8);
    const idx = new NearDupIndex();
    survTexts.forEach((t) => idx.add(t));
    const found = idx.pairs();
    const key = (p: { a: number; b: number }) => `${Math.min(p.a, p.b)},${Math.max(p.a, p.b)}`;
    const truthSet = new Set(truth.map(key));
    const tp = found.filter((p) => truthSet.has(key(p))).length;
    const recall = tp / truth.length;
    const precision = found.length ? tp / found.length : 1;

    // signature-only variant (no exact verification) for comparison
    let sigTp = 0;
    let sigFound = 0;
    const candIdx = new NearDupIndex({ threshold: 0 });
    survTexts.forEach((t) => candIdx.add(t));
    for (const p of candIdx.pairs()) {
      const est = estimateJaccard(candIdx.sigs[p.a] as Uint32Array, candIdx.sigs[p.b] as Uint32Array);
      if (est >= 0.8) {
        sigFound++;
        if (truthSet.has(key(p))) sigTp++;
      }
    }
    const jTrue = truth.map((p) => p.jaccard);
    console.log(
      `[dedupe] corpus ${docs.length} docs (${planted.length} exact copies, ${docs.filter((d) => d.kind === 'near').length} edited copies); ` +
        `exact-dup recall ${(100 * exactRecall).toFixed(1)} % (${exactFound}/${planted.length}); ` +
        `near-dup pairs with J ≥ 0.8: ${truth.length} (J ${Math.min(...jTrue).toFixed(2)}–${Math.max(...jTrue).toFixed(2)}), found ${found.length}, ` +
        `recall ${(100 * recall).toFixed(1)} %, precision ${(100 * precision).toFixed(1)} %; ` +
        `signature-estimate only: recall ${((100 * sigTp) / truth.length).toFixed(1)} %, precision ${((100 * sigTp) / Math.max(1, sigFound)).toFixed(1)} %; ` +
        `${ms.toFixed(0)} ms for the whole dedupe`,
    );
    expect(exactRecall).toBe(1);
    expect(truth.length).toBeGreaterThan(80); // the planted corpus really has near-duplicates around the threshold
    expect(above06.length).toBeGreaterThan(truth.length + 50); // … and hard negatives just below it
    expect(recall).toBeGreaterThanOrEqual(0.95);
    expect(precision).toBeGreaterThanOrEqual(0.95);
    // items kept: no two kept texts are near-duplicates
    const kept = res.kept.map((d) => d.text);
    expect(bruteForcePairs(kept, 0.8).length).toBe(0);
  });

  it('never merges unrelated texts', () => {
    const res = dedupe(['alpha beta gamma delta epsilon zeta', 'one two three four five six seven', 'red green blue cyan magenta yellow'], (t) => t);
    expect(res.kept.length).toBe(3);
  });
});

describe('which copy of a duplicate survives', () => {
  const text =
    'The scheduler triggers periodic jobs such as nightly settlement at two and the hourly index refresh and publishes them to queue-broker; it keeps its lease in ledger-db and only one replica holds the lease at a time.';
  const items = [
    { source: 'docs/legacy/overview-v1.md', mtime: '2026-03-01T00:00:00Z', text },
    { source: 'docs/old/overview.md', mtime: '2026-05-01T00:00:00Z', text: `${text} ` },
    { source: 'docs/overview-v2.md', mtime: '2026-01-01T00:00:00Z', text: text.replace('periodic', 'the periodic') },
    { source: 'docs/overview-v3.md', mtime: '2025-12-01T00:00:00Z', text: text.toUpperCase() },
  ];
  const run = (policy: 'canonical' | 'newest' | 'first') => {
    const rank = sourceRank(policy);
    return dedupe(items, (i) => i.text, { rank: (i) => rank(i.source, i.mtime) });
  };
  it('canonical: not under legacy/ or old/, then the highest version, then the newest; newest: mtime; first: input order', () => {
    expect(run('canonical').kept.map((i) => i.source)).toEqual(['docs/overview-v3.md']);
    expect(run('newest').kept.map((i) => i.source)).toEqual(['docs/old/overview.md']);
    expect(run('first').kept.map((i) => i.source)).toEqual(['docs/legacy/overview-v1.md']);
    const r = run('canonical');
    expect(r.exactDuplicates.map((d) => [d.item.source, d.of.source])).toEqual([
      ['docs/legacy/overview-v1.md', 'docs/overview-v3.md'],
      ['docs/old/overview.md', 'docs/overview-v3.md'],
    ]);
    expect(r.nearDuplicates[0]?.jaccard).toBeGreaterThan(0.8);
    expect(r.nearDuplicates.map((d) => d.item.source)).toEqual(['docs/overview-v2.md']);
    expect(r.clusterOf).toEqual([3, 3, 3, 3]);
  });
  it('path hints and versions', () => {
    for (const p of ['docs/legacy/a.md', 'old/a.md', 'a.old.md', 'archive/x/a.md', 'a_deprecated.md', 'a.md~', 'backup/a.md']) expect(LEGACY_PATH.test(p), p).toBe(true);
    for (const p of ['docs/a.md', 'docs/golden/a.md', 'holdover.md', 'bold.md', 'docs/archiver.md']) expect(LEGACY_PATH.test(p), p).toBe(false);
    expect([versionOf('overview-v2.md'), versionOf('spec_v10.txt'), versionOf('guide.version-3.html'), versionOf('overview.md'), versionOf('dev.md')]).toEqual([2, 10, 3, 0, 0]);
  });
});
