import { z } from 'zod';

export const DocFormat = z.enum(['markdown', 'text', 'html', 'log', 'pdf', 'wiki']);
export type DocFormat = z.infer<typeof DocFormat>;

/** One cleaned document, always Markdown. */
export const DocSchema = z.object({
  id: z.string(),
  source: z.string(), // path relative to the ingested folder (plus #page for wiki exports)
  format: DocFormat,
  title: z.string(),
  markdown: z.string(),
  meta: z.record(z.string(), z.unknown()).default({}),
});
export type Doc = z.infer<typeof DocSchema>;

export const ChunkSchema = z.object({
  id: z.string(),
  docId: z.string(),
  source: z.string(),
  sectionPath: z.array(z.string()),
  text: z.string(),
  tokens: z.number().int().nonnegative(),
  index: z.number().int().nonnegative(),
});
export type Chunk = z.infer<typeof ChunkSchema>;

/** A grounded question/answer pair produced by the teacher or the extractive generator. */
export const QAPairSchema = z.object({
  question: z.string().min(3),
  answer: z.string().min(1),
  evidence: z.string().optional(),
  kind: z.string().default('qa'),
  chunkId: z.string(),
  source: z.string(),
  score: z.number().optional(),
  origin: z.enum(['teacher', 'extractive']),
  /** the question template the pair was written from (extractive), e.g. "table:service:port"; the split groups by it */
  template: z.string().optional(),
  /** what the question is about (a table key, an error code…), when known: a tool may take it as its argument */
  subject: z.string().optional(),
});
export type QAPair = z.infer<typeof QAPairSchema>;

export interface Rejection {
  stage: string;
  reason: string;
  detail?: string;
}
