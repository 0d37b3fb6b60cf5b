// Request fields → one ConstraintSpec (checked), and tool calls back out of generated text.
//   response_format {type: json_schema | json_object | text}   (OpenAI)
//   guided_json | guided_regex | guided_choice | guided_grammar (vLLM)
//   tools + tool_choice (auto | none | required | {type: function, function: {name}})  (OpenAI)
// At most one of them may constrain a request.
import { InvalidRequestError } from '../api/schema.ts';
import type { ResponseFormat, ToolChoice, ToolDefinition } from '../api/schema.ts';
import { checkChoices, checkConstraint, checkEbnf, checkJsonSchema, checkRegex, TOOL_CALL_BEGIN, TOOL_CALL_END, type ConstraintSpec, type ToolFunction } from './constraint.ts';

export interface ConstraintFields {
  response_format?: ResponseFormat | null;
  guided_json?: Record<string, unknown> | boolean | string | null;
  guided_regex?: string | null;
  guided_choice?: string[] | null;
  guided_grammar?: string | null;
  tools?: ToolDefinition[] | null;
  tool_choice?: ToolChoice | null;
  parallel_tool_calls?: boolean | null;
  /** A spec built by the caller (library, CLI). */
  constraint?: ConstraintSpec | null;
}

export interface RequestConstraint {
  spec: ConstraintSpec;
  /** The request field it came from (named in errors). */
  param: string;
}

/** The request's constraint, or null; throws InvalidRequestError for a bad or ambiguous one. */
export function requestConstraint(f: ConstraintFields): RequestConstraint | null {
  const found: RequestConstraint[] = [];
  if (f.constraint) found.push({ spec: checkConstraint(f.constraint), param: 'constraint' });
  const rf = f.response_format;
  if (rf && rf.type === 'json_object') found.push({ spec: { kind: 'json_object' }, param: 'response_format' });
  if (rf && rf.type === 'json_schema') {
    // no schema given: any JSON object (as json_object)
    const schema = rf.json_schema.schema;
    found.push(
      schema === undefined
        ? { spec: { kind: 'json_object' }, param: 'response_format' }
        : { spec: { kind: 'json_schema', schema: checkJsonSchema(schema, 'response_format.json_schema.schema'), strict: rf.json_schema.strict !== false }, param: 'response_format' },
    );
  }
  if (f.guided_json != null) {
    let s = f.guided_json;
    if (typeof s === 'string') {
      try {
        s = JSON.parse(s) as Record<string, unknown>;
      } catch (e) {
        throw new InvalidRequestError(`guided_json is not valid JSON: ${(e as Error).message}`, 'guided_json');
      }
    }
    found.push({ spec: { kind: 'json_schema', schema: checkJsonSchema(s, 'guided_json'), strict: true }, param: 'guided_json' });
  }
  if (f.guided_regex != null) found.push({ spec: { kind: 'regex', pattern: checkRegex(f.guided_regex, 'guided_regex') }, param: 'guided_regex' });
  if (f.guided_choice != null) found.push({ spec: { kind: 'choice', choices: checkChoices(f.guided_choice, 'guided_choice') }, param: 'guided_choice' });
  if (f.guided_grammar != null) found.push({ spec: { kind: 'grammar', ebnf: checkEbnf(f.guided_grammar, 'guided_grammar') }, param: 'guided_grammar' });
  const tools = toolFunctions(f.tools);
  const choice = f.tool_choice ?? (tools.length ? 'auto' : 'none');
  if (choice !== 'none') {
    if (!tools.length) throw new InvalidRequestError('tool_choice is set but tools is empty', 'tool_choice');
    const mode = typeof choice === 'string' ? choice : { name: choice.function.name };
    found.push({ spec: checkConstraint({ kind: 'tools', tools, mode, parallel: f.parallel_tool_calls !== false }, 'tools'), param: 'tools' });
  }
  if (found.length > 1) throw new InvalidRequestError(`at most one output constraint per request; got ${found.map((c) => c.param).join(' and ')}`, found[1]!.param);
  return found[0] ?? null;
}

