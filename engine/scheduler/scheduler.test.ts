import { describe, expect, it } from 'vitest';
import { Rng } from '../../shaders/lib/random.ts';
import { CpuStepRunner, soloGenerate, toyModel, TrackedKv, type LastLogitsModel } from '../../tests/helpers/cpu-runner.ts';
import { QueueFullError, RequestTooLargeError, Scheduler, UnknownAdapterError, type FinishInfo, type GenerateRequest, type RequestHandle, type SchedulerOptions } from './scheduler.ts';

const V = 61;
const toy = toyModel(V);
const GREEDY = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };
const ADAPTERS = [null, 'alpha', 'beta', 'gamma'];

function setup(numBlocks: number, blockSize: number, opts: SchedulerOptions = {}, model: LastLogitsModel = toy) {
  const kv = new TrackedKv(numBlocks, blockSize);
  const runner = new CpuStepRunner(kv, model, { maxBatchTokens: opts.maxBatchTokens ?? 256 });
  const sched = new Scheduler(runner, kv, opts);
  return { kv, runner, sched };
}

function randomRequest(rng: Rng, over: Partial<GenerateRequest> = {}): GenerateRequest {
  const sampled = rng.uniform() < 0.5;
  return {
    promptTokens: rng.ints(1 + rng.int(24), V),
    adapter: ADAPTERS[rng.int(ADAPTERS.length)]!,
    sample: sampled
      ? { temperature: 0.5 + rng.uniform(), topK: rng.int(3) * 10, topP: rng.uniform() < 0.5 ? 1 : 0.9, repetitionPenalty: rng.uniform() < 0.5 ? 1 : 1.3, seed: rng.u32() }
      : GREEDY,
    maxTokens: 1 + rng.int(16),
    stopTokenIds: rng.uniform() < 0.5 ? [rng.int(V)] : [],
    ...over,
  };
}

async function collect(h: RequestHandle): Promise<number[]> {
  const out: number[] = [];
  for await (const t of h) out.push(t);
  return out;
}

async function drain(sched: Scheduler, maxSteps = 100_000): Promise<number> {
  let n = 0;
  while (sched.hasWork()) {
    await sched.step();
    if (++n > maxSteps) throw new Error('scheduler did not finish');
  }
  return n;
}

function expectSolo(req: GenerateRequest, fin: FinishInfo, streamed: number[], model: LastLogitsModel = toy) {
  const solo = soloGenerate(model, req);
  expect(fin.output).toEqual(solo.output);
  expect(streamed).toEqual(solo.output);
  expect(fin.reason).toBe(solo.reason);
  expect(fin.stopToken).toBe(solo.stopToken);
  expect(fin.completionTokens).toBe(solo.logits.length);
  if (req.wantLogits) {
    expect(fin.logits!.length).toBe(solo.logits.length);
    fin.logits!.forEach((l, i) => expect(Array.from(l)).toEqual(Array.from(solo.logits[i]!)));
  }
}

