// bench/serve: what the HTTP layer costs. The same N concurrent greedy requests run, in
// interleaved rounds, (a) through the library (engine.generate), (b) through `lorafleet serve`
// on loopback as SSE streams, (c) as non-streamed completions — one engine behind both. Reported:
// aggregate tok/s of each, the ratios http_stream_vs_library and http_plain_vs_library (median of
// the rounds, with min–max spread), and the median time to first token of (a) and (b). Host load
// is recorded; on a shared machine only the ratios mean something.
//
//   npx tsx bench/serve/run.ts [--requests 16] [--max-tokens 32] [--rounds 9] [--json] [--no-write]
import '../../engine/node-install.ts'; // Dawn + local files when this bench runs on its own
import { parseArgs } from 'node:util';
import { loadavg, cpus } from 'node:os';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEngine } from '../../engine/api/engine.ts';
import { EngineHost } from '../../engine/server/host.ts';
import { startServer } from '../../engine/server/node.ts';
import { adapterLine, runIfMain } from '../common.ts';

const here = dirname(fileURLToPath(import.meta.url));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { requests: { type: 'string', default: '16' }, 'max-tokens': { type: 'string', default: '32' }, rounds: { type: 'string', default: '9' }, json: { type: 'boolean', default: false }, 'no-write': { type: 'boolean', default: false } },
  });
  const N = Number(values.requests), M = Number(values['max-tokens']), ROUNDS = Number(values.rounds);
  const load0 = loadavg()[0]!;
  const host = await EngineHost.start({ create: () => createEngine({ kvBlocks: 256, kvBlockSize: 16, maxBatchTokens: 256 }) });
  const srv = await startServer(host, { port: 0 });
  const engine = host.engine!;
  const device = adapterLine(engine.runtime);
  const prompt = (i: number) => [{ role: 'user' as const, content: ['Once upon a time', 'The little dog', 'A big red ball', 'Lily went to the park'][i % 4]! }];

  const library = async () => {
    const t0 = performance.now();
    const ttft: number[] = [];
    let toks = 0;
    await Promise.all(Array.from({ length: N }, async (_, i) => {
      let first = true;
      for await (const t of engine.generate({ messages: prompt(i) }, { max_tokens: M, temperature: 0 })) {
        if (t.token < 0) continue;
        if (first) ttft.push(performance.now() - t0);
        first = false;
        toks++;
      }
    }));
    return { tokS: toks / ((performance.now() - t0) / 1000), ttft: median(ttft) };
  };
  const http = async (stream: boolean) => {
    const t0 = performance.now();
    const ttft: number[] = [];
    let toks = 0;
    await Promise.all(Array.from({ length: N }, async (_, i) => {
      const r = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: prompt(i), max_tokens: M, temperature: 0, stream, stream_options: stream ? { include_usage: true } : undefined }) });
      if (!stream) {
        toks += (await r.json()).usage.completion_tokens;
        return;
      }
      const reader = r.body!.getReader();
      let buf = '';
      let first = true;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += new TextDecoder().decode(value);
        if (first && /"content":"[^"]/.test(buf)) {
          ttft.push(performance.now() - t0);
          first = false;
        }
      }
      const usage = buf.split('\n').filter((l) => l.startsWith('data: {') && l.includes('"usage":{')).pop();
      toks += JSON.parse(usage!.slice(6)).usage.completion_tokens;
    }));
    return { tokS: toks / ((performance.now() - t0) / 1000), ttft: ttft.length ? median(ttft) : NaN };
  };

  await library(); // warm-up: pipelines, buffers at the largest batch
  await http(true);
  const rows: Array<{ lib: number; sse: number; plain: number; ttftLib: number; ttftSse: number }> = [];
  for (let r = 0; r < ROUNDS; r++) {
    const lib = await library();
    const sse = await http(true);
    const plain = await http(false);
    rows.push({ lib: lib.tokS, sse: sse.tokS, plain: plain.tokS, ttftLib: lib.ttft, ttftSse: sse.ttft });
    if (!values.json) console.log(`round ${r + 1}: library ${lib.tokS.toFixed(1)} tok/s · SSE ${sse.tokS.toFixed(1)} · plain ${plain.tokS.toFixed(1)} · TTFT ${lib.ttft.toFixed(0)} / ${sse.ttft.toFixed(0)} ms`);
  }
  await srv.close(1000);
  const ratio = (k: 'sse' | 'plain') => rows.map((x) => x[k] / x.lib);
  const spread = (xs: number[]) => [Math.min(...xs), Math.max(...xs)];
  const result = {
    http_stream_vs_library: median(ratio('sse')),
    http_stream_vs_library_spread: spread(ratio('sse')),
    http_plain_vs_library: median(ratio('plain')),
    http_plain_vs_library_spread: spread(ratio('plain')),
    library_tok_s: median(rows.map((x) => x.lib)),
    http_stream_tok_s: median(rows.map((x) => x.sse)),
    ttft_library_ms: median(rows.map((x) => x.ttftLib)),
    ttft_http_stream_ms: median(rows.map((x) => x.ttftSse)),
    requests: N, max_tokens: M, rounds: ROUNDS, device, cores: cpus().length, load: [load0, loadavg()[0]!], date: new Date().toISOString(),
  };
  if (!values['no-write']) {
    writeFileSync(join(here, 'results.json'), JSON.stringify(result, null, 2) + '\n');
    const f = (x: number) => x.toFixed(3);
    writeFileSync(
      join(here, 'results.md'),
      `# bench/serve results\n\n${result.date} · ${device} · ${result.cores} cores · load ${result.load.map((l) => l.toFixed(1)).join(' → ')}\n\n` +
        `${N} concurrent greedy chat requests × ${M} tokens on the embedded stories260K, ${ROUNDS} interleaved rounds (library, SSE, plain), median [min–max].\n\n` +
        `| http_stream_vs_library | http_plain_vs_library | library tok/s | SSE tok/s | TTFT library ms | TTFT SSE ms |\n|---|---|---|---|---|---|\n` +
        `| ${f(result.http_stream_vs_library)} [${result.http_stream_vs_library_spread.map(f).join('–')}] | ${f(result.http_plain_vs_library)} [${result.http_plain_vs_library_spread.map(f).join('–')}] | ${result.library_tok_s.toFixed(1)} | ${result.http_stream_tok_s.toFixed(1)} | ${result.ttft_library_ms.toFixed(0)} | ${result.ttft_http_stream_ms.toFixed(0)} |\n`,
    );
  }
  if (values.json) console.log(JSON.stringify(result, null, 2));
  return 0;
}

runIfMain(import.meta.url, run);
