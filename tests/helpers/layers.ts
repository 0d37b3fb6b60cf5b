// The import rules of the repository (issue 8), as data plus a checker that reads import lines.
//
//   shaders/  the WebGPU backend (gpu/ runtime, one folder per op family, lib/) — imports nothing else
//   engine/   the serving core — imports shaders/
//   trainer/  data engine and trainer — imports engine/ and shaders/
//   router/   encoders and routes — imports nothing else (the engine takes a routing function)
//   cli/      the `lorafleet` command — wires engine, trainer, router and bench
//   bin/      the executable — imports cli/ (or its build)
//   demo/     the Vite app — the public library entry only ('lorafleet', 'lorafleet/<subpath>')
//   tests/, bench/, reference/, scripts/ and every *.test.ts — may import anything; product code
//   (everything above) never imports them, except cli/ → bench/ (the `bench` command).
//
// Kernel checks (*.check.ts) and float64 references (*.ref.ts) sit beside their kernels and follow
// their folder's rule: `lorafleet doctor` runs the checks, so they are product code.

export type Layer = 'shaders' | 'engine' | 'trainer' | 'router' | 'cli' | 'bin' | 'demo' | 'free';

export const ALLOWED: Record<Exclude<Layer, 'free'>, readonly string[]> = {
  shaders: ['shaders'],
  engine: ['shaders', 'engine'],
  trainer: ['shaders', 'engine', 'trainer'],
  router: ['router'],
  cli: ['shaders', 'engine', 'trainer', 'router', 'cli', 'bench'],
  bin: ['cli', 'dist'],
  demo: ['demo'],
};

export const RULE_TEXT: Record<Exclude<Layer, 'free'>, string> = {
  shaders: 'shaders/ is the WebGPU backend and imports nothing else of the project',
  engine: 'engine/ imports only shaders/ (never reference/, tests/ or bench/)',
  trainer: 'trainer/ may import engine/ and shaders/ only',
  router: 'router/ imports neither engine/ nor shaders/ (the engine takes a routing function)',
  cli: 'cli/ wires engine/, trainer/, router/ and bench/; it never imports tests/ or reference/',
  bin: 'bin/ starts cli/ only',
  demo: "demo/ imports the public library entry only ('lorafleet', 'lorafleet/<subpath>')",
};

/** The layer a repository file belongs to (by its path, '/'-separated, relative to the root). */
export function layerOf(path: string): Layer {
  if (/\.test\.tsx?$/.test(path)) return 'free';
  const top = path.split('/')[0]!;
  if (top in ALLOWED) return top as Layer;
  return 'free';
}

export interface ImportRef {
  line: number;
  spec: string;
}

/** Every module specifier a source file imports: static, re-exports, dynamic (a template's static prefix). */
export function importsOf(source: string): ImportRef[] {
  const out: ImportRef[] = [];
  const lines = source.split('\n');
  const patterns = [
    /^\s*(?:import|export)\b[^'"`]*?\bfrom\s*['"]([^'"]+)['"]/,
    /^\s*import\s*['"]([^'"]+)['"]/,
  ];
  lines.forEach((text, i) => {
    for (const p of patterns) {
      const m = p.exec(text);
      if (m) out.push({ line: i + 1, spec: m[1]! });
    }
    for (const m of text.matchAll(/\bimport\s*\(\s*(['"`])([^'"`$]*)/g)) out.push({ line: i + 1, spec: m[2]! });
  });
  // multi-line `import {\n a,\n b } from '...'`: the `from` line carries the specifier
  lines.forEach((text, i) => {
    const m = /^\s*\}\s*from\s*['"]([^'"]+)['"]/.exec(text);
    if (m) out.push({ line: i + 1, spec: m[1]! });
  });
  return out;
}

function normalize(parts: string[]): string[] {
  const out: string[] = [];
  for (const p of parts) {
    if (p === '' || p === '.') continue;
    if (p === '..') out.pop();
    else out.push(p);
  }
  return out;
}

export interface Violation {
  file: string;
  line: number;
  spec: string;
  rule: string;
}

/** Checks one file's imports against the rules. */
export function checkFile(file: string, source: string): Violation[] {
  const layer = layerOf(file);
  if (layer === 'free') return [];
  const allowed = ALLOWED[layer];
  const out: Violation[] = [];
  for (const { line, spec } of importsOf(source)) {
    if (layer === 'demo' && !spec.startsWith('.')) {
      // packages are fine; the project itself only through its package name
      continue;
    }
    if (!spec.startsWith('.')) continue; // a package
    const target = normalize([...file.split('/').slice(0, -1), ...spec.split('/')]);
    const top = target.length > 1 || spec.endsWith('/') ? target[0]! : '(root)';
    if (!allowed.includes(top)) out.push({ file, line, spec, rule: RULE_TEXT[layer] });
  }
  return out;
}
