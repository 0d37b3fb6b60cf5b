// The import rules (tests/helpers/layers.ts) hold for every source file of the repository.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { checkFile, importsOf, layerOf } from './helpers/layers.ts';

const root = new URL('..', import.meta.url).pathname;
const sources = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' })
  .split('\n')
  .filter((f) => /\.(ts|tsx|mts|mjs|js)$/.test(f) && !f.startsWith('node_modules/') && existsSync(root + f));

describe('layers: imports point downward only', () => {
  it('every source file follows its folder rule', () => {
    const bad = sources.flatMap((f) => checkFile(f, readFileSync(root + f, 'utf8')));
    const msg = bad.map((v) => `${v.file}:${v.line} imports '${v.spec}': ${v.rule}`).join('\n');
    expect(msg).toBe('');
  });

  it('the checker sees the imports it must (static, multi-line, re-export, dynamic, template)', () => {
    const src = [
      "import { a } from '../engine/x.ts';",
      'import {',
      '  b,',
      "} from '../trainer/y.ts';",
      "export { c } from '../router/z.ts';",
      "const m = await import('../bench/w.ts');",
      'const n = await import(`../tests/${name}.ts`);',
      "import 'side-effect-package';",
    ].join('\n');
    expect(importsOf(src).map((r) => r.spec).sort()).toEqual(
      ['../bench/w.ts', '../engine/x.ts', '../router/z.ts', '../tests/', '../trainer/y.ts', 'side-effect-package'].sort(),
    );
  });

  it('fails on imports against the rules, naming the rule', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['shaders/matmul/matmul.ts', "import { X } from '../../engine/kv/paged-cache.ts';", /shaders\/ is the WebGPU backend/],
      ['engine/lora/peft.ts', "import { Rng } from '../../reference/random.ts';", /engine\/ imports only shaders/],
      ['engine/api/engine.ts', "import { run } from '../../bench/decode/run.ts';", /engine\/ imports only shaders/],
      ['router/route.ts', "import type { Engine } from '../engine/index.ts';", /router\/ imports neither/],
      ['trainer/train/loop.ts', "import { helper } from '../../tests/helpers/cpu-runner.ts';", /trainer\/ may import engine/],
      ['cli/main.ts', "import { STORIES_DIR } from '../tests/fixtures/stories.ts';", /cli\/ wires/],
      ['demo/src/main.ts', "import { createEngine } from '../../engine/index.ts';", /demo\/ imports the public library entry only/],
    ];
    for (const [file, line, rule] of cases) {
      const v = checkFile(file, line);
      expect(v.length, `${file}: ${line}`).toBe(1);
      expect(v[0]!.rule).toMatch(rule);
    }
    // allowed directions give nothing
    expect(checkFile('engine/api/engine.ts', "import { Runtime } from '../../shaders/gpu/runtime.ts';")).toEqual([]);
    expect(checkFile('trainer/train/loop.ts', "import { GpuModel } from '../../engine/forward/gpu-model.ts';")).toEqual([]);
    expect(checkFile('demo/src/main.ts', "import { createEngine } from 'lorafleet';")).toEqual([]);
    expect(checkFile('engine/api/engine.test.ts', "import { x } from '../../reference/llama.ts';")).toEqual([]);
    expect(layerOf('shaders/attention/attention.check.ts')).toBe('shaders');
  });
});
