// `lorafleet doctor`: which WebGPU adapter this machine gives us, what it can do, and
// whether our kernels compute correctly on it (a quick run of the kernel checks).
import { parseArgs } from 'node:util';
import { Runtime } from '../shaders/gpu/runtime.ts';
import type { KernelCheck } from '../shaders/lib/check.ts';

/** Ops whose checks make up the self-check (a subset of shaders/<op>/<op>.check.ts, fast everywhere). */
const SELF_CHECK_OPS = ['add', 'matmul', 'rmsnorm', 'rope', 'silu_mul', 'embedding', 'argmax', 'attention'];

async function loadChecks(): Promise<KernelCheck[]> {
  const out: KernelCheck[] = [];
  for (const op of SELF_CHECK_OPS) {
    const mod = (await import(`../shaders/${op}/${op}.check.ts`)) as { checks: KernelCheck[] }; // .js in dist/ (rewritten by tsc)
    // The first two checks of each op: the small shapes.
    out.push(...mod.checks.slice(0, 2));
  }
  return out;
}

const USAGE = `usage: lorafleet doctor [--json]

Prints the WebGPU adapter this machine gives lorafleet (vendor, backend, CPU or hardware), its
features and limits, then runs a quick kernel self-check (the first checks of ${SELF_CHECK_OPS.length} kernels
against their float64 references). Exit status 1 when a check fails.

  --json      one JSON object {adapter, selfCheck} instead of text
  -h, --help  this text
`;

export async function doctorCli(argv: string[]): Promise<number> {
  let json = false;
  try {
    const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } }, strict: true });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    json = values.json;
  } catch (e) {
    process.stderr.write(`lorafleet doctor: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const rt = await Runtime.create();
  const { info } = rt;
  const checks = await loadChecks();
  const results: Array<{ name: string; ok: boolean; maxRelErr: number; bound: number; error?: string }> = [];
  for (const c of checks) {
    try {
      rt.device.pushErrorScope('validation');
      const r = await c.run(rt);
      const err = await rt.device.popErrorScope();
      results.push({ name: c.name, ok: !err && r.maxRelErr < r.bound, maxRelErr: r.maxRelErr, bound: r.bound, error: err?.message });
    } catch (e) {
      results.push({ name: c.name, ok: false, maxRelErr: NaN, bound: 0, error: (e as Error).message });
    }
  }
  const failed = results.filter((r) => !r.ok).length;
  if (json) {
    console.log(JSON.stringify({ adapter: info, selfCheck: results }, null, 2));
  } else {
    const kind = info.isCpu ? 'CPU (software)' : 'hardware';
    console.log(`adapter:     ${info.description || info.device || '(unnamed)'} — ${info.vendor} ${info.architecture} [${kind}, ${info.backend}]`);
    console.log(`features:    shader-f16 ${yes(info.features.shaderF16)} · subgroups ${yes(info.features.subgroups)} · timestamp-query ${yes(info.features.timestampQuery)}`);
    console.log('limits:');
    for (const [k, v] of Object.entries(info.limits)) console.log(`  ${k.padEnd(36)} ${v}`);
    console.log(`self-check:  ${results.length - failed}/${results.length} kernel checks pass`);
    for (const r of results) {
      const err = Number.isFinite(r.maxRelErr) ? r.maxRelErr.toExponential(2) : 'n/a';
      console.log(`  ${r.ok ? 'ok  ' : 'FAIL'} ${r.name.padEnd(44)} rel err ${err} (bound ${r.bound})${r.error ? ' — ' + r.error : ''}`);
    }
  }
  rt.destroyAll();
  return failed ? 1 : 0;
}

function yes(b: boolean): string {
  return b ? 'yes' : 'no';
}
