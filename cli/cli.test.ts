// CLI manners, tried as a new user would: --version, `<command> --help` prints help (and runs
// nothing), negative numbers without '=', several --adapter name=dir, the max-tokens clamp notice.
import { afterEach, describe, expect, test, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { main } from './main.ts';
import { joinNegativeValues, namedPath } from './args.ts';

let out = '';
let err = '';
function capture() {
  out = '';
  err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
}
afterEach(() => vi.restoreAllMocks());

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('lorafleet CLI manners', () => {
  test('--version / -V print the package version', async () => {
    capture();
    expect(await main(['--version'])).toBe(0);
    expect(await main(['-V'])).toBe(0);
    expect(out).toBe(`lorafleet ${version}\nlorafleet ${version}\n`);
  });

  test('<command> --help prints that command\'s help, with defaults, and runs nothing', async () => {
    capture();
    expect(await main(['doctor', '--help'])).toBe(0);
    expect(out).toMatch(/^usage: lorafleet doctor/);
    expect(out).not.toMatch(/adapter:|self-check:\s+\d/); // the doctor did not run
    out = '';
    expect(await main(['generate', '--help'])).toBe(0);
    expect(out).toMatch(/--temperature T .*default: the model's generation_config\.json/s);
    expect(out).toMatch(/--max-tokens N .*default: 256/s);
    expect(out).toMatch(/default: the embedded stories260K/);
    out = '';
    expect(await main(['help', 'generate'])).toBe(0);
    expect(out).toMatch(/^usage: lorafleet generate/);
  });

  test('no command: help on stderr, exit 2; an unknown command names itself', async () => {
    capture();
    expect(await main([])).toBe(2);
    expect(err).toMatch(/Usage: lorafleet <command>/);
    expect(await main(['frobnicate'])).toBe(2);
    expect(err).toMatch(/unknown command 'frobnicate'/);
  });

  test('negative numbers need no "=": --x -1 is --x=-1', () => {
    const valued = new Set(['temperature', 'seed']);
    expect(joinNegativeValues(['--temperature', '-1', '--seed', '-.5', '--json', '-h'], valued)).toEqual(['--temperature=-1', '--seed=-.5', '--json', '-h']);
    expect(joinNegativeValues(['--prompt', '-x'], new Set(['prompt']))).toEqual(['--prompt', '-x']);
  });

  test('an out-of-range negative value is reported as such (not as an unknown option)', async () => {
    capture();
    expect(await main(['generate', '--prompt', 'x', '--temperature', '-1'])).toBe(2);
    expect(err).toMatch(/--temperature must be in \[0, 2\] \(got -1\)/);
  });

  test('--adapter name=dir, repeatable; several need --use', async () => {
    expect(namedPath('tone=./adapters/tone')).toEqual(['tone', './adapters/tone']);
    expect(namedPath('./adapters/tool/')).toEqual(['tool', './adapters/tool/']);
    capture();
    expect(await main(['generate', '--prompt', 'x', '--adapter', 'a=/nonexistent/a', '--adapter', 'b=/nonexistent/b'])).toBe(2);
    expect(err).toMatch(/2 adapters given \(a, b\): choose the one for this prompt with --use/);
    expect(await main(['generate', '--prompt', 'x', '--adapter', 'a=/x/1', '--adapter', 'a=/x/2'])).toBe(2);
    expect(err).toMatch(/two adapters are named 'a'/);
    expect(await main(['generate', '--prompt', 'x', '--adapter', 'a=/x/1', '--use', 'c'])).toBe(2);
    expect(err).toMatch(/--use c: no such adapter \(given: a\)/);
  });

  test('--max-tokens beyond the context is clamped with a notice', async () => {
    capture();
    // a long prompt leaves little room in stories260K's 512 positions (keeps the test fast)
    const prompt = 'Once upon a time'.concat(' there was a girl.'.repeat(68));
    expect(await main(['generate', '--prompt', prompt, '--max-tokens', '100000', '--json'])).toBe(0);
    const m = /note: --max-tokens 100000 does not fit the context \(512 tokens, (\d+) in the prompt\): clamped to (\d+)/.exec(err);
    expect(m, err).not.toBeNull();
    const r = JSON.parse(out) as { prompt_ids: number[]; completion_ids: number[] };
    expect(Number(m![1])).toBe(r.prompt_ids.length);
    expect(Number(m![2])).toBe(512 - r.prompt_ids.length);
    expect(r.completion_ids.length).toBeLessThanOrEqual(Number(m![2]));
    err = '';
    expect(await main(['generate', '--prompt', prompt.repeat(2)])).toBe(2);
    expect(err).toMatch(/the prompt has \d+ tokens; stories260K's context holds 512/);
  });
});
