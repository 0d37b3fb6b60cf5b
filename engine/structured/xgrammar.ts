// XGrammar's web build (@mlc-ai/web-xgrammar: the grammar engine behind vLLM, SGLang and WebLLM's
// structured output) loaded in Node, the browser bundle and workers, with its failure mode made
// safe. The package is a UMD bundle with the wasm inlined, published as "type": "module" but
// reading `require` / `__filename` in Node; and every error inside it (a bad schema, regex or
// grammar, a misuse) is a C++ fatal that aborts the wasm instance: the call throws
// `RuntimeError: Aborted()`, the message only goes to console.error, and each abort leaks wasm
// stack (measured: ~20 aborts and the instance faults with "memory access out of bounds").
// So:
//   - Node evaluates the bundle's text as CommonJS (exports/module/require/__filename given),
//     which also yields a *fresh* instance whenever one is needed; browsers and workers import it
//     (Vite pre-bundles the UMD as CommonJS) and get one instance per page.
//   - console.error is routed through a forwarder while the instance initialises (emscripten binds
//     it then), so a fatal's text can be captured and reported as the request's error.
//   - An abort retires the instance for new work (`broken`); the caller (grammar.ts) opens a new
//     one where the platform allows it. Inputs are checked before they reach it (constraint.ts),
//     so aborts are rare.
import { hasNodeHost, nodeHost } from '../host.ts';
import { LorafleetError } from '../../shaders/lib/errors.ts';

/** The subset of the package's API lorafleet uses (see node_modules/@mlc-ai/web-xgrammar/lib/xgrammar.d.ts). */
export interface XgrTokenizerInfo {
  getVocabSize(): number;
  dispose(): void;
}
export interface XgrCompiledGrammar {
  dispose(): void;
}
export interface XgrCompiler {
  compileJSONSchema(schema: string, anyWhitespace?: boolean, indent?: number, separators?: [string, string], strictMode?: boolean, maxWhitespaceCnt?: number): Promise<XgrCompiledGrammar>;
  compileGrammar(ebnf: string, rootRule?: string): Promise<XgrCompiledGrammar>;
  compileStructuralTag(tag: unknown): Promise<XgrCompiledGrammar>;
  dispose(): void;
}
export interface XgrMatcher {
  acceptToken(id: number): boolean;
  getNextTokenBitmask(): Promise<Int32Array>;
  isTerminated(): boolean;
  rollBack(n: number): void;
  getMaxRollbackTokens(): number;
  dispose(): void;
}
export interface XgrModule {
  TokenizerInfo: { createTokenizerInfo(vocab: string[], vocabType?: string, prependSpace?: boolean, vocabSize?: number, stopTokenIds?: number[]): Promise<XgrTokenizerInfo> };
  GrammarCompiler: { createGrammarCompiler(ti: XgrTokenizerInfo, cacheEnabled?: boolean): Promise<XgrCompiler> };
  Testings: { _jsonSchemaToEBNF(schema: string, anyWhitespace?: boolean, indent?: number, separators?: [string, string], strictMode?: boolean): Promise<string> };
  GrammarMatcher: { createGrammarMatcher(g: XgrCompiledGrammar, stopTokens?: number[], terminateWithoutStopToken?: boolean, maxRollbackTokens?: number): Promise<XgrMatcher> };
}

/** The grammar engine failed on an input (its own message), or is unavailable. */
export class GrammarEngineError extends LorafleetError {
  constructor(message: string, code: 'invalid_request' | 'internal' = 'internal', param?: string) {
    super(message, code, { param });
    this.name = 'GrammarEngineError';
  }
}

