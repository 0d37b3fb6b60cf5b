/**
 * The stages as library functions over a work directory:
 *   <work>/docs.jsonl, docs/*.md      ingest
 *   <work>/chunks.jsonl               chunk
 *   <work>/chunks.dedup.jsonl         dedupe
 *   <work>/qa.jsonl, cache/           synth
 *   <work>/sets/<task>.{train,val}.jsonl   format
 *   <work>/stats.json, report.md      report (rewritten after every stage)
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Chunker } from './chunk.ts';
import { MINHASH, dedupe, sourceRank, type KeepPolicy } from './dedupe.ts';
import { loadDomain } from './domain.ts';
import { formatAll, type FormatOptions } from './format.ts';
import { ingestDir } from './ingest/index.ts';
import { Progress } from './progress.ts';
import { renderReport, type Stats } from './report.ts';
import { extractPairs } from './synth/extractive.ts';
import { Teacher, type TeacherOptions } from './synth/teacher.ts';
import { approxCounter, loadTokenizer, type TokenCounter } from './tokenizer.ts';
import { ChunkSchema, DocSchema, QAPairSchema, type Chunk, type Doc, type QAPair } from './types.ts';
import { readJsonlAs, writeFileAtomic, writeJsonl } from './util.ts';

export interface CommonOptions {
  work: string;
  quiet?: boolean;
}

async function loadStats(work: string): Promise<Stats> {
  const p = join(work, 'stats.json');
  return existsSync(p) ? (JSON.parse(await readFile(p, 'utf8')) as Stats) : { startedAt: new Date().toISOString() };
}
async function saveStats(work: string, s: Stats): Promise<void> {
  await writeFileAtomic(join(work, 'stats.json'), JSON.stringify(s, null, 2));
  await writeFileAtomic(join(work, 'report.md'), renderReport(s));
}
async function update(work: string, f: (s: Stats) => void): Promise<Stats> {
  const s = await loadStats(work);
  f(s);
  await saveStats(work, s);
  return s;
}

function slug(s: string): string {
  return s.replace(/[^\w.-]+/g, '_').slice(0, 120);
}

export async function stageIngest(input: string, o: CommonOptions & { logYear?: number; maxFileBytes?: number }): Promise<Doc[]> {
  await mkdir(o.work, { recursive: true });
  let bar: Progress | null = null;
  const res = await ingestDir(input, {
    logYear: o.logYear,
    maxFileBytes: o.maxFileBytes,
    onProgress: (d, t, f) => {
      bar ??= new Progress('ingest', t, !o.quiet);
      bar.update(d, f);
    },
  });
  await writeJsonl(join(o.work, 'docs.jsonl'), res.docs);
  await mkdir(join(o.work, 'docs'), { recursive: true });
  for (const d of res.docs) await writeFile(join(o.work, 'docs', `${slug(d.source)}.md`), d.markdown);
  await update(o.work, (s) => {
    s.input = input;
    s.startedAt ??= new Date().toISOString();
    s.ingest = { files: new Set(res.docs.map((d) => d.source.split('#')[0])).size + res.skipped.length, docs: res.docs.length, byFormat: res.byFormat, skipped: res.skipped, boilerplateRemoved: res.boilerplateRemoved };
  });
  // skipped files are always reported on stderr (also with --quiet): a silent loss of input is worse than noise
  const list = res.skipped.map((x) => `  ${x.source}: ${x.reason}`).join('\n');
  if (!res.docs.length) throw new Error(`ingest: no usable document in ${input}${res.skipped.length ? `; every file was skipped:\n${list}` : ' (no files)'}`);
  if (res.skipped.length) process.stderr.write(`ingest: skipped ${res.skipped.length} file(s), kept ${res.docs.length} document(s) (reasons also in report.md):\n${list}\n`);
  return res.docs;
}

export async function getTokenizer(path: string | undefined): Promise<TokenCounter> {
  if (path) return loadTokenizer(path);
  process.stderr.write('warning: no --tokenizer given; chunk sizes are approximate (chars/4), not the model\'s tokens\n');
  return approxCounter;
}

export async function stageChunk(o: CommonOptions & { tokenizer?: string; targetTokens?: number; overlapTokens?: number; docs?: string }): Promise<Chunk[]> {
  const docs = await readJsonlAs(o.docs ?? join(o.work, 'docs.jsonl'), DocSchema);
  const tok = await getTokenizer(o.tokenizer);
  const target = o.targetTokens ?? 256;
  const overlap = o.overlapTokens ?? 32;
  const bar = new Progress('chunk', docs.length, !o.quiet);
  const chunks: Chunk[] = [];
  const chunker = new Chunker(tok, { targetTokens: target, overlapTokens: overlap });
  docs.forEach((d, i) => {
    for (const c of chunker.chunkDoc(d)) chunks.push(c);
    bar.update(i + 1, d.source);
  });
  await writeJsonl(join(o.work, 'chunks.jsonl'), chunks);
  const toks = chunks.map((c) => c.tokens);
  await update(o.work, (s) => {
    s.chunk = {
      tokenizer: tok.name,
      targetTokens: target,
      overlapTokens: overlap,
      chunks: chunks.length,
      minTokens: toks.length ? toks.reduce((a, b) => Math.min(a, b)) : 0,
      meanTokens: toks.length ? Math.round(toks.reduce((a, b) => a + b, 0) / toks.length) : 0,
      maxTokens: toks.length ? toks.reduce((a, b) => Math.max(a, b)) : 0,
      overBudget: toks.filter((t) => t > target).length,
    };
  });
  return chunks;
}

export async function stageDedupe(o: CommonOptions & { chunks?: string; keep?: KeepPolicy }): Promise<Chunk[]> {
  const chunks = await readJsonlAs(o.chunks ?? join(o.work, 'chunks.jsonl'), ChunkSchema);
  // which copy survives: the canonical one by default (not legacy/old/archive…, highest version, newest mtime)
  const keep = o.keep ?? 'canonical';
  const docsPath = join(o.work, 'docs.jsonl');
  const mtimes = new Map<string, string>();
  if (existsSync(docsPath)) for (const d of await readJsonlAs(docsPath, DocSchema)) if (typeof d.meta.mtime === 'string') mtimes.set(d.id, d.meta.mtime);
  const rank = sourceRank(keep);
  const res = dedupe(chunks, (c) => c.text, { rank: (c) => rank(c.source, mtimes.get(c.docId)) });
  await writeJsonl(join(o.work, 'chunks.dedup.jsonl'), res.kept);
  const name = (c: Chunk) => `${c.source} › ${c.sectionPath.join(' › ')}`;
  await update(o.work, (s) => {
    s.dedupe = {
      before: chunks.length,
      after: res.kept.length,
      exact: res.exactDuplicates.length,
      near: res.nearDuplicates.length,
      keep,
      params: { shingleWords: MINHASH.shingle, hashes: MINHASH.numHashes, bands: MINHASH.bands, rows: MINHASH.rows, jaccardThreshold: MINHASH.threshold },
      examples: [...res.exactDuplicates.map((d) => ({ removed: name(d.item), of: name(d.of) })), ...res.nearDuplicates.map((d) => ({ removed: name(d.item), of: name(d.of), jaccard: d.jaccard }))],
    };
  });
  if (!o.quiet) process.stderr.write(`dedupe   ${chunks.length} → ${res.kept.length} chunks (${res.exactDuplicates.length} exact, ${res.nearDuplicates.length} near)\n`);
  return res.kept;
}

export type SynthOptions = CommonOptions & {
  chunks?: string;
  teacher?: Omit<TeacherOptions, 'cacheDir' | 'onChunkDone'> & { cacheDir?: string };
  withExtractive?: boolean;
  /** domain spec: its tableQuestions phrase the extractive table questions */
  domain?: string;
};

