// The demo's tasks: for each route the request the adapter expects (its system prompt and the
// output constraint its task uses: tools for tool calls, guided_choice for labels, a regex of the
// entity list for NER), and how each kind of output is shown (tool calls checked against their JSON
// schema with ajv, labels against their set, entities parsed and highlighted in the text).
import Ajv from 'ajv';
import type { ChatCompletion, ChatCompletionRequest, ChatMessage, RouteDecision } from 'lorafleet';

/** What `lorafleet start` tells the demo about the domain (GET /demo-api/info). */
export interface DomainInfo {
  system: { chat: string; tool: string; ner: string };
  classifierSystem: Record<string, string>;
  labelSets: { name: string; labels: string[] }[];
  tools: { name: string; description: string; parameters: Record<string, unknown> & { required?: string[]; properties?: Record<string, unknown> } }[];
  entities: unknown;
}

/** The text of the last user message. */
export const lastUser = (m: ChatMessage[]): string => {
  const c = [...m].reverse().find((x) => x.role === 'user')?.content ?? '';
  return typeof c === 'string' ? c : c.map((p) => p.text).join('');
};

/** What the page needs of lorafleet/router's Router. */
export interface PageRouter {
  route(messages: ChatMessage[]): Promise<RouteDecision>;
  readonly config: { fallback: { adapter: string } };
}

/**
 * The engine's model "auto" in the page: the decision send() already took for the request's user turn
 * (`decided`), else a fresh one — with the router's fallback adapter, which the engine serves when the
 * chosen adapter is not in the worker (Router.route() does not carry it; without it the base would serve).
 */
export function pageRouteFn(router: PageRouter, decided: Map<string, RouteDecision>): (messages: ChatMessage[]) => Promise<RouteDecision> {
  return async (messages) => ({ ...(decided.get(lastUser(messages)) ?? (await router.route(messages))), fallback: router.config.fallback.adapter });
}

/**
 * Run independent loads (the router, each adapter's files) so that one failing loses only itself:
 * what loaded, and for each failure its name and message (the page boots without it and says so).
 */
export async function settleEach<T>(jobs: Record<string, () => Promise<T>>): Promise<{ ok: Record<string, T>; failed: Record<string, string> }> {
  const ok: Record<string, T> = {};
  const failed: Record<string, string> = {};
  for (const [name, job] of Object.entries(jobs)) {
    try {
      ok[name] = await job();
    } catch (e) {
      failed[name] = (e as Error)?.message ?? String(e);
    }
  }
  return { ok, failed };
}

export const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function entityTypes(d: DomainInfo): string[] {
  const e = d.entities as unknown;
  if (Array.isArray(e)) return e.map((x: { type?: string; name?: string }) => x.type ?? x.name ?? '').filter(Boolean);
  return Object.keys((e as Record<string, unknown>) ?? {});
}

/** The text a classifier / NER request is about: after "…:" if the user wrote an instruction. */
export const payload = (t: string) => (/^(classify|extract|label|tag|find)[^:]*:\s*/i.test(t) ? t.replace(/^[^:]*:\s*/, '').replace(/^"(.*)"$/, '$1') : t);

export function labelSetFor(d: DomainInfo, text: string): { name: string; labels: string[] } {
  const sets = d.labelSets ?? [];
  return sets.find((s) => new RegExp(`\\b${s.name}\\b`, 'i').test(text)) ?? sets[0]!;
}

/** The entity-list regex in the data engine's spelling (cli/pipeline/evaluate.ts nerRegex). */
export function nerRegex(types: string[], maxItems = 6): string {
  const item = `\\{"type":"(${types.join('|')})","text":"[^"\\\\]{1,48}","start":[0-9]{1,4},"end":[0-9]{1,4}\\}`;
  return `\\[(${item}(,${item}){0,${maxItems - 1}})?\\]`;
}

export type Req = ChatCompletionRequest & { guided_choice?: string[]; guided_regex?: string };

