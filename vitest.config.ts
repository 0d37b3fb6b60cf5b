import { defineConfig } from 'vitest/config';

// Node tests run under Dawn (the `webgpu` package, SwiftShader on CPU-only machines).
// GPU work is serialized: one fork, files one after another, so SwiftShader's 2 cores
// are not fought over and timings in logs stay readable.
export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    setupFiles: ['tests/setup.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 180_000,
  },
});
