// Continuous-batching scheduler (vLLM-style, iteration-level).
//
// Every step():
//   1. reap: cancelled sequences leave (pages freed, iterator ends with 'cancelled');
//   2. schedule, under a token budget (maxBatchTokens) and a sequence cap (maxRunning):
//      a. running sequences that decode (one pending token) — 1 token each, admission order;
//      b. running sequences still in (chunked) prefill — a chunk each from what is left;
//      c. waiting sequences, strict FIFO (the head blocks the queue: no starvation), admitted
//         while the budget, maxRunning and KV pages allow — unless this step preempted.
//      KV pages for every segment are reserved before the runner sees it. When a running
//      sequence cannot get its pages, the most recently admitted running sequence is
//      preempted (pages freed, put back at the head of the waiting queue with prompt +
//      generated tokens, recomputed later; its sampling step/history carry over, so its output
//      continues identically). It may be the sequence itself.
//   3. runner.runStep(batch) — one forward pass over all segments;
//   4. commit: KV lengths advance, sampled tokens are appended and streamed, stop / length end
//      sequences and free their pages; reap again.
//
// A sequence's state is uniform: `tokens` (prompt + generated) of which the first `computed`
// are in the KV cache. Pending = tokens.length - computed. A segment covering the last pending
// token samples (decode is the case pending = 1; recompute after preemption is a prefill).

import type { SampleParams } from '../../shaders/sample/sample.ts';
import type { SegmentResult, StepBatch, StepRunner, StepSegment, TokenConstraint } from './types.ts';
import { QueueFullError, RequestTooLargeError, UnknownAdapterError } from '../api/errors.ts';
export { QueueFullError, RequestTooLargeError, UnknownAdapterError };

// ----------------------------------------------------------------------------- public types

/**
 * What the scheduler needs from the paged KV cache. Structurally satisfied by
 * engine/kv's BlockAllocator and PagedKvCache: allocate() *appends* numTokens slots to a
 * sequence (all-or-nothing, false when full).
 */
export interface KvAllocator {
  readonly numBlocks: number;
  readonly blockSize: number;
  freeBlocks(): number;
  canAllocate(numTokens: number, seqId?: number): boolean;
  allocate(seqId: number, numTokens: number): boolean;
  free(seqId: number): number;
  numTokens(seqId: number): number;
}

/** Sampling settings of a request; the scheduler fills in `step` (index of the token generated). */
export type SampleSettings = Omit<SampleParams, 'step'> & { step?: number };

export interface GenerateRequest {
  promptTokens: number[];
  /** Adapter name, or null for the base model. */
  adapter: string | null;
  sample: SampleSettings;
  /** Maximum tokens to generate (≥ 1). */
  maxTokens: number;
  /** Sampling one of these ends the request with 'stop' (the stop token is not streamed). */
  stopTokenIds?: number[];
  signal?: AbortSignal;
  /** Collect the float32 logits the runner used for each generated token (tests, logprobs). */
  wantLogits?: boolean;
  /**
   * Output constraint (engine/structured): each sampled token is drawn from its mask, then
   * accepted by it; freed when the request ends (any reason). The scheduler owns it from submit.
   */
  constraint?: TokenConstraint;
}

export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';

export interface FinishInfo {
  reason: FinishReason;
  promptTokens: number;
  /** Tokens sampled, including a stop token (OpenAI `completion_tokens`). */
  completionTokens: number;
  /** The streamed tokens (sampled tokens without the stop token). */
  output: number[];
  /** The stop token id that ended the request, when reason = 'stop'. */
  stopToken: number | null;
  /** Times this request was preempted and recomputed. */
  preemptions: number;
  /** Logits per sampled token, when the request asked for them. */
  logits?: Float32Array[];
  error?: Error;
}

export interface RequestHandle extends AsyncIterable<number> {
  readonly id: number;
  /** Resolves (never rejects) when the request ends. */
  readonly finished: Promise<FinishInfo>;
  /** Ends the request with 'cancelled'; its pages are freed at the next step boundary. */
  cancel(): void;
  /** With wantLogits: the logits of each sampled token so far (live; entry i is ready when token i is streamed). */
  readonly logits: ReadonlyArray<Float32Array>;
}

