// Every kernel check in shaders/**/*.check.ts, for vitest (Node) and the browser page (Vite).
import type { KernelCheck } from '../../shaders/lib/check.ts';

const modules = import.meta.glob<{ checks: KernelCheck[] }>('../../shaders/**/*.check.ts', { eager: true });

export const allChecks: KernelCheck[] = Object.keys(modules)
  .sort()
  .flatMap((path) => modules[path].checks);
