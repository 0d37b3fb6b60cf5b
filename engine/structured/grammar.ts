// The grammar side of structured output: one GrammarEngine per tokenizer (XGrammar TokenizerInfo
// + compiler over the model's vocabulary), a cache of compiled grammars keyed by (constraint,
// tokenizer), and one matcher per constrained request (GrammarConstraint, the scheduler's
// TokenConstraint) that yields the next token's bitmask, advances on sampled tokens, rolls back
// and is freed when its request ends. `liveMatchers()` counts matchers not yet freed.
import { LorafleetError } from '../../shaders/lib/errors.ts';
import type { TokenConstraint } from '../scheduler/types.ts';
import type { ModelTokenizer } from '../model/tokenizer.ts';
import { InvalidRequestError } from '../api/schema.ts';
import { XgrInstance, GrammarEngineError, type XgrCompiledGrammar, type XgrCompiler, type XgrMatcher } from './xgrammar.ts';
import { choiceGrammar, constraintKey, toolArgsSchema, toolsStructuralTag, type ConstraintSpec } from './constraint.ts';

/** Nothing in the vocabulary can continue the constrained output (ends that request only). */
export class ConstraintUnsatisfiableError extends LorafleetError {
  constructor(detail: string) {
    super(`the output constraint cannot be satisfied: ${detail} (the vocabulary has no token that continues it; check the schema/regex/grammar for text the tokenizer cannot produce)`, 'invalid_request');
    this.name = 'ConstraintUnsatisfiableError';
  }
}

/** The tokenizer as XGrammar sees it: encoded vocab [vocabSize], its decoding, stop ids. */
export interface VocabInfo {
  vocab: string[];
  vocabType: 'byte_fallback' | 'byte_level' | 'raw';
  prependSpace: boolean;
  vocabSize: number;
  stopTokenIds: number[];
}

/** Vocabulary metadata from a HF tokenizer.json (as XGrammar's TokenizerInfo.from_huggingface reads it). */
export function vocabInfo(tokenizer: ModelTokenizer, vocabSize: number, stopTokenIds: number[]): VocabInfo {
  const json = tokenizer.json as { decoder?: unknown; normalizer?: unknown; pre_tokenizer?: unknown; added_tokens?: Array<{ id: number; content: string }> };
  const vocab: string[] = new Array(vocabSize);
  for (let i = 0; i < vocabSize; i++) vocab[i] = tokenizer.idToToken(i) ?? '';
  for (const a of json.added_tokens ?? []) if (a.id < vocabSize) vocab[a.id] = a.content;
  const text = (o: unknown) => JSON.stringify(o ?? null);
  const dec = text(json.decoder);
  const vocabType = dec.includes('"ByteFallback"') ? 'byte_fallback' : dec.includes('"ByteLevel"') ? 'byte_level' : 'raw';
  const norm = text(json.normalizer), pre = text(json.pre_tokenizer);
  const prependSpace = /"Prepend","prepend":"▁"/.test(norm) || (/"Metaspace"/.test(pre) && !/"prepend_scheme":"never"/.test(pre) && !/"add_prefix_space":false/.test(pre));
  return { vocab, vocabType, prependSpace, vocabSize, stopTokenIds: [...stopTokenIds] };
}

function fingerprint(v: VocabInfo): string {
  // FNV-1a over the vocabulary and metadata (cache key part for the tokenizer)
  let h = 0x811c9dc5;
  const add = (s: string) => {
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
    h = Math.imul(h ^ 0xff, 0x01000193) >>> 0;
  };
  for (const t of v.vocab) add(t);
  add(`${v.vocabType}|${v.prependSpace}|${v.vocabSize}|${v.stopTokenIds.join(',')}`);
  return h.toString(16);
}

let live = 0;
/** Matchers created and not yet freed (all engines). */
export const liveMatchers = (): number => live;

interface Opened {
  inst: XgrInstance;
  compiler: XgrCompiler;
  cache: Map<string, Promise<XgrCompiledGrammar>>;
}

