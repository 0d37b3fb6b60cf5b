// `lorafleet serve` as a process: starts on a free port (--port 0), serves --adapters by folder
// name and --lora-modules as vLLM names them, answers, and exits 0 on SIGTERM after a graceful close.
import { describe, it, expect, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseLoraModules } from './serve.ts';
import { loadModelConfig } from '../engine/model/weights.ts';
import { LocalDirSource } from '../engine/model/source.ts';
import { savePeftAdapter, adapterSpec } from '../engine/lora/peft.ts';
import { STORIES_DIR } from '../tests/fixtures/stories.ts';
import { randomLoraAdapter } from '../tests/helpers/random-lora.ts';

const dir = mkdtempSync(join(tmpdir(), 'lorafleet-serve-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('lorafleet serve (CLI)', () => {
  it('--lora-modules: name=path and vLLM JSON', () => {
    expect(parseLoraModules(['a=/x/a', '{"name": "b", "path": "/x/b"}'])).toEqual({ a: '/x/a', b: '/x/b' });
    expect(() => parseLoraModules(['nopath'])).toThrow(/name=path/);
    expect(() => parseLoraModules(['{"name": 1'])).toThrow(/JSON/);
  });

  it('serves, then SIGTERM closes gracefully with exit code 0', { timeout: 120_000 }, async () => {
    const config = await loadModelConfig(new LocalDirSource(STORIES_DIR));
    // the shipped router's adapters, so model "auto" has somewhere to go
    const routed = ['tool_adapter', 'classifier_adapter', 'ner_adapter', 'chat_adapter'];
    for (const [i, name] of ['tone', ...routed].entries()) await savePeftAdapter(join(dir, 'adapters', name), adapterSpec(randomLoraAdapter(config, { name, r: 2, seed: 1 + i })));
    const routerFile = fileURLToPath(new URL('../router/default/router.json', import.meta.url));
    await savePeftAdapter(join(dir, 'extra'), adapterSpec(randomLoraAdapter(config, { name: 'extra', r: 2, seed: 2 })));
    const bin = fileURLToPath(new URL('../bin/lorafleet.mjs', import.meta.url));
    const p = spawn(process.execPath, [bin, 'serve', '--model', STORIES_DIR, '--adapters', join(dir, 'adapters'), '--port', '0', '--api-key', 'k', '--lora-modules', `extra=${join(dir, 'extra')}`, '--router', routerFile, '--grace-seconds', '5'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: Array<Record<string, unknown>> = [];
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    let buf = '';
    const serving = new Promise<string>((res, rej) => {
      p.stdout.on('data', (d) => {
        buf += d;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const l = JSON.parse(buf.slice(0, i));
          buf = buf.slice(i + 1);
          lines.push(l);
          if (l.msg === 'serving') res(l.url as string);
        }
      });
      p.once('exit', (code) => rej(new Error(`exited ${code}: ${err}`)));
    });
    const url = await serving;
    const auth = { authorization: 'Bearer k', 'content-type': 'application/json' };
    const models = await (await fetch(`${url}/v1/models`, { headers: auth })).json();
    expect(models.data.map((m: { id: string }) => m.id).sort()).toEqual(['extra', 'stories260K', 'tone', ...routed].sort());
    // model "auto": the router's decision (the same router loaded here) in the headers
    const { loadRouter } = await import('../router/index.ts');
    const router = await loadRouter(routerFile);
    for (const text of ['Restart the billing worker on node 3', 'Extract the people and places: Ana flew to Lima.']) {
      const messages = [{ role: 'user', content: text }];
      const want = await router.route(messages);
      const a = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ model: 'auto', messages, max_tokens: 2 }) });
      expect(a.status).toBe(200);
      expect(a.headers.get('x-lorafleet-route')).toBe(want.route ?? '(none)');
      expect(a.headers.get('x-lorafleet-adapter')).toBe(want.adapter);
      expect((await a.json()).model).toBe(want.adapter);
    }
    const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ model: 'tone', prompt: 'Once upon a time', max_tokens: 3 }) });
    expect(r.status).toBe(200);
    const exited = new Promise<number | null>((res) => p.once('exit', (code) => res(code)));
    p.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['serving', 'http', 'generation', 'shutting down', 'stopped']));
  });
});