export function toolFunctions(tools: ToolDefinition[] | null | undefined): ToolFunction[] {
  return (tools ?? []).map((t) => ({ name: t.function.name, description: t.function.description, parameters: t.function.parameters, strict: t.function.strict }));
}

// ----------------------------------------------------------------------------- tool calls out

export interface ParsedToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

let callCounter = 0;
const callId = () => `call_${Date.now().toString(36)}${(callCounter++).toString(36).padStart(4, '0')}`;

/** One `<tool_call>{"name": ..., "arguments": ...}</tool_call>` body → a call, or null if it does not parse. */
export function parseToolCallBody(body: string): ParsedToolCall | null {
  let j: unknown;
  try {
    j = JSON.parse(body.trim());
  } catch {
    return null;
  }
  if (!j || typeof j !== 'object') return null;
  const o = j as { name?: unknown; arguments?: unknown; parameters?: unknown };
  if (typeof o.name !== 'string') return null;
  const args = o.arguments ?? o.parameters ?? {};
  return { id: callId(), type: 'function', function: { name: o.name, arguments: typeof args === 'string' ? args : JSON.stringify(args) } };
}

/** Splits generated text into its free text (content) and its tool calls. */
export function parseToolCalls(text: string): { content: string | null; calls: ParsedToolCall[] } {
  const calls: ParsedToolCall[] = [];
  let content = '';
  let i = 0;
  for (;;) {
    const a = text.indexOf(TOOL_CALL_BEGIN, i);
    if (a < 0) break;
    const b = text.indexOf(TOOL_CALL_END, a + TOOL_CALL_BEGIN.length);
    if (b < 0) break;
    const call = parseToolCallBody(text.slice(a + TOOL_CALL_BEGIN.length, b));
    if (!call) break;
    content += text.slice(i, a);
    calls.push(call);
    i = b + TOOL_CALL_END.length;
  }
  content += text.slice(i);
  content = calls.length ? content.trim() : content;
  return { content: calls.length && !content ? null : content, calls };
}

/**
 * Streaming split of text into content deltas and completed tool calls: text that may be the
 * start of `<tool_call>` is held back; a call is released when its closing tag arrives.
 */
export class ToolCallStream {
  private buf = '';
  private inCall = false;
  readonly calls: ParsedToolCall[] = [];

  /** Feeds text; returns the content safe to emit now and the calls completed by it. */
  push(text: string): { content: string; calls: ParsedToolCall[] } {
    this.buf += text;
    let content = '';
    const calls: ParsedToolCall[] = [];
    for (;;) {
      if (!this.inCall) {
        const a = this.buf.indexOf(TOOL_CALL_BEGIN);
        if (a >= 0) {
          content += this.buf.slice(0, a);
          this.buf = this.buf.slice(a + TOOL_CALL_BEGIN.length);
          this.inCall = true;
          continue;
        }
        // hold back a suffix that may begin the tag
        let hold = 0;
        for (let n = Math.min(TOOL_CALL_BEGIN.length - 1, this.buf.length); n > 0; n--) {
          if (this.buf.endsWith(TOOL_CALL_BEGIN.slice(0, n))) {
            hold = n;
            break;
          }
        }
        content += this.buf.slice(0, this.buf.length - hold);
        this.buf = this.buf.slice(this.buf.length - hold);
        break;
      }
      const b = this.buf.indexOf(TOOL_CALL_END);
      if (b < 0) break;
      const call = parseToolCallBody(this.buf.slice(0, b));
      if (call) {
        calls.push(call);
        this.calls.push(call);
      } else content += TOOL_CALL_BEGIN + this.buf.slice(0, b + TOOL_CALL_END.length); // not a call after all: text
      this.buf = this.buf.slice(b + TOOL_CALL_END.length);
      this.inCall = false;
    }
    return { content, calls };
  }

  /** End of stream: whatever is held back is text (an unfinished call included). */
  flush(): string {
    const out = (this.inCall ? TOOL_CALL_BEGIN : '') + this.buf;
    this.buf = '';
    this.inCall = false;
    return out;
  }
}