export interface GrammarEngineStats {
  compiles: number;
  cacheHits: number;
  /** ms of the compiles (cache misses) */
  compileMs: number[];
  instances: number;
}

/** Structured output over one tokenizer's vocabulary. */
export class GrammarEngine {
  readonly key: string;
  readonly stats: GrammarEngineStats = { compiles: 0, cacheHits: 0, compileMs: [], instances: 0 };
  private opened: Promise<Opened> | null = null;
  /** Most compiled grammars kept (LRU). */
  readonly cacheSize: number;

  constructor(readonly vocab: VocabInfo, opts: { cacheSize?: number } = {}) {
    this.key = fingerprint(vocab);
    this.cacheSize = opts.cacheSize ?? 64;
  }

  private async open(): Promise<Opened> {
    let cur = this.opened ? await this.opened.catch(() => null) : null;
    if (cur && cur.inst.broken) {
      if (!XgrInstance.canReload) throw new GrammarEngineError('the grammar engine failed on an earlier input and cannot be reloaded in this environment; reload the page');
      cur = null;
      this.opened = null;
    }
    if (!this.opened) {
      const v = this.vocab;
      this.opened = XgrInstance.open(v.vocab, v.vocabType, v.prependSpace, v.vocabSize, v.stopTokenIds).then(({ inst, compiler }) => {
        this.stats.instances++;
        return { inst, compiler, cache: new Map() };
      });
      this.opened.catch(() => (this.opened = null));
    }
    return this.opened;
  }

  /** Compiles (or takes from the cache) the grammar of a checked spec. `param` names the request field. */
  async compile(spec: ConstraintSpec, param: string): Promise<{ inst: XgrInstance; grammar: XgrCompiledGrammar }> {
    const o = await this.open();
    const key = constraintKey(spec);
    const hit = o.cache.get(key);
    if (hit) {
      this.stats.cacheHits++;
      o.cache.delete(key); // LRU: move to the end
      o.cache.set(key, hit);
      return { inst: o.inst, grammar: await hit };
    }
    const t0 = performance.now();
    const c = o.compiler;
    const what = `compiling ${param}`;
    const p = o.inst.call(what, async () => {
      switch (spec.kind) {
        case 'json_schema':
          return c.compileJSONSchema(JSON.stringify(spec.schema), false, -1, undefined, spec.strict);
        case 'json_object':
          return c.compileJSONSchema('{"type": "object"}', false, -1, undefined, false);
        case 'regex':
          return c.compileStructuralTag({ type: 'structural_tag', format: { type: 'regex', pattern: spec.pattern } });
        case 'grammar':
          return c.compileGrammar(spec.ebnf);
        case 'choice':
          return c.compileGrammar(choiceGrammar(spec.choices));
        case 'tools': {
          // each tool's arguments as compact JSON (bounded whitespace), as a grammar inside its tag
          const args: string[] = [];
          for (const t of spec.tools) args.push(await o.inst.x.Testings._jsonSchemaToEBNF(JSON.stringify(toolArgsSchema(t)), false, -1, undefined, t.strict !== false));
          return c.compileStructuralTag(toolsStructuralTag(spec.tools, spec.mode, args, spec.parallel !== false));
        }
      }
    }, param);
    o.cache.set(key, p);
    p.catch(() => o.cache.delete(key));
    const grammar = await p;
    this.stats.compiles++;
    this.stats.compileMs.push(performance.now() - t0);
    while (o.cache.size > this.cacheSize) {
      const [k, old] = o.cache.entries().next().value!;
      o.cache.delete(k);
      void old.then((g) => g.dispose()).catch(() => {}); // matchers hold their own reference
    }
    return { inst: o.inst, grammar };
  }

