// The demo app (`npm run demo:build` → dist/demo, served by `npm start` under /demo/).
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const at = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: at('.'),
  base: '/demo/',
  build: { outDir: at('../dist/demo'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 4096 },
  worker: { format: 'es' },
  // the package by its name (the demo imports only 'lorafleet' / 'lorafleet/<subpath>'), from the sources
  resolve: {
    alias: [
      { find: /^lorafleet\/worker$/, replacement: at('../trainer/worker/worker.ts') },
      { find: /^lorafleet\/router$/, replacement: at('../router/index.ts') },
      { find: /^lorafleet$/, replacement: at('../engine/index.ts') },
    ],
  },
});
