// Output constraints of a request: what they are (ConstraintSpec), where they come from in a
// request (OpenAI response_format / tools + tool_choice, vLLM guided_json / guided_regex /
// guided_choice / guided_grammar, the CLI), how they are checked before anything reaches the
// grammar engine (an error inside XGrammar aborts its wasm instance, see xgrammar.ts), and the
// grammar each one compiles to.
//
// JSON is generated compactly on one line (XGrammar any_whitespace = false, separators ", " and
// ": "), so whitespace inside generated JSON is bounded: a model cannot loop on spaces.
import Ajv from 'ajv';
import { InvalidRequestError } from '../api/schema.ts';

export type JsonSchema = Record<string, unknown> | boolean;

export interface ToolFunction {
  name: string;
  description?: string;
  /** JSON schema of the arguments (absent: any object). */
  parameters?: Record<string, unknown>;
  strict?: boolean | null;
}

/** Which tool calls a tools constraint allows. */
export type ToolMode = 'auto' | 'required' | { name: string };

export type ConstraintSpec =
  | { kind: 'json_schema'; schema: JsonSchema; strict: boolean }
  | { kind: 'json_object' }
  | { kind: 'regex'; pattern: string }
  | { kind: 'grammar'; ebnf: string }
  | { kind: 'choice'; choices: string[] }
  | { kind: 'tools'; tools: ToolFunction[]; mode: ToolMode; /** more than one call (OpenAI parallel_tool_calls; default true) */ parallel?: boolean };

/** The tool-call format (Hermes / Qwen style, as the seed's tool adapter writes it). */
export const TOOL_CALL_BEGIN = '<tool_call>';
export const TOOL_CALL_END = '</tool_call>';

const MAX_TEXT = 64 * 1024;
const JSON_TYPES = new Set(['string', 'integer', 'number', 'boolean', 'null', 'object', 'array']);

/** A stable text key of a spec (for the compile cache; object keys sorted). */
export function constraintKey(spec: ConstraintSpec): string {
  return stableStringify(spec);
}

function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

// ----------------------------------------------------------------------------- validation

/**
 * Checks a regex for what XGrammar's regex converter accepts (ECMAScript syntax without
 * lookaround, backreferences and \p{..} classes); throws InvalidRequestError naming `param`.
 */
export function checkRegex(pattern: unknown, param: string): string {
  if (typeof pattern !== 'string' || pattern.length === 0) throw new InvalidRequestError(`${param} must be a non-empty regular expression`, param);
  if (pattern.length > MAX_TEXT) throw new InvalidRequestError(`${param} is longer than ${MAX_TEXT} characters`, param);
  try {
    new RegExp(pattern);
  } catch (e) {
    throw new InvalidRequestError(`${param} is not a valid regular expression: ${(e as Error).message}`, param);
  }
  // Unsupported constructs (outside character classes; a conservative scan).
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      const n = pattern[i + 1] ?? '';
      if (!inClass && /[1-9]/.test(n)) throw new InvalidRequestError(`${param}: backreferences (\\${n}) are not supported`, param);
      if (n === 'k' && pattern[i + 2] === '<') throw new InvalidRequestError(`${param}: named backreferences are not supported`, param);
      if (n === 'p' || n === 'P') throw new InvalidRequestError(`${param}: unicode property classes (\\${n}{...}) are not supported`, param);
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === '(' && pattern[i + 1] === '?') {
      const la = pattern.slice(i + 2, i + 4);
      if (la[0] === '=' || la[0] === '!' || la === '<=' || la === '<!') throw new InvalidRequestError(`${param}: lookahead / lookbehind assertions are not supported`, param);
    }
  }
  return pattern;
}

