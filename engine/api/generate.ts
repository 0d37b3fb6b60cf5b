// generate(): one request through the scheduler, as an async iterator of (token, text) with a
// `done` summary. Prompt building (text, chat messages through the template, or ids), sampling
// defaults from generation_config.json, incremental detokenization and stop strings.
import type { ModelConfig } from '../model/config.ts';
import type { ModelTokenizer } from '../model/tokenizer.ts';
import type { RequestHandle, Scheduler } from '../scheduler/scheduler.ts';
import type { SampleParams } from '../../shaders/sample/sample.ts';
import { StopMatcher } from './stop.ts';
import { chatCompletionRequestSchema, contentText, generateOptionsSchema, InvalidRequestError, validate } from './schema.ts';
import { ContextLengthExceededError } from './errors.ts';
import { tokenLogprob, type TokenLogprob } from './logprobs.ts';
import { asRequestError, type GrammarEngine } from '../structured/grammar.ts';
import { requestConstraint, type RequestConstraint } from '../structured/request.ts';
import type { FinishReason, GenerateFn, GenerateInput, GenerateOptions, GeneratedToken, Generation, GenerationSummary, Usage } from './types.ts';

/** Sampling defaults of the model (generation_config.json) and its EOS ids. */
export interface GenerationDefaults {
  eosIds: number[];
  doSample?: boolean | null;
  temperature?: number;
  topP?: number;
  topK?: number;
  repetitionPenalty?: number;
}

export interface GenerateContext {
  config: ModelConfig;
  tokenizer: ModelTokenizer;
  scheduler: Scheduler;
  defaults: GenerationDefaults;
  /** Tokens a sequence may hold (min of the model's positions and the KV cache). */
  contextLimit: number;
  /** Adapter name for `model` (null: the base model); throws ModelNotFoundError. */
  resolveAdapter(model: string | null | undefined): string | null;
  /** Starts the scheduler loop if it is not running. */
  ensureLoop(): void;
  /** The grammar engine over this tokenizer (structured output), created on first use. */
  grammar?: () => GrammarEngine;
}

export const usageOf = (p: number, c: number): Usage => ({ prompt_tokens: p, completion_tokens: c, total_tokens: p + c });

/** The prompt's token ids for any GenerateInput. */
export function promptIds(ctx: Pick<GenerateContext, 'config' | 'tokenizer'>, input: GenerateInput): number[] {
  const { tokenizer, config } = ctx;
  if (typeof input === 'string') return tokenizer.encode(input);
  if (input && typeof input === 'object' && 'prompt_ids' in input) {
    const ids = input.prompt_ids;
    if (!Array.isArray(ids) || ids.some((t) => !Number.isInteger(t) || t < 0 || t >= config.vocabSize)) {
      throw new InvalidRequestError(`prompt_ids must be integers in [0, ${config.vocabSize})`, 'prompt_ids');
    }
    return [...ids];
  }
  if (input && typeof input === 'object' && 'messages' in input) {
    const msgs = validate(chatCompletionRequestSchema.shape.messages, input.messages, 'messages');
    // tools reach templates that know them (HF: apply_chat_template(tools=...)); others ignore them
    const extra = input.tools?.length ? { tools: input.tools } : undefined;
    return tokenizer.encodeChat(msgs.map((m) => ({ ...m, content: contentText(m.content) })), { addGenerationPrompt: true, extra });
  }
  throw new InvalidRequestError('generate: input must be a string, {messages} or {prompt_ids}');
}

