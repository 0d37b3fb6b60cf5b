// The Node modules the engine's file-backed parts use (local model dirs, the hub's disk cache,
// the adapter store), behind a registry so that nothing Node-only is imported by code a browser
// bundle contains. Node's entry (engine/node.ts, via node-install.ts) registers them; in a page or
// a worker they are absent and those parts say so (pass a URL or a ModelSource there).
import { LorafleetError } from '../shaders/lib/errors.ts';

export interface NodeHost {
  fs: typeof import('node:fs/promises');
  fsSync: typeof import('node:fs');
  module: { createRequire: typeof import('node:module').createRequire };
  path: typeof import('node:path');
  os: typeof import('node:os');
  env: Record<string, string | undefined>;
}

let host: NodeHost | null = null;

export function setNodeHost(h: NodeHost | null): void {
  host = h;
}

export const hasNodeHost = (): boolean => host !== null;

/** The Node modules; throws a typed error naming `what` needed them when there are none (a browser). */
export function nodeHost(what: string): NodeHost {
  if (host) return host;
  throw new LorafleetError(
    `${what} reads the local file system, which only Node has (import 'lorafleet' in Node: its Node entry provides it). ` +
      'In a page or a worker pass a model URL, a ModelSource, or leave the model out for the embedded one.',
    'invalid_request',
  );
}
