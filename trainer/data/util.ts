import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { uniform01 } from '../../shaders/lib/random.ts';

export function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** Text normalisation shared by every ingester: Unicode NFKC, no control chars, unified newlines, no trailing spaces, at most one blank line. */
export function normalizeText(s: string): string {
  let t = s.normalize('NFKC');
  t = t.replace(/\r\n?/g, '\n');
  // eslint-disable-next-line no-control-regex
  t = t.replace(/\u001b\[[0-9;]*[A-Za-z]/g, ''); // ANSI escapes
  // eslint-disable-next-line no-control-regex
  t = t.replace(/[\u0000-\u0008\u000b\u000e-\u001f\u007f\u200b-\u200d\ufeff]/g, '');
  t = t.replace(/\u00a0/g, ' ').replace(/[\u2018\u2019]/g, "'").replace(/[\u201c\u201d]/g, '"');
  t = t.replace(/\t/g, '    ');
  let inFence = false;
  t = t
    .split('\n')
    .map((l) => {
      if (/^\s*(```|~~~)/.test(l)) inFence = !inFence;
      const trimmed = l.replace(/[ ]+$/g, '');
      if (inFence) return trimmed;
      // collapse runs of spaces inside the line; keep the indentation (nested lists)
      const indent = /^ */.exec(trimmed)?.[0] ?? '';
      return indent + trimmed.slice(indent.length).replace(/ {2,}/g, ' ');
    })
    .join('\n');
  t = t.replace(/\n{3,}/g, '\n\n');
  return t.trim() + '\n';
}

/** Aggressive normalisation used for exact-duplicate hashing: case, punctuation and whitespace do not count. */
export function normalizeForHash(s: string): string {
  return s
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
}

export async function writeJsonl(path: string, rows: unknown[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
}

export async function readJsonl<T = unknown>(path: string): Promise<T[]> {
  const text = await readFile(path, 'utf8');
  const out: T[] = [];
  text.split('\n').forEach((l, i) => {
    if (!l.trim()) return;
    try {
      out.push(JSON.parse(l) as T);
    } catch (e) {
      throw new Error(`${path}:${i + 1}: invalid JSON: ${(e as Error).message}`);
    }
  });
  return out;
}

/** "a.b[2].c: message; …" — a zod error as one readable line naming every field. */
export function zodIssues(err: z.ZodError, max = 8): string {
  const parts = err.issues.slice(0, max).map((i) => {
    const path = i.path.reduce<string>((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${String(k)}` : String(k)), '');
    return `${path || '(root)'}: ${i.message}`;
  });
  if (err.issues.length > max) parts.push(`… ${err.issues.length - max} more`);
  return parts.join('; ');
}

/** Read a JSONL file and validate every row; an error names the file, the line and the field. */
export async function readJsonlAs<S extends z.ZodTypeAny>(path: string, schema: S): Promise<z.infer<S>[]> {
  const rows = await readJsonl(path);
  return rows.map((r, i) => {
    const res = schema.safeParse(r);
    if (!res.success) throw new Error(`${path}: row ${i + 1}: ${zodIssues(res.error)}`);
    return res.data as z.infer<S>;
  });
}

/** Write-then-rename so a killed process never leaves a half-written file behind. */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/** Deterministic PRNG (mulberry32) so every stage is reproducible from a seed. */
export const rng: (seed: number) => () => number = uniform01;

export function pick<T>(r: () => number, xs: readonly T[]): T {
  if (xs.length === 0) throw new Error('pick from empty list');
  return xs[Math.floor(r() * xs.length)] as T;
}

export function shuffle<T>(r: () => number, xs: T[]): T[] {
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a;
}

/** Stable 32-bit string hash (FNV-1a) — used for split assignment and seeds. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
