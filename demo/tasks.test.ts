// The page's model "auto" route function (demo/tasks.ts pageRouteFn) with the engine's resolution of
// a decision (engine/api/route.ts): an adapter the worker does not hold is served by the router's
// fallback adapter, as the library and the server do with Router.asRouteFn().
import { describe, expect, it } from 'vitest';
import type { ChatMessage, RouteDecision } from 'lorafleet';
import { pageRouteFn, settleEach, type PageRouter } from './tasks.ts';
import { resolveRoute } from '../engine/api/route.ts';

const user = (content: string): ChatMessage[] => [{ role: 'system', content: 'Call the tool.' }, { role: 'user', content }];

describe('demo pageRouteFn', () => {
  const calls: string[] = [];
  const router: PageRouter = {
    route: async (m) => (calls.push(String(m.at(-1)!.content)), { route: 'tool', adapter: 'tool_adapter', score: 0.9 }),
    config: { fallback: { adapter: 'chat_adapter' } },
  };

  it("a decision for an adapter the worker lacks is served by the router's fallback adapter, not the base", async () => {
    const d = await pageRouteFn(router, new Map())(user('restart the billing worker'));
    expect(d).toMatchObject({ route: 'tool', adapter: 'tool_adapter', fallback: 'chat_adapter' });
    expect(resolveRoute(d, 'stories260K', (n) => n === 'chat_adapter')).toMatchObject({ adapter: 'chat_adapter', not_loaded: 'tool_adapter' });
  });

  it('reuses the decision send() took for the user turn (no second routing), with the fallback', async () => {
    calls.length = 0;
    const taken: RouteDecision = { route: 'ner', adapter: 'ner_adapter', score: 0.7 };
    const d = await pageRouteFn(router, new Map([['HL-4031 on scheduler', taken]]))(user('HL-4031 on scheduler'));
    expect(calls).toEqual([]);
    expect(d).toEqual({ ...taken, fallback: 'chat_adapter' });
  });
});

describe('demo settleEach (router and adapter loads at boot)', () => {
  it('a load that fails is named with its error; the others still load', async () => {
    const r = await settleEach({
      router: async () => { throw new Error('router.json: HTTP 404'); },
      tool_adapter: async () => 'tool bytes',
      ner_adapter: async () => 'ner bytes',
    });
    expect(r.ok).toEqual({ tool_adapter: 'tool bytes', ner_adapter: 'ner bytes' });
    expect(r.failed).toEqual({ router: 'router.json: HTTP 404' });
  });
});
