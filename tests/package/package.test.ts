// The package as a user gets it: `npm pack` (prepack builds dist/), the tarball unpacked into a
// fresh project's node_modules with its declared dependencies beside it (linked from this repo's
// node_modules, so the test runs offline), then
//   (a) a plain Node ESM script, no loader, runs the embedded model and prints llama2.c's text;
//   (b) tsc --strict --noUncheckedIndexedAccess --exactOptionalPropertyTypes type-checks a Node
//       consumer (NodeNext resolution, lib ES2023 + @types/node, no DOM) and a browser consumer
//       (bundler resolution, DOM lib, no @webgpu/types), the package's .d.ts files included;
//   (c) Vite builds a page importing 'lorafleet' and a worker importing 'lorafleet/worker', and the
//       bundle holds no Dawn ('webgpu') and no node: import, but does hold the embedded model.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { execFile as execFileCb, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { STORIES_TEXT } from '../fixtures/stories.ts';

const execFile = promisify(execFileCb);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const here = join(root, 'tests', 'package');
let tmp = '';
let app = '';
let packed: { files: string[]; size: number; unpackedSize: number };

/** The README's code block that starts with `first` (its text without the fences). */
function readmeBlock(first: string): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const m = [...readme.matchAll(/```(?:ts|js)\n([\s\S]*?)```/g)].map((x) => x[1]!).find((b) => b.startsWith(first));
  if (!m) throw new Error(`README.md has no code block starting with ${JSON.stringify(first)}`);
  return m;
}

