// The evaluation's scoring functions (no GPU): entity F1, the tool-call spelling, the NER regex.
import { describe, it, expect } from 'vitest';
import { entityF1, nerRegex } from './evaluate.ts';
import { canonicalToolCall, parseToolCall } from './sets.ts';

const e = (type: string, text: string, start: number) => ({ type, text, start, end: start + text.length });

describe('pipeline evaluation scoring', () => {
  it('entity F1 counts each gold entity once (duplicates in the prediction are false positives)', () => {
    const gold = [[e('SERVICE', 'scheduler', 0), e('USER', 'amara.okafor', 20)], [e('TEAM', 'Identity', 3)]];
    const pred = [[e('SERVICE', 'scheduler', 0), e('SERVICE', 'scheduler', 0)], []];
    const k = (x: { type: string; text: string; start: number; end: number }) => `${x.type}|${x.text}|${x.start}|${x.end}`;
    const r = entityF1(pred, gold, k);
    expect(r.precision).toBeCloseTo(1 / 2);
    expect(r.recall).toBeCloseTo(1 / 3);
    expect(r.f1).toBeCloseTo((2 * (1 / 2) * (1 / 3)) / (1 / 2 + 1 / 3));
    expect(entityF1([[]], [[]], k).f1).toBe(0);
    // wrong offsets: wrong under the strict key, right under (type, text)
    const shifted = [[e('SERVICE', 'scheduler', 1)]];
    expect(entityF1(shifted, [[e('SERVICE', 'scheduler', 0)]], k).f1).toBe(0);
    expect(entityF1(shifted, [[e('SERVICE', 'scheduler', 0)]], (x) => `${x.type}|${x.text}`).f1).toBe(1);
  });

  it('tool calls are rewritten in the tool grammar spelling; non-calls are not', () => {
    expect(canonicalToolCall('<tool_call>{"name":"lookup_user","arguments":{"username":"a.b"}}</tool_call>')).toBe('<tool_call>{"name": "lookup_user", "arguments": {"username": "a.b"}}</tool_call>');
    // nested values in the grammar's spelling too (separators ", " and ": ", no newlines)
    expect(canonicalToolCall('<tool_call>{"name":"f","arguments":{"a":[1,{"b":true}],"c":"x, y"}}</tool_call>')).toBe('<tool_call>{"name": "f", "arguments": {"a": [1, {"b": true}], "c": "x, y"}}</tool_call>');
    expect(canonicalToolCall('The answer is 42.')).toBeNull();
    expect(canonicalToolCall('<tool_call>{"name": 3, "arguments": {}}</tool_call>')).toBeNull();
    expect(canonicalToolCall('<tool_call>{"name": "x", "arguments": {</tool_call>')).toBeNull();
    expect(parseToolCall('<tool_call>{"name":"f","arguments":{"a":1}}</tool_call>')).toEqual({ name: 'f', arguments: { a: 1 } });
  });

  it('the NER regex accepts the data engine spelling and nothing else', () => {
    const re = new RegExp(`^${nerRegex(['SERVICE', 'USER'], 2)}$`);
    expect(re.test('[]')).toBe(true);
    expect(re.test('[{"type":"SERVICE","text":"scheduler","start":10,"end":19}]')).toBe(true);
    expect(re.test('[{"type":"SERVICE","text":"a","start":1,"end":2},{"type":"USER","text":"b.c","start":3,"end":6}]')).toBe(true);
    expect(re.test('[{"type":"TEAM","text":"x","start":1,"end":2}]')).toBe(false); // not an offered type
    expect(re.test('[{"type":"SERVICE","text":"a","start":1,"end":2},{"type":"USER","text":"b","start":3,"end":4},{"type":"USER","text":"c","start":5,"end":6}]')).toBe(false); // over maxItems
    expect(re.test('[{"text":"a","type":"SERVICE","start":1,"end":2}]')).toBe(false);
  });
});

describe('pipeline report', () => {
  it('the HTML page is self-contained: chart.js inlined, data in the page', async () => {
    const { renderHtml, renderMarkdown } = await import('./report.ts');
    const r = {
      generatedAt: 'now', model: 'm', machine: { cpus: '2', memoryGiB: 1, loadavg: [1, 1, 1], node: 'v20', platform: 'linux' }, adapter: { vendor: 'v', architecture: 'a', device: 'd', description: 'x' },
      stages: [{ stage: 'cpt', seconds: 1.5, skipped: false, resumed: false, summary: { steps: 2 } }], losses: { cpt: { train: [[1, 2]] as [number, number][], eval: [], log: [] } },
      eval: { tool: { 'domain-base': { n: 2, validity: 0.5, complete: 1, name_exact: 0, args_exact: 0 } } }, examples: {}, router: null, labelSets: {},
    };
    const md = renderMarkdown(r);
    expect(md).toContain('| tool | validity | 50.0 % |');
    const html = await renderHtml(r, md);
    expect(html).toMatch(/Chart\.js v4/); // the library's banner: inlined, not fetched
    expect(html).not.toMatch(/<script[^>]+src=/);
  });
});
