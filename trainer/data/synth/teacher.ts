/**
 * Teacher synthesis over any OpenAI-compatible endpoint (official `openai` SDK).
 *  1. generation: the teacher writes Q&A pairs grounded in one chunk, as JSON {"pairs":[{question, answer, evidence}]};
 *  2. grounding: a pair whose evidence is not found verbatim (whitespace/case-insensitive) in the chunk is dropped;
 *  3. judge: an LLM-as-judge pass rates every surviving pair 1–5 for faithfulness/usefulness; pairs below the
 *     threshold are dropped.
 * Replies are parsed with zod; malformed replies are retried with the parse error fed back, API errors with backoff.
 * Each finished chunk is cached (atomic write) under a key of chunk text + model + prompt version, so a rerun
 * — including one after the process was killed — skips chunks already done.
 */
import OpenAI from 'openai';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Chunk, QAPair, Rejection } from '../types.ts';
import { sha256, writeFileAtomic } from '../util.ts';

export const PROMPT_VERSION = 'qa-gen-v2+judge-v1';

export interface TeacherOptions {
  baseURL: string;
  model: string;
  apiKey?: string;
  judgeModel?: string;
  concurrency?: number;
  pairsPerChunk?: number;
  /** keep pairs the judge scores ≥ threshold (1–5); 0 disables the judge */
  threshold?: number;
  maxAttempts?: number;
  backoffMs?: number;
  timeoutMs?: number;
  cacheDir: string;
  temperature?: number;
  onChunkDone?: (done: number, total: number, chunk: Chunk, cached: boolean) => void;
}

const GenPair = z.object({
  question: z.string().min(5),
  answer: z.string().min(1),
  evidence: z.string().min(3),
});
/** The reply must be {"pairs": [...]} with at least one well-formed pair; malformed pairs are dropped one by one. */
const GenReply = z.object({ pairs: z.array(z.unknown()).min(1) }).transform((r, ctx) => {
  const ok: z.infer<typeof GenPair>[] = [];
  let bad = 0;
  for (const p of r.pairs) {
    const res = GenPair.safeParse(p);
    if (res.success) ok.push(res.data);
    else bad++;
  }
  if (!ok.length) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'no well-formed {question, answer, evidence} pair' });
    return z.NEVER;
  }
  return { pairs: ok, malformedPairs: bad };
});
const JudgeReply = z.object({
  ratings: z.array(z.object({ index: z.number().int().nonnegative(), score: z.number().min(1).max(5), reason: z.string().default('') })),
});

export const CacheEntrySchema = z.object({
  key: z.string(),
  chunkId: z.string(),
  promptVersion: z.string(),
  model: z.string(),
  pairs: z.array(z.object({ question: z.string(), answer: z.string(), evidence: z.string(), score: z.number().nullable(), reason: z.string() })),
  rejected: z.array(z.object({ stage: z.string(), reason: z.string(), detail: z.string().optional() })),
});
export type CacheEntry = z.infer<typeof CacheEntrySchema>;

export function genMessages(chunk: Chunk, n: number): OpenAI.Chat.ChatCompletionMessageParam[] {
  return [
    {
      role: 'system',
      content:
        'You write training data for a domain assistant. Given a passage of documentation, write question/answer pairs that a user of the system might ask and that the passage fully answers. ' +
        'Answers must use only facts from the passage. For each pair, copy a short exact quote from the passage as "evidence". ' +
        'Phrase every question the way a user would ask it, as a complete grammatical sentence that names what it is about (the service, error code, person, alert or time window), ' +
        'never by a section title, table column header or incident number of the document, and answerable from the passage alone. ' +
        'Reply with only a JSON object: {"pairs":[{"question":"...","answer":"...","evidence":"..."}]}',
    },
    {
      role: 'user',
      content: `Source: ${chunk.source}\nSection: ${chunk.sectionPath.join(' > ')}\nChunk-ID: ${chunk.id}\n\nPassage:\n"""\n${chunk.text}\n"""\n\nWrite up to ${n} pairs.`,
    },
  ];
}

