// `lorafleet serve`: the engine under Dawn behind the OpenAI and vLLM HTTP APIs (engine/server).
//
//   lorafleet serve [--model <dir|url>] [--adapters <dir>] [--host 127.0.0.1] [--port 8080]
//                   [--api-key <k>] [--max-loras N] [--max-lora-rank R] [--max-cpu-loras N]
//                   [--kv-cache-bytes B] [--lora-modules name=path ...] [--router <file>] [--cors <origin>]
//                   [--max-body-bytes B] [--max-queue N] [--grace-seconds S] [--weight-format f32|f16|q8]
//
// Without --model it serves the embedded stories260K. Every PEFT directory under --adapters is
// registered by its folder name at start (listed in /v1/models, parsed into the CPU tier, brought
// to the GPU tier on first use); --lora-modules names more adapters as vLLM does (`name=path` or `{"name": ..., "path": ...}`), and
// /v1/load_lora_adapter loads more from inside --adapters at run time. With --router <router.json>
// (router/), `model: "auto"` asks it which adapter serves the request. One JSON log line per
// event on stdout; SIGTERM / SIGINT stop accepting and finish in-flight requests within the grace.
import { parseArgs } from 'node:util';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createEngine } from '../engine/api/engine.ts';
import { openModelSource } from '../engine/model/source.ts';
import { embeddedModelSource } from '../engine/model/embedded.ts';
import { loadModelConfig } from '../engine/model/weights.ts';
import { AdapterPool } from '../engine/lora/pool.ts';
import { EngineHost } from '../engine/server/host.ts';
import { startServer } from '../engine/server/node.ts';
import type { RouteFn } from '../engine/server/app.ts';
import type { WeightFormat } from '../shaders/matmul/weights.ts';

export const SERVE_USAGE = `usage: lorafleet serve [--model <dir|url>] [--adapters <dir>] [--host 127.0.0.1] [--port 8080]
                      [--api-key <k>] [--max-loras N] [--max-lora-rank R] [--max-cpu-loras N]
                      [--kv-cache-bytes B] [--lora-modules name=path ...] [--router <file>] [--cors <origin>]
                      [--max-body-bytes B] [--max-queue N] [--grace-seconds S] [--weight-format f32|f16|q8]
`;

class UsageError extends Error {
  name = 'UsageError';
}