export async function stageSynth(o: SynthOptions): Promise<QAPair[]> {
  const src = o.chunks ?? (existsSync(join(o.work, 'chunks.dedup.jsonl')) ? join(o.work, 'chunks.dedup.jsonl') : join(o.work, 'chunks.jsonl'));
  const chunks = await readJsonlAs(src, ChunkSchema);
  const pairs: QAPair[] = [];
  const rejected: NonNullable<Stats['rejected']> = [];
  let teacherStats: Record<string, number | string> | undefined;
  if (o.teacher) {
    const bar = new Progress('synth', chunks.length, !o.quiet);
    const t = new Teacher({ ...o.teacher, cacheDir: o.teacher.cacheDir ?? join(o.work, 'cache'), onChunkDone: (d, _n, _c, cached) => bar.update(d, cached ? '(cached)' : '') });
    const res = await t.run(chunks);
    pairs.push(...res.pairs);
    rejected.push(...res.rejected);
    teacherStats = { model: o.teacher.model, ...t.stats };
  }
  if (!o.teacher || o.withExtractive) {
    const tableQuestions = o.domain ? (await loadDomain(o.domain)).tableQuestions : {};
    const bar = new Progress('extract', chunks.length, !o.quiet);
    chunks.forEach((c, i) => {
      for (const p of extractPairs(c, { tableQuestions })) pairs.push(p);
      bar.update(i + 1);
    });
  }
  const valid = pairs.filter((p) => {
    const r = QAPairSchema.safeParse(p);
    if (!r.success) rejected.push({ stage: 'synth', reason: 'pair fails schema', detail: r.error.issues[0]?.message });
    return r.success;
  });
  await writeJsonl(join(o.work, 'qa.jsonl'), valid);
  const byKind: Record<string, number> = {};
  for (const p of valid) byKind[p.kind] = (byKind[p.kind] ?? 0) + 1;
  await update(o.work, (s) => {
    s.synth = { mode: o.teacher ? (o.withExtractive ? 'teacher + extractive' : 'teacher') : 'extractive (offline)', chunks: chunks.length, pairs: valid.length, byKind, teacher: teacherStats };
    s.rejected = [...(s.rejected ?? []).filter((r) => !r.stage.startsWith('synth') && r.stage !== 'judge'), ...rejected];
  });
  return valid;
}