export function judgeMessages(chunk: Chunk, pairs: { question: string; answer: string }[]): OpenAI.Chat.ChatCompletionMessageParam[] {
  return [
    {
      role: 'system',
      content:
        'You grade training data. For each question/answer pair, score 1-5: 5 = correct, fully supported by the passage and useful; 3 = partly supported or vague; 1 = wrong or unsupported. ' +
        'Reply with only a JSON object: {"ratings":[{"index":0,"score":5,"reason":"..."}]}',
    },
    {
      role: 'user',
      content: `Chunk-ID: ${chunk.id}\nPassage:\n"""\n${chunk.text}\n"""\n\nPairs:\n${pairs.map((p, i) => `[${i}] Q: ${p.question}\nA: ${p.answer}`).join('\n\n')}`,
    },
  ];
}

/** Pull a JSON object out of a reply that may be fenced or chatty (answers may themselves contain ``` fences). */
export function extractJson(s: string): unknown {
  const t = s.trim();
  const candidates: string[] = [t];
  const outer = /^```(?:json)?\s*\n([\s\S]*)\n```$/.exec(t);
  if (outer) candidates.push(outer[1] ?? '');
  const a = t.indexOf('{');
  const b = t.lastIndexOf('}');
  if (a >= 0 && b > a) candidates.push(t.slice(a, b + 1));
  let err: unknown = new Error('no JSON object in reply');
  for (const c of candidates) {
    try {
      const v: unknown = JSON.parse(c);
      if (v && typeof v === 'object') return v;
    } catch (e) {
      err = e;
    }
  }
  throw err instanceof Error && a >= 0 ? err : new Error('no JSON object in reply');
}