  /**
   * Drops the compiled grammars, the compiler and the instance reference (matchers still alive
   * keep what they use until freed); a later compile opens a new instance.
   */
  async destroy(): Promise<void> {
    const o = this.opened ? await this.opened.catch(() => null) : null;
    this.opened = null;
    if (!o) return;
    for (const g of o.cache.values()) void g.then((x) => x.dispose()).catch(() => {});
    o.cache.clear();
    try {
      o.compiler.dispose();
    } catch {
      /* a broken instance */
    }
  }

  /** A matcher for one request (the scheduler frees it when the request ends). */
  async constraint(spec: ConstraintSpec, param: string): Promise<GrammarConstraint> {
    const { inst, grammar } = await this.compile(spec, param);
    const m = await inst.call('creating a grammar matcher', () => this.makeMatcher(inst, grammar));
    return new GrammarConstraint(inst, m, this.vocab.vocabSize);
  }

  private makeMatcher(inst: XgrInstance, grammar: XgrCompiledGrammar): Promise<XgrMatcher> {
    // stop tokens: the request's EOS ids; -1: unlimited rollback history (never more than accepted)
    return inst.x.GrammarMatcher.createGrammarMatcher(grammar, this.vocab.stopTokenIds, false, -1);
  }
}

/** One request's matcher: the scheduler's TokenConstraint. */
export class GrammarConstraint implements TokenConstraint {
  private n = 0;
  private freed = false;
  private terminated = false;
  private readonly words: number;

  constructor(private readonly inst: XgrInstance, private readonly m: XgrMatcher, private readonly vocabSize: number) {
    this.words = Math.ceil(vocabSize / 32);
    live++;
  }

  get accepted(): number {
    return this.n;
  }

  /** The grammar has accepted a stop token (the output is complete). */
  isTerminated(): boolean {
    return this.terminated;
  }

  async nextMask(): Promise<Uint32Array | null> {
    if (this.freed) throw new Error('GrammarConstraint: used after free');
    // XGrammar aborts when asked for a mask after termination; the scheduler never asks then
    // (the stop token ends the request), but guard anyway.
    if (this.terminated) throw new ConstraintUnsatisfiableError('the grammar already ended');
    const raw = await this.inst.call('computing the token mask', () => this.m.getNextTokenBitmask());
    const mask = new Uint32Array(raw.buffer, raw.byteOffset, this.words);
    let any = 0;
    let all = 0xffffffff;
    const full = this.vocabSize % 32;
    for (let w = 0; w < this.words; w++) {
      // bits past the vocabulary in the last word do not count
      const v = w === this.words - 1 && full ? mask[w]! & ((1 << full) - 1 >>> 0) : mask[w]!;
      any |= v;
      all &= w === this.words - 1 && full ? (v | ~((1 << full) - 1)) >>> 0 : v;
    }
    if (any === 0) throw new ConstraintUnsatisfiableError(`no token of the vocabulary is allowed after ${this.n} generated tokens`);
    return all >>> 0 === 0xffffffff ? null : mask; // everything allowed: no mask this step
  }

  accept(token: number): boolean {
    if (this.freed || this.terminated) return false;
    const ok = this.inst.callSync('accepting a token', () => this.m.acceptToken(token));
    if (ok) {
      this.n++;
      this.terminated = this.inst.callSync('matcher state', () => this.m.isTerminated());
    }
    return ok;
  }

  rollback(k: number): void {
    if (this.freed || k <= 0) return;
    if (k > this.n) throw new Error(`GrammarConstraint: rollback of ${k} tokens, only ${this.n} accepted`);
    this.inst.callSync('rolling back the matcher', () => this.m.rollBack(k));
    this.n -= k;
    this.terminated = false;
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    live--;
    try {
      this.m.dispose();
    } catch {
      /* the instance failed; nothing left to free */
    }
  }
}

/** Throws the InvalidRequestError an invalid constraint deserves when `e` came from compiling it. */
export function asRequestError(e: unknown, param: string): unknown {
  if (e instanceof GrammarEngineError && e.code === 'invalid_request') return new InvalidRequestError(`invalid ${param}: ${e.message}`, param);
  return e;
}
