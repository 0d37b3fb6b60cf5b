// The scheduler's side of structured output, with the CPU paged runner (which samples with the
// float64 reference sampler, masks included): each constrained request samples inside its mask
// and gets exactly the tokens it gets alone; a constraint that fails ends only its own request;
// preemption-recompute, cancellation and every finish free each constraint exactly once.
import { describe, expect, it } from 'vitest';
import { Rng } from '../../shaders/lib/random.ts';
import { CpuStepRunner, cpuSample, toyModel, TrackedKv } from '../../tests/helpers/cpu-runner.ts';
import { Scheduler, type GenerateRequest } from './scheduler.ts';
import type { TokenConstraint } from './types.ts';
import type { SampleParams } from '../../shaders/sample/sample.ts';

const V = 61;
const toy = toyModel(V);

/** Allows tokens t with t % mod === rem; optionally fails (throws) when asked for mask number failAt. */
class ModConstraint implements TokenConstraint {
  accepted = 0;
  freed = 0;
  masks = 0;
  rollbacks = 0;
  constructor(readonly mod: number, readonly rem: number, readonly failAt = -1) {}
  mask(): Uint32Array {
    const m = new Uint32Array(Math.ceil(V / 32));
    for (let t = 0; t < V; t++) if (t % this.mod === this.rem) m[t >>> 5] = (m[t >>> 5]! | (1 << (t & 31))) >>> 0;
    return m;
  }
  async nextMask(): Promise<Uint32Array> {
    if (this.masks++ === this.failAt) throw new Error('no token can continue the constraint');
    return this.mask();
  }
  accept(t: number): boolean {
    if (t % this.mod !== this.rem) return false;
    this.accepted++;
    return true;
  }
  rollback(n: number): void {
    this.rollbacks++;
    this.accepted -= n;
  }
  free(): void {
    this.freed++;
  }
}

/** One request alone, full recompute, sampling inside the mask (the oracle). */
function solo(req: GenerateRequest, c: ModConstraint | null): number[] {
  const hist = [...req.promptTokens];
  const out: number[] = [];
  for (let step = 0; step < req.maxTokens; step++) {
    const t = cpuSample(Float32Array.from(toy(req.adapter, hist)), { ...req.sample, step } as SampleParams, hist, c?.mask());
    hist.push(t);
    if (req.stopTokenIds?.includes(t)) break;
    out.push(t);
  }
  return out;
}

async function run(numBlocks: number, reqs: Array<{ req: GenerateRequest; c: ModConstraint | null }>, cancelAfter?: { index: number; tokens: number }) {
  const kv = new TrackedKv(numBlocks, 4);
  const sched = new Scheduler(new CpuStepRunner(kv, toy, { maxBatchTokens: 64 }), kv, { maxBatchTokens: 64 });
  const hs = reqs.map(({ req, c }) => sched.submit({ ...req, ...(c ? { constraint: c } : {}) }));
  const outs = hs.map(async (h, i) => {
    const o: number[] = [];
    try {
      for await (const t of h) {
        o.push(t);
        if (cancelAfter?.index === i && o.length === cancelAfter.tokens) h.cancel();
      }
    } catch {
      /* an errored request: its stream throws once; `finished` has the reason */
    }
    return o;
  });
  let n = 0;
  while (sched.hasWork()) {
    await sched.step();
    if (++n > 10_000) throw new Error('scheduler did not finish');
  }
  return { outs: await Promise.all(outs), fins: await Promise.all(hs.map((h) => h.finished)), metrics: sched.metrics(), kv };
}

function requests(seed: number, n: number) {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const sampled = i % 3 !== 0;
    const req: GenerateRequest = {
      promptTokens: rng.ints(2 + rng.int(10), V),
      adapter: [null, 'a', 'b'][i % 3]!,
      sample: sampled ? { temperature: 0.7 + rng.uniform(), topK: i % 4 === 1 ? 5 : 0, topP: 1, repetitionPenalty: 1, seed: rng.u32() } : { temperature: 0 },
      maxTokens: 6 + rng.int(10),
      stopTokenIds: [],
    };
    return { req, c: i % 2 === 0 ? new ModConstraint(2 + (i % 3), i % 2) : null };
  });
}

describe('Scheduler with output constraints', () => {
  it('constrained rows sample inside their masks; every request gets its solo tokens; each constraint freed once', async () => {
    const rs = requests(1, 9);
    const { outs, fins } = await run(64, rs);
    rs.forEach(({ req, c }, i) => {
      expect(fins[i]!.reason).toBe('length');
      expect(outs[i]).toEqual(solo(req, c ? new ModConstraint(c.mod, c.rem) : null));
      if (c) {
        expect(outs[i]!.every((t) => t % c.mod === c.rem)).toBe(true);
        expect(c.accepted).toBe(outs[i]!.length);
        expect(c.freed).toBe(1);
      }
    });
    // the masks matter: unconstrained, some constrained request would differ
    expect(rs.some(({ req, c }, i) => c && solo(req, null).join() !== outs[i]!.join())).toBe(true);
  });

  it('preemption-recompute keeps the matcher in step (same tokens), and frees it once', async () => {
    const rs = requests(2, 8);
    const { outs, metrics } = await run(10, rs); // 40 slots for 8 requests: preemptions
    expect(metrics.preemptions).toBeGreaterThan(0);
    rs.forEach(({ req, c }, i) => {
      expect(outs[i]).toEqual(solo(req, c ? new ModConstraint(c.mod, c.rem) : null));
      if (c) {
        expect(c.freed).toBe(1);
        expect(c.rollbacks).toBe(0);
      }
    });
  });

  it('a failing constraint ends its own request (error); the others finish; cancelled ones are freed too', async () => {
    const rs = requests(3, 6);
    rs[0]!.c = new ModConstraint(2, 0, 3); // fails at its 4th mask
    const { outs, fins, kv } = await run(64, rs, { index: 2, tokens: 2 });
    expect(fins[0]!.reason).toBe('error');
    expect(fins[0]!.error?.message).toMatch(/no token can continue/);
    expect(outs[0]).toHaveLength(3);
    expect(fins[2]!.reason).toBe('cancelled');
    for (const [i, f] of fins.entries()) if (i !== 0 && i !== 2) expect(f.reason).toBe('length');
    for (const { c } of rs) if (c) expect(c.freed).toBe(1);
    expect(kv.sequences()).toEqual([]);
  });

  it('a constraint that accepted tokens the sequence does not hold is rolled back before its next mask', async () => {
    const rs = requests(4, 2);
    const c = rs[0]!.c!;
    const kv = new TrackedKv(64, 4);
    const sched = new Scheduler(new CpuStepRunner(kv, toy, { maxBatchTokens: 64 }), kv, { maxBatchTokens: 64 });
    const h = sched.submit({ ...rs[0]!.req, constraint: c });
    await sched.step(); // prefill + first token
    c.accept(c.rem); // an extra token the sequence never got
    c.accept(c.rem);
    await sched.step();
    expect(c.rollbacks).toBe(1);
    h.cancel();
    while (sched.hasWork()) await sched.step();
    expect(c.freed).toBe(1);
  });
});