const squash = (s: string) => s.toLowerCase().replace(/[\s"'`*_]+/g, ' ').trim();

export function grounded(evidence: string, chunkText: string): boolean {
  return squash(evidence).length >= 3 && squash(chunkText).includes(squash(evidence));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Teacher {
  private readonly client: OpenAI;
  readonly stats = { requests: 0, apiErrors: 0, malformed: 0, cached: 0, generated: 0, failedChunks: 0 };
  constructor(private readonly o: TeacherOptions) {
    this.client = new OpenAI({
      baseURL: o.baseURL,
      apiKey: o.apiKey ?? process.env.OPENAI_API_KEY ?? 'sk-local',
      maxRetries: 0,
      timeout: o.timeoutMs ?? 120_000,
    });
  }

  cacheKey(chunk: Chunk): string {
    return sha256(JSON.stringify([PROMPT_VERSION, this.o.model, this.o.judgeModel ?? this.o.model, this.o.pairsPerChunk ?? 4, chunk.sectionPath, chunk.text]));
  }
  cachePath(key: string): string {
    return join(this.o.cacheDir, key.slice(0, 2), `${key}.json`);
  }

  /** One call whose reply must parse with `schema`; malformed replies are retried with the error fed back. */
  private async ask<T>(model: string, messages: OpenAI.Chat.ChatCompletionMessageParam[], schema: z.ZodType<T, z.ZodTypeDef, unknown>): Promise<T> {
    const max = this.o.maxAttempts ?? 4;
    const msgs = [...messages];
    let lastErr = '';
    for (let attempt = 1; attempt <= max; attempt++) {
      let content: string;
      try {
        this.stats.requests++;
        const r = await this.client.chat.completions.create({ model, messages: msgs, temperature: this.o.temperature ?? 0.3 });
        content = r.choices[0]?.message?.content ?? '';
      } catch (e) {
        this.stats.apiErrors++;
        lastErr = `api error: ${(e as Error).message}`;
        await sleep((this.o.backoffMs ?? 500) * 2 ** (attempt - 1));
        continue;
      }
      try {
        return schema.parse(extractJson(content));
      } catch (e) {
        this.stats.malformed++;
        lastErr = `malformed reply: ${(e as Error).message.slice(0, 300)}`;
        msgs.push({ role: 'assistant', content }, { role: 'user', content: `That reply was not valid: ${lastErr}. Reply again with only the JSON object in the required shape.` });
      }
    }
    throw new Error(`gave up after ${max} attempts (${lastErr})`);
  }

  async processChunk(chunk: Chunk): Promise<{ entry: CacheEntry; cached: boolean }> {
    const key = this.cacheKey(chunk);
    const path = this.cachePath(key);
    if (existsSync(path)) {
      try {
        const entry = CacheEntrySchema.parse(JSON.parse(await readFile(path, 'utf8')));
        this.stats.cached++;
        return { entry, cached: true };
      } catch {
        /* corrupt cache entry: regenerate */
      }
    }
    const rejected: Rejection[] = [];
    const gen = await this.ask(this.o.model, genMessages(chunk, this.o.pairsPerChunk ?? 4), GenReply);
    for (let i = 0; i < gen.malformedPairs; i++) rejected.push({ stage: 'synth', reason: 'malformed pair in teacher reply', detail: chunk.id });
    const pairs = gen.pairs.filter((p) => {
      if (grounded(p.evidence, chunk.text)) return true;
      rejected.push({ stage: 'synth', reason: 'evidence not found in chunk', detail: p.question });
      return false;
    });
    const threshold = this.o.threshold ?? 4;
    let scored: CacheEntry['pairs'] = pairs.map((p) => ({ ...p, score: null, reason: '' }));
    if (threshold > 0 && pairs.length) {
      const j = await this.ask(this.o.judgeModel ?? this.o.model, judgeMessages(chunk, pairs), JudgeReply);
      scored = pairs.map((p, i) => {
        const r = j.ratings.find((x) => x.index === i);
        return { ...p, score: r?.score ?? null, reason: r?.reason ?? 'not rated' };
      });
    }
    const entry: CacheEntry = { key, chunkId: chunk.id, promptVersion: PROMPT_VERSION, model: this.o.model, pairs: scored, rejected };
    await writeFileAtomic(path, JSON.stringify(entry));
    this.stats.generated++;
    return { entry, cached: false };
  }

  /** Run over all chunks with bounded concurrency; chunks that fail after all retries are reported, not cached. */
  async run(chunks: Chunk[]): Promise<{ pairs: QAPair[]; rejected: Rejection[] }> {
    const threshold = this.o.threshold ?? 4;
    const pairs: QAPair[][] = chunks.map(() => []);
    const rejected: Rejection[] = [];
    let next = 0;
    let done = 0;
    const worker = async () => {
      while (next < chunks.length) {
        const i = next++;
        const chunk = chunks[i] as Chunk;
        try {
          const { entry, cached } = await this.processChunk(chunk);
          rejected.push(...entry.rejected);
          for (const p of entry.pairs) {
            if (threshold > 0 && (p.score === null || p.score < threshold)) {
              rejected.push({ stage: 'judge', reason: p.score === null ? 'not rated by judge' : `judge score ${p.score} < ${threshold}`, detail: p.question });
              continue;
            }
            pairs[i]?.push({
              question: p.question,
              answer: p.answer,
              evidence: p.evidence,
              kind: 'teacher',
              chunkId: chunk.id,
              source: chunk.source,
              score: p.score ?? undefined,
              origin: 'teacher',
            });
          }
          this.o.onChunkDone?.(++done, chunks.length, chunk, cached);
        } catch (e) {
          this.stats.failedChunks++;
          rejected.push({ stage: 'synth', reason: 'chunk failed', detail: `${chunk.id}: ${(e as Error).message}` });
          this.o.onChunkDone?.(++done, chunks.length, chunk, false);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, this.o.concurrency ?? 4) }, worker));
    return { pairs: pairs.flat(), rejected };
  }
}
