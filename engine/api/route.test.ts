// resolveRoute: the router's decision → the model that serves (engine/api/route.ts).
import { describe, expect, it } from 'vitest';
import { resolveRoute } from './route.ts';

const loaded = (names: string[]) => (n: string) => names.includes(n);

describe('resolveRoute (model "auto")', () => {
  it('a loaded adapter serves as decided', () => {
    const d = { route: 'tool', adapter: 'tool_adapter', score: 0.8, fallback: 'chat_adapter' };
    expect(resolveRoute(d, 'base-model', loaded(['tool_adapter', 'chat_adapter']))).toEqual(d);
  });
  it("an adapter that is not loaded: the router's fallback when loaded, and not_loaded names the missing one", () => {
    const d = { route: 'tool', adapter: 'tool_adapter', score: 0.8, fallback: 'chat_adapter' };
    expect(resolveRoute(d, 'base-model', loaded(['chat_adapter']))).toEqual({ ...d, adapter: 'chat_adapter', not_loaded: 'tool_adapter' });
  });
  it('no fallback, or the fallback not loaded either, or the fallback is the missing adapter: the base model', () => {
    for (const fallback of [undefined, null, 'chat_adapter', 'tool_adapter', 'base'])
      expect(resolveRoute({ route: 'tool', adapter: 'tool_adapter', fallback }, 'base-model', loaded([])), String(fallback)).toMatchObject({ adapter: null, not_loaded: 'tool_adapter' });
  });
  it('the base model (null, "base" or its name) is always there', () => {
    for (const adapter of [null, 'base', 'base-model']) {
      const d = { route: null, adapter, fallback: 'chat_adapter' };
      expect(resolveRoute(d, 'base-model', loaded([]))).toEqual(d);
    }
  });
});