describe('Scheduler (CPU runner)', () => {
  it('requests joining and leaving mid-flight match each request run alone (tokens and logits)', async () => {
    const rng = new Rng(7);
    const { kv, runner, sched } = setup(64, 4, { maxBatchTokens: 16, maxRunning: 6 });
    const live: { req: GenerateRequest; h: RequestHandle; out: Promise<number[]> }[] = [];
    for (let step = 0; step < 400 && (step < 40 || sched.hasWork()); step++) {
      if (step < 40 && rng.uniform() < 0.4) {
        const req = randomRequest(rng, { wantLogits: true });
        const h = sched.submit(req);
        live.push({ req, h, out: collect(h) });
      }
      await sched.step();
    }
    expect(sched.hasWork()).toBe(false);
    expect(live.length).toBeGreaterThan(10);
    for (const { req, h, out } of live) expectSolo(req, await h.finished, await out);
    // Steps really mixed prefill chunks with decodes, and several adapters.
    const mixed = runner.log.filter((b) => b.segments.some((g) => g.tokens.length > 1) && b.segments.some((g) => g.tokens.length === 1 && g.startPos > 0));
    expect(mixed.length).toBeGreaterThan(0);
    expect(runner.log.some((b) => new Set(b.segments.map((g) => g.adapter)).size >= 3)).toBe(true);
    expect(kv.freeBlocks()).toBe(64);
    kv.alloc.validate();
  });

  it('the same request gives the same output alone in the scheduler, in a crowd, and in the oracle', async () => {
    const rng = new Rng(11);
    const target = randomRequest(rng, { maxTokens: 12, stopTokenIds: [], wantLogits: true, sample: { temperature: 0.8, topK: 20, topP: 0.95, repetitionPenalty: 1.2, seed: 5 } });
    const alone = setup(32, 4);
    const ha = alone.sched.submit(target);
    await drain(alone.sched);
    const crowd = setup(32, 4, { maxBatchTokens: 7 });
    for (let i = 0; i < 5; i++) crowd.sched.submit(randomRequest(rng));
    const hc = crowd.sched.submit(target);
    for (let i = 0; i < 5; i++) crowd.sched.submit(randomRequest(rng));
    await drain(crowd.sched);
    const [fa, fc] = [await ha.finished, await hc.finished];
    expect(fa.output).toHaveLength(12);
    expect(fc.output).toEqual(fa.output);
    fc.logits!.forEach((l, i) => expect(Array.from(l)).toEqual(Array.from(fa.logits![i]!)));
    expectSolo(target, fc, fc.output);
  });

  it('chunked prefill equals unchunked, and only the final chunk samples', async () => {
    const rng = new Rng(3);
    const reqs = Array.from({ length: 6 }, () => randomRequest(rng, { promptTokens: rng.ints(20 + rng.int(30), V), wantLogits: true }));
    const run = async (opts: SchedulerOptions) => {
      const { sched, runner } = setup(128, 8, opts);
      const hs = reqs.map((r) => sched.submit(r));
      await drain(sched);
      return { fins: await Promise.all(hs.map((h) => h.finished)), runner };
    };
    const big = await run({ maxBatchTokens: 256 });
    const small = await run({ maxBatchTokens: 5, maxRunning: 3 });
    const chunk = await run({ maxBatchTokens: 64, maxPrefillChunk: 7 });
    expect(big.runner.log.flatMap((b) => b.segments).every((g) => g.sample !== null)).toBe(true); // never chunked
    for (const r of [small, chunk]) {
      const segs = r.runner.log.flatMap((b) => b.segments);
      expect(segs.some((g) => g.sample === null)).toBe(true); // chunked
      expect(segs.every((g) => g.sample === null || g.startPos + g.tokens.length === g.history.length)).toBe(true);
      r.fins.forEach((f, i) => {
        expect(f.output).toEqual(big.fins[i]!.output);
        expect(f.logits!.map((l) => Array.from(l))).toEqual(big.fins[i]!.logits!.map((l) => Array.from(l)));
      });
    }
    expect(chunk.runner.log.flatMap((b) => b.segments).every((g) => g.tokens.length <= 7)).toBe(true);
    big.fins.forEach((f, i) => expectSolo(reqs[i]!, f, f.output));
  });

  it('preempts under a tiny KV cache, recomputes, and still matches the oracle', async () => {
    const rng = new Rng(5);
    // 12 blocks × 4 = 48 slots; requests grow to ~40 tokens each.
    const { kv, sched, runner } = setup(12, 4, { maxBatchTokens: 32, maxRunning: 8 });
    const reqs = Array.from({ length: 12 }, () => randomRequest(rng, { promptTokens: rng.ints(8 + rng.int(12), V), maxTokens: 20, stopTokenIds: [], wantLogits: true }));
    const hs = reqs.map((r) => sched.submit(r));
    const outs = hs.map(collect);
    await drain(sched);
    const m = sched.metrics();
    expect(m.preemptions).toBeGreaterThan(0);
    expect(m.tokensRecomputed).toBeGreaterThan(0);
    const fins = await Promise.all(hs.map((h) => h.finished));
    expect(fins.some((f) => f.preemptions > 0)).toBe(true);
    for (let i = 0; i < reqs.length; i++) {
      expect(fins[i]!.reason).toBe('length');
      expectSolo(reqs[i]!, fins[i]!, await outs[i]!);
    }
    // A recompute prefill of a preempted sequence carries prompt + generated tokens and samples
    // its next token with step = tokens generated so far.
    const recompute = runner.log.flatMap((b) => b.segments).find((g) => g.startPos === 0 && g.history.length > reqs[g.seqId - 1]!.promptTokens.length);
    expect(recompute).toBeDefined();
    expect(m.tokensPrefilled).toBe(reqs.reduce((a, r) => a + r.promptTokens.length, 0));
    expect(m.tokensDecoded).toBe(reqs.reduce((a, r) => a + r.maxTokens - 1, 0));
    expect(kv.freeBlocks()).toBe(12);
    kv.alloc.validate();
  });

  it('a sequence that outgrows the whole cache ends with length; an oversized prompt is refused', async () => {
    const { kv, sched } = setup(3, 4); // 12 slots
    expect(() => sched.submit({ promptTokens: Array(13).fill(1), adapter: null, sample: GREEDY, maxTokens: 1 })).toThrow(RequestTooLargeError);
    const h = sched.submit({ promptTokens: Array(10).fill(1), adapter: null, sample: GREEDY, maxTokens: 100 });
    const other = sched.submit({ promptTokens: [2, 3], adapter: 'alpha', sample: GREEDY, maxTokens: 30 });
    await drain(sched, 500);
    const f = await h.finished;
    expect(f.reason).toBe('length');
    expect(f.promptTokens + f.completionTokens).toBe(13); // ran positions 0..11, sampled the 13th token
    expect((await other.finished).reason).toBe('length');
    expect(kv.freeBlocks()).toBe(3);
    const { sched: s2 } = setup(16, 4, { maxModelLen: 8 });
    expect(() => s2.submit({ promptTokens: Array(9).fill(1), adapter: null, sample: GREEDY, maxTokens: 1 })).toThrow(/context limit is 8/);
  });

  it('cancellation frees pages within one step (handle, AbortSignal, break) and ends the iterator', async () => {
    let onStep: (() => void) | null = null;
    const kv = new TrackedKv(32, 4);
    const runner = new CpuStepRunner(kv, toy, { beforeStep: () => onStep?.() });
    const sched = new Scheduler(runner, kv, { maxBatchTokens: 8 });
    const long = { promptTokens: Array.from({ length: 20 }, (_, i) => i), adapter: null, sample: GREEDY, maxTokens: 1000, stopTokenIds: [] };
    const a = sched.submit(long);
    const ac = new AbortController();
    const b = sched.submit({ ...long, adapter: 'beta', signal: ac.signal });
    const outA = collect(a);
    for (let i = 0; i < 8; i++) await sched.step();
    const used = 32 - kv.freeBlocks();
    expect(used).toBeGreaterThan(10);
    // Cancel during a step: pages come back when that step ends.
    onStep = () => {
      onStep = null;
      a.cancel();
      expect(kv.numTokens(a.id)).toBeGreaterThan(0); // still held while the step runs
    };
    await sched.step();
    expect(kv.numTokens(a.id)).toBe(0);
    expect(kv.alloc.has(a.id)).toBe(false);
    expect((await a.finished).reason).toBe('cancelled');
    const streamed = await outA;
    expect(streamed.length).toBeGreaterThan(0);
    expect(streamed).toEqual((await a.finished).output);
    // Abort between steps: immediate.
    ac.abort();
    expect((await b.finished).reason).toBe('cancelled');
    expect(kv.freeBlocks()).toBe(32);
    expect(sched.hasWork()).toBe(false);
    // A consumer that stops iterating cancels its request.
    const c = sched.submit(long);
    for (let i = 0; i < 4; i++) await sched.step(); // 20-token prompt in chunks of 8, then decodes
    for await (const _t of c) break;
    expect((await c.finished).reason).toBe('cancelled');
    expect(kv.freeBlocks()).toBe(32);
    // Already-aborted signal: finished at once, never runs.
    const d = sched.submit({ ...long, signal: AbortSignal.abort() });
    expect((await d.finished).reason).toBe('cancelled');
    expect(sched.hasWork()).toBe(false);
    expect(sched.metrics().finished.cancelled).toBe(4);
  });

  it('1000 mixed requests with random cancellations: free pages and sequences back to the start', async () => {
    const rng = new Rng(1234);
    const { kv, sched } = setup(40, 4, { maxBatchTokens: 48, maxRunning: 12, maxQueue: 2000 });
    const startFree = kv.freeBlocks();
    const loop = sched.run();
    const all: { req: GenerateRequest; h: RequestHandle; out: Promise<number[]>; cancelled: boolean }[] = [];
    for (let i = 0; i < 1000; i++) {
      const ac = new AbortController();
      const req = randomRequest(rng, { maxTokens: 1 + rng.int(24), signal: ac.signal });
      const h = sched.submit(req);
      const e = { req, h, out: collect(h), cancelled: false };
      all.push(e);
      const r = rng.uniform();
      if (r < 0.1) {
        e.cancelled = true;
        h.cancel(); // before it ever runs, or mid-flight
      } else if (r < 0.25) {
        e.cancelled = true;
        const delay = rng.int(4);
        setTimeout(() => ac.abort(), delay);
      }
      if (rng.uniform() < 0.3) await new Promise((res) => setTimeout(res, 0));
    }
    const fins = await Promise.all(all.map((e) => e.h.finished));
    sched.stop();
    await loop;
    const m = sched.metrics();
    expect(m.finished.cancelled).toBeGreaterThan(50);
    expect(m.finished.stop + m.finished.length).toBeGreaterThan(700);
    expect(m.preemptions).toBeGreaterThan(0);
    expect(kv.freeBlocks()).toBe(startFree);
    expect(kv.sequences()).toEqual([]);
    expect(sched.size).toBe(0);
    expect(m.running + m.queueDepth).toBe(0);
    expect(m.finished.error).toBe(0);
    kv.alloc.validate();
    for (let i = 0; i < all.length; i++) {
      const { req, out, cancelled } = all[i]!;
      const f = fins[i]!;
      const streamed = await out;
      if (f.reason === 'cancelled') {
        expect(cancelled).toBe(true);
        // whatever was streamed before the cancel is a prefix of the solo output
        const solo = soloGenerate(toy, req).output;
        expect(streamed).toEqual(solo.slice(0, streamed.length));
      } else expectSolo(req, f, streamed);
    }
  });

  it('bounded queue rejects with QueueFullError; unknown adapters are refused', async () => {
    const { sched } = setup(32, 4, { maxQueue: 3, hasAdapter: (n) => n === 'alpha' });
    const req = { promptTokens: [1, 2], adapter: null, sample: GREEDY, maxTokens: 2 };
    for (let i = 0; i < 3; i++) sched.submit(req);
    expect(() => sched.submit(req)).toThrow(QueueFullError);
    expect(sched.metrics().rejected).toBe(1);
    expect(() => sched.submit({ ...req, adapter: 'nope' })).toThrow(UnknownAdapterError);
    await sched.step(); // admits all three: queue has room again
    expect(sched.metrics().queueDepth).toBe(0);
    sched.submit({ ...req, adapter: 'alpha' });
    await drain(sched);
    expect(sched.metrics().finished.length).toBe(4);
  });

  it('admits FIFO: no starvation under a full running set, and preempted requests go back to the head', async () => {
    const { sched } = setup(64, 4, { maxRunning: 2, maxBatchTokens: 16 });
    const order: number[] = [];
    const hs: RequestHandle[] = [];
    for (let i = 0; i < 8; i++) {
      const h = sched.submit({ promptTokens: [i + 1, 3, 5], adapter: null, sample: GREEDY, maxTokens: 5 + (i % 3), stopTokenIds: [] });
      hs.push(h);
      void h.finished.then(() => order.push(i));
    }
    // Keep submitting short requests while the first ones run: earlier ones still finish first.
    for (let s = 0; s < 200 && sched.hasWork(); s++) {
      if (s < 30) hs.push(sched.submit({ promptTokens: [9], adapter: null, sample: GREEDY, maxTokens: 1 }));
      await sched.step();
      await Promise.resolve();
    }
    await Promise.all(hs.map((h) => h.finished));
    await new Promise((r) => setTimeout(r, 0));
    // Pairs run together, so finishing order within the first 8 is by admission pair.
    for (let i = 2; i < 8; i++) expect(order.indexOf(i)).toBeGreaterThan(order.indexOf(i - 2));

    // Preemption: the newest running sequence is evicted and re-admitted before later arrivals.
    const t = setup(6, 4, { maxBatchTokens: 32 });
    const a = t.sched.submit({ promptTokens: Array(8).fill(1), adapter: null, sample: GREEDY, maxTokens: 12, stopTokenIds: [] });
    const b = t.sched.submit({ promptTokens: Array(8).fill(2), adapter: null, sample: GREEDY, maxTokens: 12, stopTokenIds: [] });
    await t.sched.step(); // both prefilled: 4 of 6 blocks
    const c = t.sched.submit({ promptTokens: Array(4).fill(3), adapter: null, sample: GREEDY, maxTokens: 1 });
    await drain(t.sched);
    const [fa, fb, fc] = await Promise.all([a.finished, b.finished, c.finished]);
    expect(fa.preemptions).toBe(0);
    expect(fb.preemptions).toBeGreaterThan(0);
    expect(fc.reason).toBe('length');
    // b was re-admitted (startPos 0 with its generated tokens) before c ran.
    const segs = t.runner.log.flatMap((bt, step) => bt.segments.map((g) => ({ ...g, step })));
    const bRe = segs.find((g) => g.seqId === b.id && g.startPos === 0 && g.history.length > 8)!;
    const cFirst = segs.find((g) => g.seqId === c.id)!;
    expect(bRe.step).toBeLessThanOrEqual(cFirst.step);
  });

  it('maxAdapters bounds the distinct adapters running together; outputs unchanged', async () => {
    const rng = new Rng(21);
    const { sched, runner, kv } = setup(64, 4, { maxBatchTokens: 24, maxRunning: 8, maxAdapters: 2 });
    const reqs = Array.from({ length: 30 }, () => randomRequest(rng));
    const hs = reqs.map((r) => sched.submit(r));
    const outs = hs.map(collect);
    await drain(sched);
    for (const b of runner.log) expect(new Set(b.segments.map((g) => g.adapter).filter((a) => a !== null)).size).toBeLessThanOrEqual(2);
    expect(runner.log.some((b) => new Set(b.segments.map((g) => g.adapter).filter((a) => a !== null)).size === 2)).toBe(true);
    for (let i = 0; i < reqs.length; i++) expectSolo(reqs[i]!, await hs[i]!.finished, await outs[i]!);
    expect(kv.freeBlocks()).toBe(64);
    // adaptersFit: a custom rule (here: never alpha with beta)
    const t = setup(64, 4, { adaptersFit: (set) => !(set.has('alpha') && set.has('beta')) });
    const hs2 = ['alpha', 'beta', 'gamma', 'alpha'].map((a) => t.sched.submit({ promptTokens: [1, 2], adapter: a, sample: GREEDY, maxTokens: 5 }));
    await drain(t.sched);
    for (const b of t.runner.log) {
      const set = new Set(b.segments.map((g) => g.adapter));
      expect(set.has('alpha') && set.has('beta')).toBe(false);
    }
    expect((await Promise.all(hs2.map((h) => h.finished))).map((f) => f.reason)).toEqual(['length', 'length', 'length', 'length']);
  });

  it('holds an adapter (acquire/release) exactly while a request using it runs, through preemption and cancellation', async () => {
    const rng = new Rng(99);
    const held = new Map<string, number>();
    let maxRunningHeld = 0;
    const { kv, sched } = setup(10, 4, {
      maxBatchTokens: 32,
      onAdapterAcquire: (a) => {
        if (a === 'gamma' && rng.uniform() < 0.3) throw new Error('adapter gamma was unloaded');
        held.set(a, (held.get(a) ?? 0) + 1);
      },
      onAdapterRelease: (a) => {
        const n = held.get(a) ?? 0;
        expect(n).toBeGreaterThan(0); // never released without a matching acquire
        held.set(a, n - 1);
      },
    });
    const startFree = kv.freeBlocks();
    const handles: RequestHandle[] = [];
    for (let i = 0; i < 60; i++) {
      const h = sched.submit(randomRequest(rng, { maxTokens: 1 + rng.int(12) }));
      handles.push(h);
      if (rng.uniform() < 0.15) h.cancel();
    }
    let steps = 0;
    while (sched.hasWork()) {
      await sched.step();
      if (++steps > 100_000) throw new Error('scheduler did not finish');
      // what is held equals the adapters of the running set, counted per running request
      const m = sched.metrics();
      const total = [...held.values()].reduce((a, b) => a + b, 0);
      expect(total).toBeLessThanOrEqual(m.running);
      maxRunningHeld = Math.max(maxRunningHeld, total);
    }
    const fins = await Promise.all(handles.map((h) => h.finished));
    expect([...held.values()].every((n) => n === 0)).toBe(true);
    expect(maxRunningHeld).toBeGreaterThan(1);
    expect(sched.metrics().preemptions).toBeGreaterThan(0);
    // a failed acquire fails that request only, with the acquire's error
    const errs = fins.filter((f) => f.reason === 'error');
    expect(errs.length).toBeGreaterThan(0);
    for (const f of errs) expect(f.error?.message).toContain('unloaded');
    expect(fins.filter((f) => f.reason === 'stop' || f.reason === 'length').length).toBeGreaterThan(30);
    expect(kv.freeBlocks()).toBe(startFree);
  });

  it('run() sleeps when idle (no busy-spin), wakes on submit, stops on stop()', async () => {
    const { sched, runner } = setup(16, 4);
    const loop = sched.run();
    await new Promise((r) => setTimeout(r, 30));
    expect(runner.log.length).toBe(0);
    expect(sched.metrics().steps).toBe(0);
    const h = sched.submit({ promptTokens: [1, 2, 3], adapter: null, sample: GREEDY, maxTokens: 4 });
    expect((await h.finished).completionTokens).toBe(4);
    const steps = sched.metrics().steps;
    expect(steps).toBe(4);
    await new Promise((r) => setTimeout(r, 30));
    expect(sched.metrics().steps).toBe(steps);
    sched.stop();
    await loop;
  });

  it('a runner failure ends the batch with error, frees its pages, and the iterator throws', async () => {
    const kv = new TrackedKv(16, 4);
    let fail = false;
    const inner = new CpuStepRunner(kv, toy);
    const sched = new Scheduler({ runStep: (b) => (fail ? Promise.reject(new Error('device lost')) : inner.runStep(b)) }, kv);
    const h = sched.submit({ promptTokens: [1, 2, 3], adapter: null, sample: GREEDY, maxTokens: 10 });
    await sched.step();
    fail = true;
    await sched.step();
    const f = await h.finished;
    expect(f.reason).toBe('error');
    expect(f.error?.message).toBe('device lost');
    await expect(collect(h)).rejects.toThrow('device lost');
    expect(kv.freeBlocks()).toBe(16);
  });

  it('run() survives an internal failure: live requests end with error, later ones run', async () => {
    const kv = new TrackedKv(16, 4);
    let lie = true;
    const liar = Object.assign(Object.create(kv) as TrackedKv, {
      allocate: (id: number, n: number) => (lie ? ((lie = false), false) : kv.allocate(id, n)),
    });
    const sched = new Scheduler(new CpuStepRunner(kv, toy), liar);
    const loop = sched.run();
    const a = sched.submit({ promptTokens: [1, 2, 3], adapter: null, sample: GREEDY, maxTokens: 3 });
    const fa = await a.finished;
    expect(fa.reason).toBe('error');
    expect(fa.error?.message).toMatch(/failed after canAllocate/);
    const b = sched.submit({ promptTokens: [1, 2, 3], adapter: null, sample: GREEDY, maxTokens: 3 });
    expect((await b.finished).reason).toBe('length');
    sched.stop();
    await loop;
    expect(kv.freeBlocks()).toBe(16);
  });

  it('metrics count steps, prefilled and decoded tokens', async () => {
    const { sched } = setup(32, 4, { maxBatchTokens: 4 });
    sched.submit({ promptTokens: [1, 2, 3, 4, 5, 6], adapter: null, sample: GREEDY, maxTokens: 3, stopTokenIds: [] });
    await drain(sched);
    const m = sched.metrics();
    // prefill 4 + 2 (samples token 1), decode 2 more steps
    expect(m.steps).toBe(4);
    expect(m.tokensPrefilled).toBe(6);
    expect(m.tokensDecoded).toBe(2);
    expect(m.preemptions).toBe(0);
    expect(m.kvFreeBlocks).toBe(32);
  });
});
