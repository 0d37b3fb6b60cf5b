// The demo app (`npm run demo:build` → dist/demo, served by `npm start` under /demo/).
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/demo/',
  build: { outDir: fileURLToPath(new URL('../dist/demo', import.meta.url)), emptyOutDir: true, target: 'es2022' },
  // the package by its name (the demo imports only 'lorafleet' / 'lorafleet/<subpath>')
  resolve: { alias: { lorafleet: fileURLToPath(new URL('../engine/index.ts', import.meta.url)) } },
});