function link(name: string): void {
  const from = join(root, 'node_modules', name);
  if (!existsSync(from)) throw new Error(`dependency ${name} is not installed in ${root}/node_modules`);
  const to = join(app, 'node_modules', name);
  mkdirSync(dirname(to), { recursive: true });
  if (!existsSync(to)) symlinkSync(from, to, 'dir');
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'lorafleet-pack-'));
  app = join(tmp, 'app');
  mkdirSync(join(app, 'node_modules', 'lorafleet'), { recursive: true });
  // npm pack runs prepack (npm run build), like `npm publish` would.
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const info = JSON.parse(out.slice(out.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }>; size: number; unpackedSize: number }>;
  const tgz = join(tmp, info[0]!.filename);
  packed = { files: info[0]!.files.map((f) => f.path), size: info[0]!.size, unpackedSize: info[0]!.unpackedSize };
  execFileSync('tar', ['-xzf', tgz, '-C', join(app, 'node_modules', 'lorafleet'), '--strip-components=1']);
  // The package's own dependencies, as npm would install them; tools for the checks (tsc, Vite).
  const pkg = JSON.parse(readFileSync(join(app, 'node_modules', 'lorafleet', 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const d of Object.keys(pkg.dependencies)) link(d);
  for (const d of ['typescript', 'vite', '@types/node']) link(d);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  for (const f of ['consumer-node.ts', 'consumer-browser.ts', 'engine.worker.ts']) copyFileSync(join(here, f), join(app, f));
}, 180_000);
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the packed package', () => {
  test('the tarball holds dist/ (JS + .d.ts), the embedded model with its licence, the bin; no sources or tests', () => {
    const f = packed.files;
    expect(f).toContain('dist/engine/index.js');
    expect(f).toContain('dist/engine/index.d.ts');
    expect(f).toContain('dist/engine/node.js');
    expect(f).toContain('dist/engine/worker/worker.js');
    expect(f).toContain('dist/trainer/worker/worker.js'); // lorafleet/worker: the engine's worker side + the trainer
    expect(f).toContain('dist/router/index.js'); // lorafleet/router
    expect(f).toContain('dist/cli/main.js');
    expect(f).toContain('bin/lorafleet.mjs');
    expect(f).toContain('dist/engine/model/embedded/stories260K/model.safetensors');
    expect(f).toContain('dist/engine/model/embedded/stories260K/LICENSE');
    expect(f.filter((p) => p.endsWith('.ts') && !p.endsWith('.d.ts'))).toEqual([]);
    expect(f.filter((p) => /\.test\.|^tests\/|^bench\/|^reference\//.test(p))).toEqual([]);
    expect(packed.size).toBeLessThan(3 << 20);
  });

  test('(a) a plain Node ESM script (no loader) runs the embedded model and prints the llama2.c text', async () => {
    writeFileSync(
      join(app, 'run.mjs'),
      [
        "import { createEngine } from 'lorafleet';",
        'const engine = await createEngine();',
        "let text = 'Once upon a time';",
        "for await (const t of engine.generate('Once upon a time', { max_tokens: 40 })) text += t.text;",
        'console.log(text);',
        'await engine.destroy();',
      ].join('\n'),
    );
    const { stdout } = await execFile(process.execPath, ['run.mjs'], { cwd: app, env: { ...process.env, NODE_OPTIONS: '' } });
    expect(stdout.trim()).toBe(STORIES_TEXT);
  });

  test("(a) the README's Node example runs as written", async () => {
    writeFileSync(join(app, 'readme-node.mjs'), readmeBlock("import { createEngine } from 'lorafleet';"));
    const { stdout } = await execFile(process.execPath, ['readme-node.mjs'], { cwd: app, env: { ...process.env, NODE_OPTIONS: '' } });
    expect(stdout.split('\n')[0]).toBe(STORIES_TEXT);
  });

  test('(a) the bin runs compiled JS: lorafleet --version and generate', async () => {
    const bin = join(app, 'node_modules', 'lorafleet', 'bin', 'lorafleet.mjs');
    const v = await execFile(process.execPath, [bin, '--version'], { cwd: app, env: { ...process.env, NODE_OPTIONS: '' } });
    expect(v.stdout.trim()).toMatch(/^lorafleet \d+\.\d+\.\d+/);
    const g = await execFile(process.execPath, [bin, 'generate', '--prompt', 'Once upon a time', '--max-tokens', '40'], { cwd: app, env: { ...process.env, NODE_OPTIONS: '' } });
    expect(g.stdout.trim()).toBe(STORIES_TEXT);
  });

  test('(b) a consumer type-checks under strict + noUncheckedIndexedAccess + exactOptionalPropertyTypes (Node and bundler resolution)', async () => {
    const strict = { strict: true, noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true, noEmit: true, skipLibCheck: false, target: 'ES2022' };
    writeFileSync(join(app, 'tsconfig.node.json'), JSON.stringify({ compilerOptions: { ...strict, module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2023'], types: ['node'] }, files: ['consumer-node.ts'] }));
    writeFileSync(
      join(app, 'tsconfig.browser.json'),
      JSON.stringify({ compilerOptions: { ...strict, module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2023', 'DOM', 'DOM.Iterable'], types: [] }, files: ['consumer-browser.ts', 'engine.worker.ts'] }),
    );
    const tsc = join(app, 'node_modules', 'typescript', 'bin', 'tsc');
    const run = (p: string) => execFile(process.execPath, [tsc, '-p', p], { cwd: app }).then(() => '', (e: { stdout?: string }) => e.stdout ?? String(e));
    const [node, browser] = await Promise.all([run('tsconfig.node.json'), run('tsconfig.browser.json')]);
    expect(node).toBe('');
    expect(browser).toBe('');
  });

  test("(c) Vite builds the README's page (lorafleet) + worker (lorafleet/worker): no Dawn, no node: imports, the model as assets", async () => {
    // the README's page, worker and Vite config, as written
    mkdirSync(join(app, 'web'), { recursive: true });
    writeFileSync(join(app, 'web', 'main.ts'), readmeBlock('// main.ts'));
    writeFileSync(join(app, 'web', 'engine.worker.ts'), readmeBlock('// engine.worker.ts'));
    writeFileSync(join(app, 'web', 'index.html'), '<!doctype html><html><body><script type="module" src="./main.ts"></script></body></html>');
    writeFileSync(join(app, 'web', 'vite.config.js'), readmeBlock('// vite.config.js'));
    writeFileSync(join(app, 'web', 'package.json'), JSON.stringify({ name: 'web', private: true, type: 'module' }));
    await execFile(process.execPath, [join(app, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], { cwd: join(app, 'web') });
    const dist = join(app, 'web', 'dist');
    const files = readdirSync(dist, { recursive: true }).map(String);
    const js = files.filter((f) => f.endsWith('.js'));
    expect(js.length).toBeGreaterThanOrEqual(2); // the page and the worker
    const code = js.map((f) => readFileSync(join(dist, f), 'utf8')).join('\n');
    expect(code).toMatch(/comlink|WorkerGlobalScope/);
    expect(code.match(/["'`]node:[\w/]+["'`]/g) ?? []).toEqual([]); // no node: specifier at all, imported or kept for later
    expect(code.match(/\b(?:from|import)\s*\(?\s*["'`]webgpu["'`]/g) ?? []).toEqual([]);
    expect(code).not.toMatch(/dawn\.node|vk_swiftshader_icd/);
    expect(files.some((f) => /model-[\w-]+\.safetensors$/.test(f))).toBe(true);
  });
});
