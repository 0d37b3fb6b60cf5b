// The engine behind a server: which engine serves now, which requests are in flight on it, and
// what happens when things go wrong around them.
//
//   - every generation request is a Flight: an AbortController tied to the client (a disconnect
//     aborts it → the scheduler cancels the sequence and frees its KV pages at the next step
//     boundary) and to the host (device loss, shutdown);
//   - device loss (GPUDevice.lost resolving while the engine serves): in-flight requests fail with
//     DeviceLostError (HTTP 503), new ones get 503 + Retry-After while a fresh engine is built
//     (the `create` factory acquires a new device), adapters loaded at run time are registered
//     again, and serving resumes;
//   - unloading an adapter that requests use: new requests for it get 404 at once, the unload
//     waits for the requests already admitted, then frees it from every tier;
//   - close(): stop admitting, let in-flight requests finish within a grace period, cancel the rest.
//
// No Node APIs here: the same host runs wherever an Engine runs (the Node binding is node.ts).
import { DeviceLostError, LorafleetError, ModelNotFoundError } from '../api/errors.ts';
import type { LocalEngine as Engine } from '../api/engine.ts'; // the in-process engine, with its parts

export interface EngineHostOptions {
  /** Builds an engine: at start and again after a device loss (it must acquire its own device). */
  create: () => Promise<Engine>;
  /** Structured log lines. */
  log?: (entry: Record<string, unknown>) => void;
  /** Seconds clients are told to wait (Retry-After) while the engine is recreated. */
  retryAfterSeconds?: number;
}

/** The host is not serving (recreating its engine, or shutting down): HTTP 503. */
export class ServiceUnavailableError extends LorafleetError {
  constructor(message: string, readonly retryAfterSeconds: number) {
    super(message, 'device_lost');
    this.name = 'ServiceUnavailableError';
  }
}

export interface Flight {
  readonly engine: Engine;
  /** Aborted by the client's disconnect, a device loss or shutdown; `reason` says which. */
  readonly signal: AbortSignal;
  readonly adapter: string | null;
  /** Rejects with the abort reason once the signal aborts (for racing waits that may not return). */
  readonly aborted: Promise<never>;
  abort(reason: unknown): void;
  end(): void;
}

export type HostState = 'starting' | 'ready' | 'recovering' | 'closing' | 'closed';

export class EngineHost {
  state: HostState = 'starting';
  private current: Engine | null = null;
  private flights = new Set<Flight>();
  private unloading = new Map<string, Promise<void>>();
  /** Adapters loaded through the API (name → path): registered again on a recreated engine. */
  private loaded = new Map<string, string>();
  private recoveryCount = 0;
  private drainWaiters = new Set<() => void>();
  readonly retryAfter: number;

  private constructor(private opts: EngineHostOptions) {
    this.retryAfter = opts.retryAfterSeconds ?? 5;
  }

  static async start(opts: EngineHostOptions): Promise<EngineHost> {
    const h = new EngineHost(opts);
    h.adopt(await opts.create());
    return h;
  }

  get engine(): Engine | null {
    return this.current;
  }
  get recoveries(): number {
    return this.recoveryCount;
  }
  get inflight(): number {
    return this.flights.size;
  }
  isUnloading(name: string): boolean {
    return this.unloading.has(name);
  }

  private log(e: Record<string, unknown>): void {
    this.opts.log?.({ ts: new Date().toISOString(), ...e });
  }

  private adopt(e: Engine): void {
    this.current = e;
    this.state = 'ready';
    e.runtime.device.lost.then((info) => this.onDeviceLost(e, info), () => {});
  }

  /** The adapter a request's `model` uses (null: the base model); throws for unknown or unloading names. */
  adapterFor(engine: Engine, model: string | null | undefined): string | null {
    if (model == null || model === '' || model === engine.modelName || model === 'base') return null;
    if (this.unloading.has(model) || !engine.lora?.pool.has(model)) throw new ModelNotFoundError(model, engine.models().filter((m) => !this.unloading.has(m)));
    return model;
  }

  /** Admits a request (throws ServiceUnavailableError while not serving, ModelNotFoundError for bad models). */
  begin(model: string | null | undefined, clientSignal?: AbortSignal): Flight {
    const engine = this.current;
    if (this.state !== 'ready' || !engine) {
      throw new ServiceUnavailableError(this.state === 'recovering' ? 'the GPU device was lost; the engine is being recreated' : 'the server is shutting down', this.retryAfter);
    }
    const adapter = this.adapterFor(engine, model);
    const ac = new AbortController();
    let rejectAborted!: (e: unknown) => void;
    const aborted = new Promise<never>((_, rej) => (rejectAborted = rej));
    aborted.catch(() => {});
    // (node-server's reason is a string; a cancellation is always an AbortError here: HTTP 499, never a 5xx)
    const onClient = () => ac.abort(new DOMException(`the client disconnected${typeof clientSignal?.reason === 'string' ? `: ${clientSignal.reason}` : ''}`, 'AbortError'));
    ac.signal.addEventListener('abort', () => rejectAborted(ac.signal.reason), { once: true });
    if (clientSignal?.aborted) onClient();
    else clientSignal?.addEventListener('abort', onClient, { once: true });
    const f: Flight = {
      engine,
      signal: ac.signal,
      adapter,
      aborted,
      abort: (reason) => ac.abort(reason),
      end: () => {
        clientSignal?.removeEventListener('abort', onClient);
        if (this.flights.delete(f)) for (const w of [...this.drainWaiters]) w();
      },
    };
    this.flights.add(f);
    return f;
  }