async function evaluateBundle(): Promise<XgrModule> {
  // Node: the host's modules (engine/host.ts, installed by the Node entry), so a browser bundle
  // holds no node: import.
  if (hasNodeHost()) {
    const { module, fsSync: fs, path } = nodeHost('XGrammar');
    const req = module.createRequire(import.meta.url);
    const file = req.resolve('@mlc-ai/web-xgrammar');
    const mod = { exports: {} as Record<string, unknown> };
    // CommonJS evaluation of the UMD bundle: a new wasm instance each time. `process` is hidden so
    // emscripten takes its plain-JS path (the wasm is inlined; its Node path would `await
    // import('module')`, which code evaluated this way cannot do under vitest's module runner).
    new Function('exports', 'module', 'require', '__filename', '__dirname', 'process', fs.readFileSync(file, 'utf8'))(mod.exports, mod, req, file, path.dirname(file), undefined);
    return mod.exports as unknown as XgrModule;
  }
  const ns = (await import('@mlc-ai/web-xgrammar')) as unknown as Record<string, unknown> & { default?: unknown };
  const pick = (o: unknown): XgrModule | null => (o && typeof o === 'object' && 'GrammarCompiler' in o ? (o as XgrModule) : null);
  const m = pick(ns) ?? pick(ns.default) ?? pick((globalThis as { xgrammar?: unknown }).xgrammar);
  if (!m) throw new GrammarEngineError('@mlc-ai/web-xgrammar loaded but exposes no GrammarCompiler');
  return m;
}

/** One wasm instance of XGrammar. */
export class XgrInstance {
  /** An abort happened: the instance takes no new work. */
  broken = false;
  private captured: string[] | null = null;
  private depth = 0;
  private constructor(readonly x: XgrModule) {}

  /** Where the platform can (Node), a new instance per call; else the page's one instance. */
  static get canReload(): boolean {
    return hasNodeHost();
  }

  static async open(vocab: string[], vocabType: string, prependSpace: boolean, vocabSize: number, stopIds: number[]): Promise<{ inst: XgrInstance; info: XgrTokenizerInfo; compiler: XgrCompiler }> {
    const x = await evaluateBundle();
    const inst = new XgrInstance(x);
    // emscripten binds console.error when the instance initialises (the first call below):
    // bind it to a forwarder that can capture a fatal's message.
    const orig = console.error;
    const forward = (...a: unknown[]) => {
      if (inst.captured) inst.captured.push(a.map(String).join(' '));
      else orig.apply(console, a);
    };
    console.error = forward;
    try {
      const info = await inst.call('tokenizer info', () => x.TokenizerInfo.createTokenizerInfo(vocab, vocabType, prependSpace, vocabSize, stopIds));
      const compiler = await inst.call('grammar compiler', () => x.GrammarCompiler.createGrammarCompiler(info, false));
      return { inst, info, compiler };
    } finally {
      if (console.error === forward) console.error = orig;
    }
  }

  /**
   * Runs one XGrammar call. An abort marks the instance broken and becomes a GrammarEngineError
   * carrying XGrammar's own message (code `invalid_request` when `input` names the request field
   * the failure is about, else `internal`).
   */
  async call<T>(what: string, fn: () => T | Promise<T>, input?: string): Promise<T> {
    if (this.broken) throw new GrammarEngineError(`the grammar engine failed earlier; ${what} needs a new instance`);
    if (this.depth++ === 0) this.captured = [];
    try {
      return await fn();
    } catch (e) {
      this.broken = true;
      throw new GrammarEngineError(this.describe(e, what), input ? 'invalid_request' : 'internal', input);
    } finally {
      if (--this.depth === 0) this.captured = null;
    }
  }

  /**
   * Synchronous variant of call (matcher steps). Matchers keep running on an instance that an
   * abort retired (other requests' matchers must not fail because one input was bad).
   */
  callSync<T>(what: string, fn: () => T): T {
    if (this.depth++ === 0) this.captured = [];
    try {
      return fn();
    } catch (e) {
      this.broken = true;
      throw new GrammarEngineError(this.describe(e, what));
    } finally {
      if (--this.depth === 0) this.captured = null;
    }
  }

  private describe(e: unknown, what: string): string {
    const fatal = (this.captured ?? []).find((l) => l.includes('[FATAL]')) ?? (this.captured ?? []).find((l) => l && !l.startsWith('Aborted'));
    // "[FATAL] /path/to/file.cc:902: Unsupported type "bogus"" → the part after the location
    const msg = fatal ? fatal.replace(/^.*?\[FATAL\]\s*\S+:\d+:\s*/, '').replace(/^Check failed: \(.*?\) is false:\s*/, '') : String((e as Error)?.message ?? e);
    return `${what}: ${msg.slice(0, 500)}`;
  }
}
