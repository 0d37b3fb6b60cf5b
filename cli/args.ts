// Small helpers every `lorafleet` command shares: option values that are negative numbers,
// `name=value` lists, and the package version.
import { existsSync, readFileSync } from 'node:fs';

/**
 * `--x -1` → `--x=-1` for the options that take a value, so negative numbers need no `=`
 * (node:util parseArgs would read `-1` as an option).
 */
export function joinNegativeValues(argv: string[], valued: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (a.startsWith('--') && !a.includes('=') && valued.has(a.slice(2)) && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/** The names of parseArgs options that take a value. */
export function valuedOptions(options: Record<string, { type: 'string' | 'boolean' }>): Set<string> {
  return new Set(Object.entries(options).filter(([, o]) => o.type === 'string').map(([k]) => k));
}

/** `name=dir` (or a bare `dir`, named by its last path part) → [name, dir]. */
export function namedPath(v: string): [string, string] {
  const eq = v.indexOf('=');
  if (eq > 0 && !v.slice(0, eq).includes('/')) return [v.slice(0, eq), v.slice(eq + 1)];
  const name = v.replace(/[\\/]+$/, '').split(/[\\/]/).pop() || v;
  return [name, v];
}

/** This package's version (package.json beside the sources or beside dist/). */
export function packageVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    const u = new URL(rel, import.meta.url);
    if (!existsSync(u)) continue;
    const p = JSON.parse(readFileSync(u, 'utf8')) as { name?: string; version?: string };
    if (p.name === 'lorafleet' && p.version) return p.version;
  }
  return 'unknown';
}