  private async until(pred: () => boolean, timeoutMs = Infinity): Promise<boolean> {
    const t0 = Date.now();
    while (!pred()) {
      const left = timeoutMs - (Date.now() - t0);
      if (left <= 0) return false;
      await new Promise<void>((res) => {
        const done = () => {
          this.drainWaiters.delete(done);
          clearTimeout(timer);
          res();
        };
        const timer = setTimeout(done, Math.min(left, 1000));
        this.drainWaiters.add(done);
      });
    }
    return true;
  }

  // ---------------------------------------------------------------- adapters at run time

  /** Registers a PEFT adapter (path already resolved and checked by the caller). */
  async loadAdapter(name: string, path: string): Promise<void> {
    const e = this.current;
    if (this.state !== 'ready' || !e) throw new ServiceUnavailableError('the engine is not serving', this.retryAfter);
    if (!e.lora) throw new LorafleetError('this server was started without LoRA support', 'invalid_request');
    if (name === e.modelName || name === 'base' || name === 'auto') throw new LorafleetError(`'${name}' is reserved`, 'invalid_request', { param: 'lora_name' });
    if (e.lora.pool.has(name) || this.unloading.has(name)) throw new LorafleetError(`the lora adapter '${name}' has already been loaded`, 'invalid_request', { param: 'lora_name' });
    await e.lora.pool.register(name, path);
    this.loaded.set(name, path);
    this.log({ level: 'info', msg: 'adapter loaded', adapter: name, path });
  }

  /** Unloads an adapter once the requests using it have finished; new requests for it get 404 at once. */
  async unloadAdapter(name: string): Promise<void> {
    const e = this.current;
    if (this.state !== 'ready' || !e) throw new ServiceUnavailableError('the engine is not serving', this.retryAfter);
    const pending = this.unloading.get(name);
    if (pending) return pending;
    if (!e.lora?.pool.has(name)) throw new ModelNotFoundError(name, e.models());
    const p = (async () => {
      try {
        await this.until(() => ![...this.flights].some((f) => f.adapter === name && f.engine === e));
        // the pool's pins drop when the scheduler reaps; wait for that too
        await this.until(() => e.lora!.pool.pinCount(name) === 0, 10_000);
        if (this.current === e && e.lora!.pool.has(name)) await e.lora!.pool.unload(name);
        this.loaded.delete(name);
        this.log({ level: 'info', msg: 'adapter unloaded', adapter: name });
      } finally {
        this.unloading.delete(name);
      }
    })();
    this.unloading.set(name, p);
    return p;
  }

  // ---------------------------------------------------------------- device loss

  private async onDeviceLost(e: Engine, info: GPUDeviceLostInfo): Promise<void> {
    if (e !== this.current || this.state === 'closing' || this.state === 'closed') return;
    this.state = 'recovering';
    this.current = null;
    const err = new DeviceLostError(`the GPU device was lost (${info.reason}: ${info.message || 'no message'}); the engine is being recreated`);
    this.log({ level: 'error', msg: 'device lost', reason: info.reason, message: info.message, inflight: this.flights.size });
    for (const f of this.flights) if (f.engine === e) f.abort(err);
    // the old engine's loop may wait on a readback that never comes: do not let destroy() hold recovery
    await Promise.race([e.destroy().catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
    for (let attempt = 1; (this.state as HostState) === 'recovering'; attempt++) {
      try {
        const fresh = await this.opts.create();
        for (const [name, path] of this.loaded) {
          try {
            await fresh.lora?.pool.register(name, path);
          } catch (x) {
            this.loaded.delete(name);
            this.log({ level: 'error', msg: 'adapter not restored after device loss', adapter: name, error: (x as Error).message });
          }
        }
        if ((this.state as HostState) !== 'recovering') {
          await fresh.destroy();
          return;
        }
        this.recoveryCount++;
        this.adopt(fresh);
        this.log({ level: 'info', msg: 'engine recreated', attempt });
        return;
      } catch (x) {
        this.log({ level: 'error', msg: 'engine recreation failed', attempt, error: (x as Error).message });
        await new Promise((r) => setTimeout(r, Math.min(30_000, 500 * 2 ** attempt)));
      }
    }
  }

  // ---------------------------------------------------------------- shutdown

  /** Stops admitting, waits up to graceMs for in-flight requests, cancels the rest, destroys the engine. */
  async close(graceMs = 10_000): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closing';
    const drained = await this.until(() => this.flights.size === 0, graceMs);
    if (!drained) {
      const err = new ServiceUnavailableError('the server is shutting down', this.retryAfter);
      for (const f of this.flights) f.abort(err);
      await this.until(() => this.flights.size === 0, 2000);
    }
    const e = this.current;
    this.current = null;
    this.state = 'closed';
    await e?.destroy();
  }
}