export async function stageFormat(o: CommonOptions & FormatOptions & { domain: string; qa?: string; chunks?: string }) {
  const domain = await loadDomain(o.domain);
  const pairs = await readJsonlAs(o.qa ?? join(o.work, 'qa.jsonl'), QAPairSchema);
  const chunkSrc = o.chunks ?? (existsSync(join(o.work, 'chunks.dedup.jsonl')) ? join(o.work, 'chunks.dedup.jsonl') : join(o.work, 'chunks.jsonl'));
  const chunks = await readJsonlAs(chunkSrc, ChunkSchema);
  const res = formatAll(domain, pairs, chunks, o);
  const bar = new Progress('format', res.sets.length, !o.quiet);
  let i = 0;
  for (const s of res.sets) {
    await writeJsonl(join(o.work, 'sets', `${s.name}.train.jsonl`), s.train);
    await writeJsonl(join(o.work, 'sets', `${s.name}.val.jsonl`), s.val);
    // line-aligned sidecars: template id, kind, style (bare/instruction) and DPO failure of every row
    await writeJsonl(join(o.work, 'sets', 'meta', `${s.name}.train.jsonl`), s.trainMeta);
    await writeJsonl(join(o.work, 'sets', 'meta', `${s.name}.val.jsonl`), s.valMeta);
    bar.update(++i, s.name);
  }
  await update(o.work, (s) => {
    s.format = {
      sets: res.sets.map((t) => ({ name: t.name, train: t.train.length, val: t.val.length, kinds: t.kinds, templates: t.templates, labels: t.labels, failures: t.failures })),
      duplicatesRemoved: res.duplicatesRemoved,
      leakage: res.leakage,
      dpoMix: res.dpoMix,
      policy: res.policy,
    };
    s.rejected = [...(s.rejected ?? []).filter((r) => !r.stage.startsWith('format')), ...res.rejected];
  });
  return res;
}

export async function runAll(
  input: string,
  o: CommonOptions & { domain?: string; tokenizer?: string; targetTokens?: number; overlapTokens?: number; logYear?: number; maxFileBytes?: number; keep?: KeepPolicy } & Omit<SynthOptions, 'work'> & FormatOptions,
) {
  const domain = o.domain ?? join(input, 'domain.json');
  if (!existsSync(domain)) throw new Error(`no domain spec: pass --domain (looked for ${domain})`);
  await loadDomain(domain); // validated before any stage runs: a bad spec fails fast, naming the file and field
  await stageIngest(input, o);
  await stageChunk(o);
  await stageDedupe(o);
  await stageSynth({ ...o, domain });
  const res = await stageFormat({ ...o, domain });
  return res;
}