/** Resolves a local JSON pointer ref (#/a/b) in root, or undefined. */
function resolvePointer(root: unknown, ref: string): unknown {
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return undefined;
  let cur: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    const k = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (!cur || typeof cur !== 'object' || !(k in (cur as object))) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

let ajv: Ajv | null = null;

/**
 * Checks a JSON schema before it reaches XGrammar: JSON-serializable object (or true), the JSON
 * Schema meta-schema (ajv; drafts ajv knows), known `type`s, resolvable local `$ref`s only,
 * consistent bounds, supported `pattern`s. Throws InvalidRequestError naming `param`.
 */
/** Keywords whose value maps names to subschemas. */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']);

export function checkJsonSchema(schema: unknown, param: string): JsonSchema {
  if (schema === true) return true;
  if (schema === false) throw new InvalidRequestError(`${param}: the schema is false (no value can satisfy it)`, param);
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) throw new InvalidRequestError(`${param} must be a JSON schema object`, param);
  let text: string;
  try {
    text = JSON.stringify(schema);
  } catch (e) {
    throw new InvalidRequestError(`${param} is not JSON-serializable: ${(e as Error).message}`, param);
  }
  if (text.length > MAX_TEXT) throw new InvalidRequestError(`${param} is larger than ${MAX_TEXT} bytes`, param);
  ajv ??= new Ajv({ strict: false, validateSchema: true });
  const s = schema as Record<string, unknown>;
  const known = typeof s.$schema !== 'string' || !!ajv.getSchema(s.$schema as string);
  if (known && !ajv.validateSchema(s)) {
    const e = ajv.errors?.[0];
    throw new InvalidRequestError(`${param} is not a valid JSON schema: ${e ? `${e.instancePath || '(root)'} ${e.message}` : 'invalid'}`, param);
  }
  const walk = (node: unknown, path: string): void => {
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${path}.${i}`));
    if (node === false && path !== param) return; // false subschemas (e.g. additionalProperties: false) are fine
    if (!node || typeof node !== 'object') return;
    const n = node as Record<string, unknown>;
    const types = n.type === undefined ? [] : Array.isArray(n.type) ? n.type : [n.type];
    for (const t of types) if (typeof t !== 'string' || !JSON_TYPES.has(t)) throw new InvalidRequestError(`${path}.type: unsupported type ${JSON.stringify(t)}`, param);
    if (typeof n.$ref === 'string' && resolvePointer(schema, n.$ref) === undefined) {
      throw new InvalidRequestError(`${path}.$ref: ${n.$ref.startsWith('#') ? 'does not resolve inside the schema' : 'only local references (#/...) are supported'}: ${n.$ref}`, param);
    }
    const num = (k: string) => (typeof n[k] === 'number' ? (n[k] as number) : undefined);
    const pairs: Array<[string, string]> = [['minimum', 'maximum'], ['minLength', 'maxLength'], ['minItems', 'maxItems'], ['minProperties', 'maxProperties']];
    for (const [lo, hi] of pairs) {
      const a = num(lo), b = num(hi);
      if (a !== undefined && b !== undefined && a > b) throw new InvalidRequestError(`${path}: ${lo} ${a} is greater than ${hi} ${b}`, param);
    }
    const emin = num('exclusiveMinimum') ?? num('minimum'), emax = num('exclusiveMaximum') ?? num('maximum');
    if (emin !== undefined && emax !== undefined && emin > emax) throw new InvalidRequestError(`${path}: the numeric range is empty`, param);
    if (n.pattern !== undefined) checkRegex(n.pattern, `${path}.pattern`);
    if (n.patternProperties && typeof n.patternProperties === 'object') for (const k of Object.keys(n.patternProperties)) checkRegex(k, `${path}.patternProperties`);
    if (Array.isArray(n.enum) && n.enum.length === 0) throw new InvalidRequestError(`${path}.enum is empty`, param);
    for (const [k, v] of Object.entries(n)) {
      if (k === 'enum' || k === 'const' || k === 'examples' || k === 'default') continue;
      // maps of name → subschema: the names are data (a property may be called "type" or "pattern")
      if (SCHEMA_MAPS.has(k) && v && typeof v === 'object' && !Array.isArray(v)) {
        for (const [name, sub] of Object.entries(v)) walk(sub, `${path}.${k}.${name}`);
      } else walk(v, `${path}.${k}`);
    }
  };
  walk(schema, param);
  return schema as JsonSchema;
}

/** EBNF (XGrammar dialect): a non-empty text defining `root`; the rest is XGrammar's to check. */
export function checkEbnf(ebnf: unknown, param: string): string {
  if (typeof ebnf !== 'string' || !ebnf.trim()) throw new InvalidRequestError(`${param} must be a non-empty EBNF grammar`, param);
  if (ebnf.length > MAX_TEXT) throw new InvalidRequestError(`${param} is longer than ${MAX_TEXT} characters`, param);
  if (!/(^|\n)\s*root\s*::=/.test(ebnf)) throw new InvalidRequestError(`${param}: the grammar must define the rule "root" (root ::= ...)`, param);
  return ebnf;
}

export function checkChoices(choices: unknown, param: string): string[] {
  if (!Array.isArray(choices) || choices.length === 0) throw new InvalidRequestError(`${param} must be a non-empty array of strings`, param);
  if (choices.length > 4096) throw new InvalidRequestError(`${param} has more than 4096 choices`, param);
  for (const [i, c] of choices.entries()) if (typeof c !== 'string' || c.length === 0) throw new InvalidRequestError(`${param}.${i} must be a non-empty string`, param);
  return [...new Set(choices as string[])];
}

/** Checks a spec built by a caller (the CLI, tests) the same way the request parsers do. */
export function checkConstraint(spec: ConstraintSpec, param = 'constraint'): ConstraintSpec {
  switch (spec.kind) {
    case 'json_schema':
      return { kind: 'json_schema', schema: checkJsonSchema(spec.schema, param), strict: spec.strict };
    case 'json_object':
      return spec;
    case 'regex':
      return { kind: 'regex', pattern: checkRegex(spec.pattern, param) };
    case 'grammar':
      return { kind: 'grammar', ebnf: checkEbnf(spec.ebnf, param) };
    case 'choice':
      return { kind: 'choice', choices: checkChoices(spec.choices, param) };
    case 'tools': {
      if (!spec.tools.length) throw new InvalidRequestError(`${param}: tools is empty`, 'tools');
      spec.tools.forEach((t, i) => t.parameters !== undefined && checkJsonSchema(t.parameters, `tools.${i}.function.parameters`));
      const m = spec.mode;
      if (typeof m === 'object' && !spec.tools.some((t) => t.name === m.name)) {
        throw new InvalidRequestError(`tool_choice names function '${m.name}', which is not in tools (${spec.tools.map((t) => t.name).join(', ')})`, 'tool_choice');
      }
      return spec;
    }
    default:
      throw new InvalidRequestError(`unknown constraint kind ${(spec as { kind: string }).kind}`, param);
  }
}

// ----------------------------------------------------------------------------- grammars

/** An EBNF string literal (XGrammar: C-style escapes). */
export function ebnfLiteral(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else if (cp <= 0xffff) out += '\\u' + cp.toString(16).padStart(4, '0');
    else out += '\\U' + cp.toString(16).padStart(8, '0');
  }
  return out + '"';
}

/** The EBNF of a choice among strings. */
export function choiceGrammar(choices: readonly string[]): string {
  return `root ::= ${choices.map(ebnfLiteral).join(' | ')}`;
}

/** The JSON schema of one tool call's arguments. */
export const toolArgsSchema = (t: ToolFunction): JsonSchema => t.parameters ?? { type: 'object' };

/**
 * XGrammar structural tag of a tools constraint: each call is
 * `<tool_call>{"name": "<fn>", "arguments": <args>}</tool_call>`, the arguments by the grammar
 * `argsEbnf[i]` of tool i (its schema as compact JSON, see grammar.ts). auto: free text, and
 * after the trigger `<tool_call>` a call; required: one or more calls (newline-separated); a
 * named function: calls of that function only.
 */
export function toolsStructuralTag(tools: readonly ToolFunction[], mode: ToolMode, argsEbnf: readonly string[], parallel = true): Record<string, unknown> {
  const tags = tools
    .map((t, i) => ({
      type: 'tag',
      begin: `${TOOL_CALL_BEGIN}{"name": ${JSON.stringify(t.name)}, "arguments": `,
      content: { type: 'grammar', grammar: argsEbnf[i]! },
      end: `}${TOOL_CALL_END}`,
    }))
    .filter((_, i) => typeof mode !== 'object' || tools[i]!.name === mode.name);
  if (mode === 'auto') return { type: 'structural_tag', format: { type: 'triggered_tags', triggers: [TOOL_CALL_BEGIN], tags, at_least_one: false, stop_after_first: !parallel } };
  return { type: 'structural_tag', format: { type: 'tags_with_separator', tags, separator: '\n', at_least_one: true, stop_after_first: !parallel } };
}