export interface SchedulerOptions {
  /** Waiting requests beyond this make submit() throw QueueFullError. Default 256. */
  maxQueue?: number;
  /** Token budget of one step (decode tokens + prefill chunk tokens). Default 256. */
  maxBatchTokens?: number;
  /** Sequences in the running set at most (≤ maxBatchTokens). Default 64. */
  maxRunning?: number;
  /** Longest prefill chunk of one sequence in one step. Default maxBatchTokens. */
  maxPrefillChunk?: number;
  /** Context length limit (prompt + generated); default and upper bound: the KV capacity. */
  maxModelLen?: number;
  /** Optional: submit() throws UnknownAdapterError when this says false. */
  hasAdapter?: (name: string) => boolean;
  /**
   * At most this many distinct adapters (null = base does not count) among running sequences,
   * so a step never needs more adapters resident than the LoRA pool can pin at once. A waiting
   * request whose adapter would exceed it waits (FIFO: it blocks the queue head). Default ∞.
   */
  maxAdapters?: number;
  /** Finer test than maxAdapters (e.g. pool pages by rank): may the running set use these adapters together? */
  adaptersFit?: (adapters: ReadonlySet<string>) => boolean;
  /**
   * Called when a sequence using `adapter` enters the running set, and again (onAdapterRelease)
   * when it leaves it (finish, cancel, error or preemption). The engine pins the adapter in the
   * LoRA pool in between, so an adapter used by a running request is never evicted.
   */
  onAdapterAcquire?: (adapter: string) => void;
  onAdapterRelease?: (adapter: string) => void;
}

export interface SchedulerMetrics {
  steps: number;
  /** Prompt positions computed for the first time. */
  tokensPrefilled: number;
  /** Generated positions computed for the first time (decode). */
  tokensDecoded: number;
  /** Positions computed again after a preemption. */
  tokensRecomputed: number;
  preemptions: number;
  queueDepth: number;
  running: number;
  submitted: number;
  rejected: number;
  finished: Record<FinishReason, number>;
  kvFreeBlocks: number;
  kvTotalBlocks: number;
  lastBatchTokens: number;
  lastBatchSegments: number;
  /** Distinct adapters of running / waiting requests (vLLM's lora_requests_info). */
  runningAdapters: string[];
  waitingAdapters: string[];
}




// ----------------------------------------------------------------------------- internals

/** Single-consumer async queue of tokens, ended by finish. */
class TokenStream implements AsyncIterator<number> {
  private buf: number[] = [];
  private waiter: ((r: IteratorResult<number>) => void) | null = null;
  private waiterReject: ((e: Error) => void) | null = null;
  private done = false;
  private error: Error | null = null;
  constructor(private onReturn: () => void) {}