const int = (v: string | undefined, name: string, min = 1): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name}: expected an integer ≥ ${min}, got '${v}'`);
  return n;
};

/** vLLM's --lora-modules: `name=path` or a JSON object {"name", "path"}; several after one flag. */
export function parseLoraModules(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    let name: string | undefined, path: string | undefined;
    if (item.trim().startsWith('{')) {
      try {
        ({ name, path } = JSON.parse(item) as { name?: string; path?: string });
      } catch {
        throw new UsageError(`--lora-modules: '${item}' is not valid JSON`);
      }
    } else {
      const i = item.indexOf('=');
      if (i > 0) [name, path] = [item.slice(0, i), item.slice(i + 1)];
    }
    if (!name || !path) throw new UsageError(`--lora-modules: expected name=path or {"name": ..., "path": ...}, got '${item}'`);
    out[name] = resolve(path);
  }
  return out;
}

/** Every PEFT directory (adapter_config.json inside) directly under `dir`, by folder name. */
async function adaptersIn(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (!(ent.isDirectory() || ent.isSymbolicLink())) continue;
    if (await stat(join(p, 'adapter_config.json')).then((s) => s.isFile(), () => false)) out[ent.name] = p;
  }
  return out;
}

export async function serveCli(argv: string[]): Promise<number> {
  // vLLM style: `--lora-modules a=x b=y` (several values after one flag) → one flag per value
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    args.push(argv[i]!);
    if (argv[i] !== '--lora-modules') continue;
    for (let first = true; i + 1 < argv.length && !argv[i + 1]!.startsWith('--'); first = false) {
      if (!first) args.push('--lora-modules');
      args.push(argv[++i]!);
    }
  }
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        model: { type: 'string' },
        adapters: { type: 'string' },
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '8080' },
        'api-key': { type: 'string' },
        'max-loras': { type: 'string' },
        'max-lora-rank': { type: 'string' },
        'max-cpu-loras': { type: 'string' },
        'kv-cache-bytes': { type: 'string' },
        'lora-modules': { type: 'string', multiple: true },
        router: { type: 'string' },
        cors: { type: 'string' },
        'max-body-bytes': { type: 'string' },
        'max-queue': { type: 'string' },
        'grace-seconds': { type: 'string' },
        'weight-format': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(`lorafleet serve: ${(e as Error).message}\n${SERVE_USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  let port: number, maxLoras: number, maxRank: number, maxCpuLoras: number | undefined, kvBytes: number | undefined, maxBody: number | undefined, maxQueue: number | undefined, grace: number;
  let named: Record<string, string>;
  try {
    port = int(values.port, 'port', 0)!;
    maxLoras = int(values['max-loras'], 'max-loras') ?? 8;
    maxRank = int(values['max-lora-rank'], 'max-lora-rank') ?? 64;
    maxCpuLoras = int(values['max-cpu-loras'], 'max-cpu-loras');
    kvBytes = int(values['kv-cache-bytes'], 'kv-cache-bytes');
    maxBody = int(values['max-body-bytes'], 'max-body-bytes');
    maxQueue = int(values['max-queue'], 'max-queue');
    grace = int(values['grace-seconds'], 'grace-seconds', 0) ?? 30;
    if (values['weight-format'] && !['f32', 'f16', 'q8'].includes(values['weight-format'])) throw new UsageError('--weight-format must be f32, f16 or q8');
    named = parseLoraModules(values['lora-modules'] ?? []);
  } catch (e) {
    process.stderr.write(`lorafleet serve: ${(e as Error).message}\n${SERVE_USAGE}`);
    return 2;
  }
  const log = (e: Record<string, unknown>) => process.stdout.write(JSON.stringify(e.ts ? e : { ts: new Date().toISOString(), ...e }) + '\n');
  const adaptersDir = values.adapters ? resolve(values.adapters) : undefined;
  const adapters = { ...(adaptersDir ? await adaptersIn(adaptersDir) : {}), ...named };

  // vLLM's knobs in the pool's terms: max_loras adapters of max_lora_rank fit the GPU tier at once
  // (one batch holds at most max_loras), max_cpu_loras of that size fit the CPU tier.
  // no --model: the embedded stories260K (as createEngine({}) and `lorafleet generate`)
  const config = await loadModelConfig(values.model ? openModelSource(values.model) : embeddedModelSource());
  const perAdapter = AdapterPool.bytesPerPage(config) * maxRank;
  const lora = { maxRank, maxSlots: maxLoras, gpuBudgetBytes: perAdapter * maxLoras, ...(maxCpuLoras ? { cpuBudgetBytes: perAdapter * maxCpuLoras } : {}) };
  // --router: model "auto" asks it (router/ decides from the messages; the server reports and counts)
  let router: RouteFn | undefined;
  if (values.router) {
    const { loadRouter } = await import('../router/index.ts');
    const r = await loadRouter(resolve(values.router));
    router = r.asRouteFn(); // its decisions name the fallback adapter (served when the chosen one is not loaded)
  }
  const model = values.model;
  const host = await EngineHost.start({
    create: () => createEngine({ model, adapters, lora, weightFormat: values['weight-format'] as WeightFormat | undefined, ...(kvBytes ? { kvCacheBytes: kvBytes } : {}), ...(maxQueue ? { maxQueue } : {}) }),
    log,
  });
  const srv = await startServer(host, {
    hostname: values.host, port, apiKey: values['api-key'] ?? process.env.LORAFLEET_API_KEY, adaptersDir, cors: values.cors, maxBodyBytes: maxBody, maxLoras,
    modelRoot: model ?? 'embedded:stories260K', adapterRoots: adapters, log, router,
  });
  log({ level: 'info', msg: 'serving', url: srv.url, model: host.engine!.modelName, adapters: Object.keys(adapters), device: host.engine!.runtime.info.description || host.engine!.runtime.info.device });
  await new Promise<void>((res) => {
    const stop = (sig: string) => {
      log({ level: 'info', msg: 'shutting down', signal: sig, inflight: host.inflight, grace_s: grace });
      srv.close(grace * 1000).then(res, res);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log({ level: 'info', msg: 'stopped' });
  return 0;
}
