#!/usr/bin/env node
// `npm run build` (and `prepack`): the package's dist/ — ESM JavaScript + .d.ts from
// tsconfig.build.json, then the embedded model's files beside dist/engine/model/embedded.js.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, ['scripts/gen-shaders.mjs'], { cwd: root, stdio: 'inherit' });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
// files the modules read beside themselves (new URL('./…', import.meta.url))
const model = 'engine/model/embedded/stories260K';
for (const asset of [model, 'router/onnx.proto']) if (existsSync(join(root, asset))) cpSync(join(root, asset), join(dist, asset), { recursive: true });
if (!existsSync(join(dist, 'engine/node.js')) || !existsSync(join(dist, model, 'model.safetensors'))) {
  console.error('build: dist/ is incomplete');
  process.exit(1);
}
console.log('build: dist/ ready');