export function createGenerate(ctx: GenerateContext): GenerateFn {
  const { tokenizer, scheduler, defaults: gen } = ctx;

  return function generate(input: GenerateInput, rawOpts: GenerateOptions = {}): Generation {
    const { signal, ...rest } = rawOpts;
    const o = validate(generateOptionsSchema, rest, 'generate options');
    const adapter = ctx.resolveAdapter(o.model);
    const prompt = promptIds(ctx, input);
    if (prompt.length === 0) throw new InvalidRequestError('the prompt is empty (no tokens)', 'prompt');
    const ctxLimit = ctx.contextLimit;
    if (prompt.length >= ctxLimit) throw new ContextLengthExceededError(prompt.length, ctxLimit);
    const maxTokens = Math.min(o.max_tokens ?? o.max_completion_tokens ?? ctxLimit - prompt.length, ctxLimit - prompt.length);
    const temperature = o.temperature ?? (gen.doSample === false ? 0 : (gen.temperature ?? 1));
    const base: Omit<SampleParams, 'step'> = {
      temperature,
      topK: o.top_k ?? gen.topK ?? 0,
      topP: o.top_p ?? gen.topP ?? 1,
      repetitionPenalty: o.repetition_penalty ?? gen.repetitionPenalty ?? 1,
      seed: (o.seed ?? Math.floor(Math.random() * 2 ** 31)) >>> 0,
    };
    const stops = o.stop == null ? [] : typeof o.stop === 'string' ? [o.stop] : o.stop;
    const eos = new Set(gen.eosIds);
    const topLogprobs = o.logprobs ?? null; // null: no logprobs (the forward keeps its logits on the GPU)
    // Output constraint: checked now (InvalidRequestError), compiled at once (XGrammar, cached by
    // (constraint, tokenizer)) so a grammar XGrammar rejects fails `ready` before anything is queued.
    const rc: RequestConstraint | null = requestConstraint({ ...o, constraint: rawOpts.constraint });
    let compiled: Promise<void> | null = null;
    if (rc) {
      if (!ctx.grammar) throw new InvalidRequestError('structured output is not available in this engine', rc.param);
      const ge = ctx.grammar();
      compiled = ge.compile(rc.spec, rc.param).then(
        () => undefined,
        (e) => Promise.reject(asRequestError(e, rc.param)),
      );
      compiled.catch(() => {});
    }

    let resolveDone!: (s: GenerationSummary) => void;
    let rejectDone!: (e: unknown) => void;
    const done = new Promise<GenerationSummary>((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    done.catch(() => {});

    async function* run(): AsyncGenerator<GeneratedToken> {
      const completion: number[] = [];
      const logprobs: TokenLogprob[] | undefined = topLogprobs === null ? undefined : [];
      const stop = new StopMatcher(stops);
      let text = '';
      const detok = tokenizer.stream(prompt); // prompt as context: spacing at the join is right
      let handle: RequestHandle | null = null;
      try {
        if (maxTokens <= 0) {
          resolveDone({ promptIds: prompt, completionIds: completion, text, finishReason: 'length', usage: usageOf(prompt.length, 0) });
          return;
        }
        signal?.throwIfAborted();
        let constraint: Awaited<ReturnType<GrammarEngine['constraint']>> | undefined;
        if (rc) {
          await compiled;
          constraint = await ctx.grammar!().constraint(rc.spec, rc.param).catch((e) => Promise.reject(asRequestError(e, rc.param)));
        }
        try {
          signal?.throwIfAborted();
          handle = scheduler.submit({ promptTokens: prompt, adapter, sample: base, maxTokens, stopTokenIds: [...eos], signal, constraint, wantLogits: logprobs !== undefined });
        } catch (e) {
          constraint?.free(); // not queued: the scheduler does not own it
          throw e;
        }
        ctx.ensureLoop();
        for await (const tok of handle) {
          completion.push(tok);
          const lp = logprobs && tokenLogprob(tokenizer, handle.logits[completion.length - 1]!, tok, topLogprobs!);
          if (lp) logprobs!.push(lp);
          // Incremental detokenization (no partial UTF-8), then stop strings (held back while they may start one).
          const piece = stop.push(detok.push(tok));
          text += piece;
          yield lp ? { token: tok, text: piece, logprob: lp } : { token: tok, text: piece };
          if (stop.stopped) break; // leaving the loop cancels the request (frees its pages)
        }
        const info = await handle.finished;
        if (!stop.stopped) {
          if (info.reason === 'error') throw info.error ?? new Error('generation failed');
          if (info.reason === 'cancelled') {
            signal?.throwIfAborted();
            throw new Error('generation was cancelled');
          }
          const tail = stop.push(detok.flush()) + stop.flush();
          if (tail) {
            text += tail;
            yield { token: -1, text: tail };
          }
        }
        const finishReason: FinishReason = stop.stopped || info.reason === 'stop' ? 'stop' : 'length';
        resolveDone({ promptIds: prompt, completionIds: completion, text, finishReason, usage: usageOf(prompt.length, info.completionTokens), ...(logprobs ? { logprobs } : {}) });
      } catch (e) {
        rejectDone(e);
        throw e;
      } finally {
        handle?.cancel(); // no-op when already finished
        // the consumer stopped iterating early (break / return): `done` must still settle
        rejectDone(new Error('generation ended early: the consumer stopped iterating'));
      }
    }

    const it = run();
    return {
      done,
      ready: compiled ?? Promise.resolve(),
      constrained: rc?.spec.kind ?? null,
      [Symbol.asyncIterator]: () => it,
    };
  };
}

/** Runs a generation to its end and returns its summary. */
export async function drain(g: Generation): Promise<GenerationSummary> {
  for await (const _ of g) void _;
  return g.done;
}