  push(t: number): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = this.waiterReject = null;
      w({ value: t, done: false });
    } else this.buf.push(t);
  }
  end(error: Error | null): void {
    this.done = true;
    this.error = error;
    if (this.waiter) {
      const [w, rj] = [this.waiter, this.waiterReject!];
      this.waiter = this.waiterReject = null;
      if (error) rj(error);
      else w({ value: undefined, done: true });
    }
  }
  next(): Promise<IteratorResult<number>> {
    if (this.buf.length) return Promise.resolve({ value: this.buf.shift()!, done: false });
    if (this.done) {
      if (this.error) {
        const e = this.error;
        this.error = null; // throw once, then report done
        return Promise.reject(e);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((res, rej) => {
      this.waiter = res;
      this.waiterReject = rej;
    });
  }
  /** A consumer that stops iterating early (break) cancels the request. */
  return(): Promise<IteratorResult<number>> {
    if (!this.done) this.onReturn();
    this.buf.length = 0;
    return Promise.resolve({ value: undefined, done: true });
  }
}

interface Seq {
  id: number;
  req: GenerateRequest;
  stopIds: Set<number>;
  /** prompt + generated */
  tokens: number[];
  promptLen: number;
  /** Positions already in the KV cache. */
  computed: number;
  /** Highest `computed` ever reached (positions below it are recomputes). */
  highWater: number;
  state: 'waiting' | 'running' | 'done';
  cancelRequested: boolean;
  preemptions: number;
  output: number[];
  logits: Float32Array[];
  stream: TokenStream;
  resolve: (f: FinishInfo) => void;
  detachSignal: () => void;
}

const yieldToEventLoop = (): Promise<void> =>
  typeof setImmediate === 'function'
    ? new Promise((r) => setImmediate(r))
    : new Promise((r) => {
        const ch = new MessageChannel();
        ch.port1.onmessage = () => {
          ch.port1.close();
          r();
        };
        ch.port2.postMessage(0);
      });

// ----------------------------------------------------------------------------- scheduler

export class Scheduler {
  readonly maxQueue: number;
  readonly maxBatchTokens: number;
  readonly maxRunning: number;
  readonly maxPrefillChunk: number;
  /** Longest sequence (prompt + generated) that can ever run. */
  readonly contextLimit: number;

  private waiting: Seq[] = [];
  /** In admission order: the last one is preempted first. */
  private running: Seq[] = [];
  private seqs = new Map<number, Seq>();
  /** Cancelled, to be finished at the next step boundary. */
  private toReap = new Set<Seq>();
  private nextId = 1;
  private inStep = false;
  private loopActive = false;
  private stopRequested = false;
  private wake: (() => void) | null = null;
  /** Set by submit / cancel / stop: something changed since the loop last looked. */
  private kicked = false;
  private m = {
    steps: 0, tokensPrefilled: 0, tokensDecoded: 0, tokensRecomputed: 0, preemptions: 0, submitted: 0, rejected: 0,
    lastBatchTokens: 0, lastBatchSegments: 0,
    finished: { stop: 0, length: 0, cancelled: 0, error: 0 } as Record<FinishReason, number>,
  };

  constructor(
    private runner: StepRunner,
    private kv: KvAllocator,
    private opts: SchedulerOptions = {},
  ) {
    this.maxQueue = opts.maxQueue ?? 256;
    this.maxBatchTokens = opts.maxBatchTokens ?? 256;
    this.maxRunning = opts.maxRunning ?? Math.min(64, this.maxBatchTokens);
    this.maxPrefillChunk = opts.maxPrefillChunk ?? this.maxBatchTokens;
    const capacity = kv.numBlocks * kv.blockSize;
    this.contextLimit = Math.min(capacity, opts.maxModelLen ?? Infinity);
    for (const [k, v] of [['maxQueue', this.maxQueue], ['maxBatchTokens', this.maxBatchTokens], ['maxRunning', this.maxRunning], ['maxPrefillChunk', this.maxPrefillChunk]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`Scheduler: ${k}=${v} must be a positive integer`);
    }
    if (opts.maxAdapters !== undefined && !(Number.isInteger(opts.maxAdapters) && opts.maxAdapters >= 1)) throw new Error(`Scheduler: maxAdapters=${opts.maxAdapters} must be a positive integer`);
    // Every running sequence must be able to decode in every step, or later ones would starve.
    if (this.maxRunning > this.maxBatchTokens) throw new Error(`Scheduler: maxRunning (${this.maxRunning}) > maxBatchTokens (${this.maxBatchTokens})`);
  }

  /** Queues a request. Throws QueueFullError, RequestTooLargeError, UnknownAdapterError, or on bad arguments. */
  submit(req: GenerateRequest): RequestHandle {
    const p = req.promptTokens;
    if (!Array.isArray(p) || p.length === 0 || p.some((t) => !Number.isInteger(t) || t < 0)) throw new Error('submit: promptTokens must be a non-empty array of token ids');
    if (!Number.isInteger(req.maxTokens) || req.maxTokens < 1) throw new Error(`submit: maxTokens=${req.maxTokens} must be a positive integer`);
    if (req.adapter !== null && this.opts.hasAdapter && !this.opts.hasAdapter(req.adapter)) throw new UnknownAdapterError(req.adapter);
    if (p.length > this.contextLimit) throw new RequestTooLargeError(p.length, this.contextLimit);
    if (this.waiting.length >= this.maxQueue) {
      this.m.rejected++;
      throw new QueueFullError(this.maxQueue);
    }
    const id = this.nextId++;
    let resolve!: (f: FinishInfo) => void;
    const finished = new Promise<FinishInfo>((r) => (resolve = r));
    const seq: Seq = {
      id, req, stopIds: new Set(req.stopTokenIds ?? []), tokens: [...p], promptLen: p.length, computed: 0, highWater: 0,
      state: 'waiting', cancelRequested: false, preemptions: 0, output: [], logits: [],
      stream: new TokenStream(() => this.cancel(id)), resolve, detachSignal: () => {},
    };
    this.m.submitted++;
    this.seqs.set(id, seq);
    this.waiting.push(seq);
    if (req.signal) {
      const onAbort = () => this.cancel(id);
      if (req.signal.aborted) this.cancel(id);
      else {
        req.signal.addEventListener('abort', onAbort, { once: true });
        seq.detachSignal = () => req.signal!.removeEventListener('abort', onAbort);
      }
    }
    this.wakeUp();
    return { id, finished, cancel: () => this.cancel(id), logits: seq.logits, [Symbol.asyncIterator]: () => seq.stream };
  }

  /** Cancels a request: immediately when no step is in flight, else at the end of that step. */
  cancel(id: number): void {
    const s = this.seqs.get(id);
    if (!s || s.state === 'done') return;
    s.cancelRequested = true;
    this.toReap.add(s);
    if (!this.inStep) this.reap();
  }

  /** Whether any request is waiting or running. */
  hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  /** One iteration. Returns false when there was nothing to run. */
  async step(): Promise<boolean> {
    if (this.inStep) throw new Error('Scheduler.step: a step is already in flight');
    this.reap();
    const batch = this.schedule();
    if (batch.segments.length === 0) return false;
    this.inStep = true;
    let results: SegmentResult[];
    try {
      await this.applyConstraints(batch);
      results = batch.segments.length ? await this.runner.runStep(batch) : [];
    } catch (e) {
      for (const g of batch.segments) this.finish(this.seqs.get(g.seqId), 'error', asError(e));
      return true;
    } finally {
      this.inStep = false;
      this.m.steps++;
    }
    const byId = new Map(results.map((r) => [r.seqId, r]));
    for (const g of batch.segments) this.commit(this.seqs.get(g.seqId), g, byId.get(g.seqId));
    this.reap();
    return true;
  }

  /**
   * The next-token mask of every constrained sampling segment. A constraint that fails (e.g.
   * nothing in the vocabulary can continue it) ends its own request; the segment leaves the batch.
   * Tokens a constraint accepted beyond the sequence's generated tokens are rolled back first
   * (the two must agree before a mask is taken).
   */
  private async applyConstraints(batch: StepBatch): Promise<void> {
    let dropped = false;
    for (const g of batch.segments) {
      const s = this.seqs.get(g.seqId);
      const c = s?.req.constraint;
      if (!s || !c || !g.sample) continue;
      try {
        const generated = s.tokens.length - s.promptLen;
        if (c.accepted > generated) c.rollback(c.accepted - generated);
        if (c.accepted !== generated) throw new Error(`constraint of sequence ${s.id} accepted ${c.accepted} tokens, the sequence generated ${generated}`);
        g.mask = await c.nextMask();
      } catch (e) {
        this.finish(s, 'error', asError(e));
        dropped = true;
      }
    }
    if (dropped) batch.segments = batch.segments.filter((g) => this.seqs.get(g.seqId)?.state === 'running');
  }

  /** Steps while work exists; awaits new submissions when idle (no busy-spin). Ends on stop(). */
  async run(): Promise<void> {
    if (this.loopActive) throw new Error('Scheduler.run: already running');
    this.loopActive = true;
    this.stopRequested = false;
    try {
      while (!this.stopRequested) {
        let progressed = false;
        this.kicked = false;
        try {
          progressed = this.hasWork() && (await this.step());
        } catch (e) {
          this.failAll(asError(e)); // an internal inconsistency: end every request rather than hang them
        }
        if (!progressed && !this.kicked) await new Promise<void>((r) => (this.wake = r));
        else await yieldToEventLoop(); // let timers, aborts and submissions in
      }
    } finally {
      this.loopActive = false;
    }
  }

  /** Makes run() return after the current step. Requests stay queued. */
  stop(): void {
    this.stopRequested = true;
    this.wakeUp();
  }

  /** Ends every live request with 'error' (pages freed). */
  failAll(error: Error): void {
    for (const s of [...this.seqs.values()]) this.finish(s, 'error', error);
  }

  /** Cancels every request (waiting and running). */
  cancelAll(): void {
    for (const id of [...this.seqs.keys()]) this.cancel(id);
  }

  metrics(): SchedulerMetrics {
    return {
      ...this.m, finished: { ...this.m.finished },
      queueDepth: this.waiting.length, running: this.running.length,
      kvFreeBlocks: this.kv.freeBlocks(), kvTotalBlocks: this.kv.numBlocks,
      runningAdapters: adapterSet(this.running), waitingAdapters: adapterSet(this.waiting),
    };
  }

  /** Live requests (waiting + running). */
  get size(): number {
    return this.seqs.size;
  }

  // --------------------------------------------------------------------------- internals

  private wakeUp(): void {
    this.kicked = true;
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private schedule(): StepBatch {
    const segs = new Map<Seq, StepSegment>();
    const st = { budget: this.maxBatchTokens, preempted: false };
    const add = (s: Seq, n: number) => {
      segs.set(s, this.segment(s, n));
      st.budget -= n;
    };
    // a. decodes
    for (const s of [...this.running]) {
      if (st.budget === 0) break;
      if (s.state === 'running' && this.pending(s) === 1 && this.reserve(s, 1, segs, st)) add(s, 1);
    }
    // b. continuing prefills
    for (const s of [...this.running]) {
      if (st.budget === 0) break;
      if (s.state !== 'running' || this.pending(s) <= 1) continue;
      const n = Math.min(this.pending(s), st.budget, this.maxPrefillChunk);
      if (this.reserve(s, n, segs, st)) add(s, n);
    }
    // c. admissions, FIFO
    while (!st.preempted && this.waiting.length && this.running.length < this.maxRunning && st.budget > 0) {
      const s = this.waiting[0]!;
      const n = Math.min(this.pending(s), st.budget, this.maxPrefillChunk);
      if (!this.adapterFits(s)) break;
      if (!this.kv.canAllocate(n, s.id)) {
        // Nothing holds pages, yet the head does not fit: it never will (guards against a spin).
        if (this.running.length === 0 && segs.size === 0 && this.kv.freeBlocks() === this.kv.numBlocks) {
          this.finish(s, 'error', new RequestTooLargeError(s.tokens.length, this.kv.numBlocks * this.kv.blockSize));
          continue;
        }
        break;
      }
      if (s.req.adapter !== null && this.opts.onAdapterAcquire) {
        try {
          this.opts.onAdapterAcquire(s.req.adapter);
        } catch (e) {
          // e.g. the adapter was unloaded while the request waited: this request fails, not the step
          this.finish(s, 'error', asError(e));
          continue;
        }
      }
      this.kvAllocate(s, n);
      this.waiting.shift();
      s.state = 'running';
      this.running.push(s);
      add(s, n);
    }
    const segments = [...segs.values()];
    this.m.lastBatchSegments = segments.length;
    this.m.lastBatchTokens = this.maxBatchTokens - st.budget;
    return { segments };
  }

  /** Reserves pages for n more tokens of running s, preempting the newest running sequences as needed. */
  private reserve(s: Seq, n: number, segs: Map<Seq, StepSegment>, st: { budget: number; preempted: boolean }): boolean {
    while (!this.kv.canAllocate(n, s.id)) {
      const victim = this.running[this.running.length - 1]!;
      const seg = segs.get(victim);
      if (seg) {
        segs.delete(victim);
        st.budget += seg.tokens.length;
      }
      this.preempt(victim);
      st.preempted = true;
      if (victim === s) return false;
    }
    this.kvAllocate(s, n);
    return true;
  }

  private adapterFits(s: Seq): boolean {
    const a = s.req.adapter;
    if (a === null || (this.opts.maxAdapters === undefined && !this.opts.adaptersFit)) return true;
    const set = new Set<string>();
    for (const r of this.running) if (r.req.adapter !== null) set.add(r.req.adapter);
    if (set.has(a)) return true;
    set.add(a);
    if (set.size > (this.opts.maxAdapters ?? Infinity)) return false;
    return this.opts.adaptersFit?.(set) ?? true;
  }

  private kvAllocate(s: Seq, n: number): void {
    const extra = s.computed + n - this.kv.numTokens(s.id);
    if (extra > 0 && !this.kv.allocate(s.id, extra)) throw new Error(`scheduler: KV allocate(${s.id}, ${extra}) failed after canAllocate`);
  }

  private preempt(s: Seq): void {
    this.kv.free(s.id);
    this.running.splice(this.running.indexOf(s), 1);
    if (s.req.adapter !== null) this.opts.onAdapterRelease?.(s.req.adapter);
    s.computed = 0;
    s.state = 'waiting';
    s.preemptions++;
    this.m.preemptions++;
    this.waiting.unshift(s);
  }

  private pending(s: Seq): number {
    return s.tokens.length - s.computed;
  }

  private segment(s: Seq, n: number): StepSegment {
    const last = s.computed + n === s.tokens.length;
    const seg: StepSegment = {
      seqId: s.id,
      tokens: s.tokens.slice(s.computed, s.computed + n),
      startPos: s.computed,
      adapter: s.req.adapter,
      sample: last ? ({ ...s.req.sample, step: s.tokens.length - s.promptLen } as SampleParams) : null,
      history: s.tokens.slice(),
    };
    if (last && s.req.wantLogits) seg.wantLogits = true;
    return seg;
  }

  private commit(s: Seq | undefined, g: StepSegment, r: SegmentResult | undefined): void {
    if (!s || s.state !== 'running' || s.cancelRequested) return; // ended during the step / reaped right after
    const end = g.startPos + g.tokens.length;
    const fresh = Math.max(0, end - Math.max(s.highWater, g.startPos));
    const freshPrompt = Math.max(0, Math.min(end, s.promptLen) - Math.max(s.highWater, g.startPos));
    this.m.tokensRecomputed += g.tokens.length - fresh;
    this.m.tokensPrefilled += freshPrompt;
    this.m.tokensDecoded += fresh - freshPrompt;
    s.computed = end;
    s.highWater = Math.max(s.highWater, end);
    if (!g.sample) return;
    if (!r || r.token === null || !Number.isInteger(r.token)) {
      this.finish(s, 'error', new Error(`runner returned no sampled token for sequence ${s.id}`));
      return;
    }
    const t = r.token;
    if (s.req.wantLogits) {
      if (!r.logits) return this.finish(s, 'error', new Error(`runner returned no logits for sequence ${s.id}`));
      s.logits.push(r.logits);
    }
    const c = s.req.constraint;
    if (c && !c.accept(t)) return this.finish(s, 'error', new Error(`sampled token ${t} is not allowed by the request's constraint (sequence ${s.id})`));
    s.tokens.push(t);
    if (s.stopIds.has(t)) return this.finish(s, 'stop', undefined, t);
    s.output.push(t);
    s.stream.push(t);
    // The next decode needs tokens.length KV slots.
    if (s.tokens.length - s.promptLen >= s.req.maxTokens || s.tokens.length > this.contextLimit) this.finish(s, 'length');
  }

  /** Ends cancelled sequences; frees their pages. */
  private reap(): void {
    for (const s of this.toReap) this.finish(s, 'cancelled');
    this.toReap.clear();
  }

  private finish(s: Seq | undefined, reason: FinishReason, error?: Error, stopToken: number | null = null): void {
    if (!s || s.state === 'done') return;
    if (s.state === 'running') {
      this.running.splice(this.running.indexOf(s), 1);
      if (s.req.adapter !== null) this.opts.onAdapterRelease?.(s.req.adapter);
    } else this.waiting.splice(this.waiting.indexOf(s), 1);
    this.kv.free(s.id);
    s.req.constraint?.free();
    s.state = 'done';
    this.seqs.delete(s.id);
    s.detachSignal();
    this.m.finished[reason]++;
    s.stream.end(reason === 'error' ? (error ?? new Error('request failed')) : null);
    s.resolve({
      reason, promptTokens: s.promptLen, completionTokens: s.tokens.length - s.promptLen, output: s.output,
      stopToken, preemptions: s.preemptions, ...(s.req.wantLogits ? { logits: s.logits } : {}), ...(error ? { error } : {}),
    });
  }
}

function adapterSet(seqs: Seq[]): string[] {
  return [...new Set(seqs.map((s) => s.req.adapter).filter((a): a is string => a !== null))].sort();
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
