// The Node binding of the server: @hono/node-server on a host:port, adapter paths resolved inside
// the --adapters directory (no `..`, no absolute path outside it, no symlink escape), and a
// graceful close (stop accepting, let in-flight requests finish within a grace period, cancel
// the rest, destroy the engine) that SIGTERM / SIGINT call.
import { serve, type ServerType } from '@hono/node-server';
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { AddressInfo } from 'node:net';
import { InvalidRequestError } from '../api/errors.ts';
import { createServerApp, type ServerApp, type ServerAppOptions } from './app.ts';
import type { EngineHost } from './host.ts';

export interface StartServerOptions extends ServerAppOptions {
  hostname?: string;
  /** 0: a free port (see `port` of the result). */
  port?: number;
  /** Directory whose PEFT adapters /v1/load_lora_adapter may load (resolveAdapterPath is derived from it). */
  adaptersDir?: string;
}

export interface RunningServer extends ServerApp {
  server: ServerType;
  port: number;
  url: string;
  /** Stops accepting, waits up to graceMs for in-flight requests, cancels the rest, destroys the engine. */
  close(graceMs?: number): Promise<void>;
}

/** A lora_path resolved inside `root`: relative to it, or absolute but inside; symlinks followed and checked. */
export async function resolveInside(root: string, p: string): Promise<string> {
  if (p.includes('\0')) throw new InvalidRequestError('lora_path contains a NUL byte', 'lora_path');
  if (p.split(/[\\/]+/).includes('..')) throw new InvalidRequestError(`lora_path '${p}' must not contain '..'`, 'lora_path');
  const realRoot = await realpath(root);
  const candidate = isAbsolute(p) ? resolve(p) : resolve(realRoot, p);
  const inside = (x: string, r: string) => {
    const rel = relative(r, x);
    return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
  };
  if (!inside(candidate, realRoot) && !inside(candidate, resolve(root))) throw new InvalidRequestError(`lora_path '${p}' is outside the adapters directory`, 'lora_path');
  let real: string;
  try {
    real = await realpath(candidate);
  } catch {
    throw new InvalidRequestError(`lora_path '${p}': no such directory in the adapters directory`, 'lora_path');
  }
  if (!inside(real, realRoot)) throw new InvalidRequestError(`lora_path '${p}' leads outside the adapters directory (symlink)`, 'lora_path');
  const st = await stat(real);
  if (!st.isDirectory()) throw new InvalidRequestError(`lora_path '${p}' is not a directory`, 'lora_path');
  for (const f of ['adapter_config.json', 'adapter_model.safetensors']) {
    const fr = await realpath(join(real, f)).catch(() => null);
    if (!fr) throw new InvalidRequestError(`lora_path '${p}' holds no ${f} (not a PEFT adapter directory)`, 'lora_path');
    if (!inside(fr, realRoot)) throw new InvalidRequestError(`lora_path '${p}${sep}${f}' leads outside the adapters directory (symlink)`, 'lora_path');
  }
  return real;
}

export async function startServer(host: EngineHost, o: StartServerOptions = {}): Promise<RunningServer> {
  const resolveAdapterPath = o.resolveAdapterPath ?? (o.adaptersDir ? (p: string) => resolveInside(o.adaptersDir!, p) : undefined);
  const s = createServerApp(host, { ...o, resolveAdapterPath });
  const hostname = o.hostname ?? '127.0.0.1';
  const server = await new Promise<ServerType>((res, rej) => {
    const srv = serve({ fetch: s.app.fetch, hostname, port: o.port ?? 8080 }, () => res(srv));
    srv.once('error', rej);
  });
  server.on('error', (e) => o.log?.({ ts: new Date().toISOString(), level: 'error', msg: 'http server error', error: (e as Error).message }));
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;
  const close = (graceMs = 10_000) =>
    (closing ??= (async () => {
      const stopped = new Promise<void>((r) => server.close(() => r())); // stops accepting; resolves when connections end
      await host.close(graceMs);
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      await stopped;
    })());
  return { ...s, server, port, url: `http://${hostname.includes(':') ? `[${hostname}]` : hostname}:${port}`, close };
}