/** The request for a route (model "auto": the router's decision picks the adapter). */
export function requestFor(d: DomainInfo | null, route: string | null, text: string, model = 'auto'): { req: Req; labelSet?: string } {
  const user = (content: string): ChatMessage => ({ role: 'user', content });
  if (!d) return { req: { model, messages: [user(text)], max_tokens: 64, temperature: 0 } };
  switch (route) {
    case 'tool':
      return { req: { model, messages: [{ role: 'system', content: d.system.tool }, user(text)], tools: d.tools.map((t) => ({ type: 'function', function: t })), tool_choice: 'required', parallel_tool_calls: false, max_tokens: 128, temperature: 0 } as Req };
    case 'classifier': {
      const set = labelSetFor(d, text);
      return { req: { model, messages: [{ role: 'system', content: d.classifierSystem[set.name] ?? '' }, user(payload(text))], guided_choice: set.labels, max_tokens: 12, temperature: 0 }, labelSet: set.name };
    }
    case 'ner':
      return { req: { model, messages: [{ role: 'system', content: d.system.ner }, user(payload(text))], guided_regex: nerRegex(entityTypes(d)), max_tokens: 200, temperature: 0 } };
    default:
      return { req: { model, messages: [{ role: 'system', content: d.system.chat }, user(text)], max_tokens: 64, temperature: 0 } };
  }
}

const ajv = new Ajv({ allErrors: true, strict: false });
const validators = new Map<string, ReturnType<typeof ajv.compile>>();

/** null when the call names an offered tool and its arguments validate against that tool's JSON schema; else why not. */
export function validateCall(d: DomainInfo, name: string, argsJson: string): string | null {
  const t = d.tools.find((x) => x.name === name);
  if (!t) return `unknown tool ${name}`;
  let args: unknown;
  try {
    args = JSON.parse(argsJson);
  } catch (e) {
    return `arguments are not JSON: ${(e as Error).message}`;
  }
  let v = validators.get(name);
  if (!v) validators.set(name, (v = ajv.compile(t.parameters)));
  return v(args) ? null : ajv.errorsText(v.errors);
}

const COLORS: Record<string, string> = { ERROR_CODE: '#ffd6a5', SERVICE: '#caffbf', USER: '#9bf6ff', TEAM: '#bdb2ff', ALERT: '#ffadad' };

export function renderEntities(text: string, raw: string): string {
  let ents: { type: string; text: string; start: number; end: number }[];
  try {
    ents = JSON.parse(raw);
    if (!Array.isArray(ents)) throw new Error('not a list');
  } catch {
    return `<span class="badge warn" data-kind="entities_unparsed">entities did not parse</span> <code>${esc(raw)}</code>`;
  }
  // highlight by offsets when they match the text, else by the first occurrence of the entity text
  const spans = ents
    .map((e) => (text.slice(e.start, e.end) === e.text ? e : { ...e, start: text.indexOf(e.text), end: text.indexOf(e.text) + e.text.length }))
    .filter((e) => e.start >= 0 && e.text.length > 0)
    .sort((a, b) => a.start - b.start);
  let html = '';
  let at = 0;
  for (const e of spans) {
    if (e.start < at) continue;
    html += esc(text.slice(at, e.start)) + `<mark style="background:${COLORS[e.type] ?? '#eee'}" data-entity="${esc(e.type)}">${esc(text.slice(e.start, e.end))}<sub>${esc(e.type)}</sub></mark>`;
    at = e.end;
  }
  return `<div data-kind="entities" data-count="${ents.length}" data-raw="${esc(raw)}">${html + esc(text.slice(at))}</div><div class="meta">${ents.length} entit${ents.length === 1 ? 'y' : 'ies'}: <code>${esc(raw)}</code></div>`;
}

/** The answer's body as its task shows it. */
export function renderAnswer(d: DomainInfo | null, route: string | null, text: string, c: ChatCompletion, labelSet?: string): string {
  const ch = c.choices[0]!;
  const m = ch.message;
  if (d && route === 'tool') {
    if (m.tool_calls?.length) {
      return m.tool_calls
        .map((tc) => {
          const bad = validateCall(d, tc.function.name, tc.function.arguments);
          return `<div class="tool" data-kind="tool_call" data-name="${esc(tc.function.name)}" data-arguments="${esc(tc.function.arguments)}" data-valid="${bad ? 'false' : 'true'}"><b>call</b> ${esc(tc.function.name)}(${esc(tc.function.arguments)}) ${bad ? `<span class="badge warn">${esc(bad)}</span>` : '<span class="badge">valid against its schema</span>'}</div>`;
        })
        .join('');
    }
    return `<div class="tool" data-kind="tool_call_incomplete" data-finish="${esc(ch.finish_reason)}"><span class="badge warn">no complete call (${esc(ch.finish_reason)})</span> ${esc(m.content ?? '')}</div>`;
  }
  if (d && route === 'classifier') return `<span class="label" data-kind="label" data-label-set="${esc(labelSet ?? '')}">${esc(m.content ?? '')}</span> <span class="meta">${esc(labelSet ?? '')}</span>`;
  if (d && route === 'ner') return renderEntities(payload(text), m.content ?? '');
  return `<div data-kind="text">${esc(m.content ?? '')}</div>`;
}
