// The WebGPU runtime every kernel runs through: buffer pool, pipeline cache, batched
// dispatch with a uniform arena for params, readback, and optional GPU timestamps.
//
// Ordering model: dispatches are recorded into one open command encoder (one compute pass)
// and submitted together by flush(). Params for each dispatch live in their own 256-byte slot
// of a uniform arena that is uploaded right before the submit, so two dispatches of the same
// kernel in one submission never see each other's params. write() flushes recorded work first,
// so a CPU write never overtakes a dispatch recorded before it.
//
// Bind groups: pipelines get an explicit layout derived from the kernel's WGSL binding
// declarations (parseBindings), with the params uniform at a dynamic offset, so bind groups are
// cached by (pipeline, storage buffers, offsets, sizes) and reused across dispatches and steps;
// only the arena offset changes. A kernel whose bindings cannot be parsed falls back to an 'auto'
// layout and one bind group per dispatch. (The earlier all-'auto' path was compared against this
// one in bench/decode/results.md and removed.)

import type { ParamsLayout } from './params.ts';
import { acquireGpu, type AcquireOptions, type GpuInfo } from './device.ts';

/** A compiled-once compute kernel. Host op files create these at module level. */
export interface Kernel<F extends string = string> {
  /** Name used in pipeline-cache keys, labels and profiles, e.g. `matmul_f32_4x4`. */
  readonly name: string;
  /** Complete WGSL source (params struct included). */
  readonly code: string;
  readonly entryPoint?: string;
  /** Pipeline-overridable constants (WGSL `override`). */
  readonly constants?: Record<string, number>;
  /** When set, the params uniform is bound at @group(0) @binding(0) and buffers follow. */
  readonly params?: ParamsLayout<F>;
}

export type Binding = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

export interface DispatchArgs<F extends string = string> {
  params?: Record<F, number>;
  /** Storage buffers in binding order (after the params uniform when there is one). */
  buffers: Binding[];
  workgroups: readonly [number, number?, number?];
}

export interface RuntimeStats {
  /** Bytes of every live buffer created through the runtime (pooled, persistent, staging). */
  allocatedBytes: number;
  /** Of which, bytes sitting free in the pool. */
  pooledBytes: number;
  liveBuffers: number;
  pipelines: number;
  dispatches: number;
  submits: number;
  /** Bind groups created by the cached dispatch path, and dispatches served from its cache. */
  bindGroupsCreated: number;
  bindGroupHits: number;
}

const STORAGE = 0x80; // GPUBufferUsage.STORAGE
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const MAP_READ = 0x01;
const UNIFORM = 0x40;
const QUERY_RESOLVE = 0x200;
export const STORAGE_USAGE = STORAGE | COPY_SRC | COPY_DST;

const UNIFORM_SLOT = 256;
const BIND_GROUP_CACHE = 16384;

interface ExplicitPipeline {
  id: number;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  nBindings: number;
}

/** `@group(0) @binding(n) var<space[, access]>` declarations of a WGSL module → buffer binding types. */
export function parseBindings(code: string): Map<number, GPUBufferBindingType> {
  const out = new Map<number, GPUBufferBindingType>();
  const re = /@(?:group\(\s*(\d+)\s*\)\s*@binding\(\s*(\d+)\s*\)|binding\(\s*(\d+)\s*\)\s*@group\(\s*(\d+)\s*\))\s*var\s*<\s*(\w+)\s*(?:,\s*(\w+)\s*)?>/g;
  for (const m of code.matchAll(re)) {
    const group = Number(m[1] ?? m[4]);
    const binding = Number(m[2] ?? m[3]);
    if (group !== 0) continue;
    const space = m[5];
    const access = m[6] ?? 'read';
    const t: GPUBufferBindingType = space === 'uniform' ? 'uniform' : space === 'storage' ? (access === 'read_write' ? 'storage' : 'read-only-storage') : ('' as GPUBufferBindingType);
    if (!t) continue;
    const prev = out.get(binding);
    // one binding declared twice (e.g. by two entry points) with different access: the wider one
    out.set(binding, prev && prev !== t ? (prev === 'uniform' || t === 'uniform' ? prev : 'storage') : t);
  }
  return out;
}
const ARENA_SLOTS = 1024;

function poolBucket(size: number): number {
  // Power-of-two buckets up to 1 MiB, then 1 MiB steps: bounded waste, good reuse.
  const s = Math.max(256, size);
  if (s <= 1 << 20) return 1 << Math.ceil(Math.log2(s));
  return Math.ceil(s / (1 << 20)) * (1 << 20);
}

export class Runtime {
  readonly device: GPUDevice;
  readonly info: GpuInfo;

  private pipelines = new Map<Kernel, GPUComputePipeline>();
  private pipelinesByKey = new Map<string, GPUComputePipeline>();
  private pool = new Map<string, GPUBuffer[]>();
  private sizes = new WeakMap<GPUBuffer, number>();
  private allocatedBytes = 0;
  private pooledBytes = 0;
  private liveBuffers = 0;
  private dispatches = 0;
  private submits = 0;

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private arena: GPUBuffer;
  private arenaCpu = new ArrayBuffer(UNIFORM_SLOT * ARENA_SLOTS);
  private arenaView = new DataView(this.arenaCpu);
  private arenaUsed = 0;

  // GPU timestamps (profile mode): one pass per dispatch, begin/end written into a query set.
  private profiling = false;
  private querySet: GPUQuerySet | null = null;
  private queryNames: string[] = [];
  private readonly queryCapacity = 4096;
  private profileTotals = new Map<string, { ns: number; count: number }>();

  constructor(device: GPUDevice, info: GpuInfo) {
    this.device = device;
    this.info = info;
    this.arena = device.createBuffer({ label: 'params-arena', size: this.arenaCpu.byteLength, usage: UNIFORM | COPY_DST });
  }

  static async create(opts?: AcquireOptions): Promise<Runtime> {
    const { device, info } = await acquireGpu(opts);
    return new Runtime(device, info);
  }

  // ---------------------------------------------------------------- buffers

  /** A persistent buffer (weights, KV cache). Counted in stats until destroy(). */
  createBuffer(byteSize: number, label = '', usage = STORAGE_USAGE): GPUBuffer {
    const size = Math.max(4, Math.ceil(byteSize / 4) * 4);
    const maxSize = this.device.limits.maxBufferSize;
    if (size > maxSize) throw new Error(`buffer '${label}' of ${size} bytes exceeds maxBufferSize ${maxSize}; split it`);
    const buf = this.device.createBuffer({ label, size, usage });
    this.sizes.set(buf, size);
    this.allocatedBytes += size;
    this.liveBuffers++;
    return buf;
  }

  /** Uploads typed data into a new persistent storage buffer. */
  upload(data: ArrayBufferView, label = '', usage = STORAGE_USAGE): GPUBuffer {
    const buf = this.createBuffer(data.byteLength, label, usage);
    this.write(buf, data);
    return buf;
  }

  /** A scratch buffer from the pool (at least byteSize bytes). Give it back with release(). */
  acquire(byteSize: number, usage = STORAGE_USAGE, label = 'pooled'): GPUBuffer {
    const size = poolBucket(byteSize);
    const key = `${usage}:${size}`;
    const list = this.pool.get(key);
    if (list && list.length) {
      this.pooledBytes -= size;
      return list.pop()!;
    }
    return this.createBuffer(size, label, usage);
  }

  /** Returns a pooled buffer. Work already recorded that uses it stays valid (queue order). */
  release(buf: GPUBuffer): void {
    const size = this.sizes.get(buf);
    if (size === undefined) throw new Error('release(): buffer was not created by this runtime');
    const key = `${buf.usage}:${size}`;
    let list = this.pool.get(key);
    if (!list) this.pool.set(key, (list = []));
    list.push(buf);
    this.pooledBytes += size;
  }

  destroy(buf: GPUBuffer): void {
    const size = this.sizes.get(buf);
    if (size === undefined) return;
    this.sizes.delete(buf);
    this.allocatedBytes -= size;
    this.liveBuffers--;
    const keys = this.bindGroupKeysOf.get(buf);
    if (keys) {
      for (const key of keys) this.bindGroups.delete(key);
      this.bindGroupKeysOf.delete(buf);
    }
    buf.destroy();
  }

  /** Frees every pooled buffer (e.g. after a large prefill). */
  trimPool(): void {
    for (const list of this.pool.values()) for (const b of list) this.destroy(b);
    this.pool.clear();
    this.pooledBytes = 0;
  }

  /** CPU → GPU write, ordered after everything recorded so far. */
  write(buf: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
    if (this.encoder) this.flush();
    const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength % 4 === 0) {
      this.device.queue.writeBuffer(buf, byteOffset, bytes);
    } else {
      const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      padded.set(bytes);
      this.device.queue.writeBuffer(buf, byteOffset, padded);
    }
  }

  /** GPU → CPU read of `byteSize` bytes at `byteOffset` (flushes recorded work). */
  async read(buf: GPUBuffer, byteSize?: number, byteOffset = 0): Promise<ArrayBuffer> {
    const size = Math.ceil((byteSize ?? (this.sizes.get(buf) ?? buf.size) - byteOffset) / 4) * 4;
    const staging = this.acquire(size, MAP_READ | COPY_DST, 'readback');
    this.endPass();
    this.enc().copyBufferToBuffer(buf, byteOffset, staging, 0, size);
    this.flush();
    await staging.mapAsync(MAP_READ, 0, size);
    const out = staging.getMappedRange(0, size).slice(0);
    staging.unmap();
    this.release(staging);
    return byteSize !== undefined && byteSize !== size ? out.slice(0, byteSize) : out;
  }

  async readF32(buf: GPUBuffer, count?: number, elemOffset = 0): Promise<Float32Array> {
    return new Float32Array(await this.read(buf, count !== undefined ? count * 4 : undefined, elemOffset * 4));
  }

  async readU32(buf: GPUBuffer, count?: number, elemOffset = 0): Promise<Uint32Array> {
    return new Uint32Array(await this.read(buf, count !== undefined ? count * 4 : undefined, elemOffset * 4));
  }

  /** GPU-side copy, recorded in order with dispatches. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.endPass();
    this.enc().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }

  // ---------------------------------------------------------------- pipelines

  /**
   * Pipeline cache. Key: kernel object identity first; kernels with equal
   * `name | entryPoint | constants | code` share one pipeline.
   */
  pipeline(k: Kernel): GPUComputePipeline {
    let p = this.pipelines.get(k);
    if (p) return p;
    const consts = k.constants ? JSON.stringify(Object.entries(k.constants).sort()) : '';
    const key = `${k.name}|${k.entryPoint ?? 'main'}|${consts}|${k.code}`;
    p = this.pipelinesByKey.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ label: k.name, code: k.code });
      p = this.device.createComputePipeline({
        label: k.name,
        layout: 'auto',
        compute: { module, entryPoint: k.entryPoint ?? 'main', constants: k.constants },
      });
      this.pipelinesByKey.set(key, p);
    }
    this.pipelines.set(k, p);
    return p;
  }

  // ---------------------------------------------------------------- dispatch

  dispatch<F extends string>(k: Kernel<F>, args: DispatchArgs<F>): void {
    const [x, y = 1, z = 1] = args.workgroups;
    const ex = this.explicitPipeline(k, (k.params ? 1 : 0) + args.buffers.length);
    if (ex) {
      this.dispatchCached(k, ex, args, x, y, z);
      return;
    }
    const pipeline = this.pipeline(k);
    const entries: GPUBindGroupEntry[] = [];
    let binding = 0;
    if (k.params) {
      if (!args.params) throw new Error(`${k.name}: params required`);
      if (this.arenaUsed === ARENA_SLOTS) this.flush();
      const offset = this.arenaUsed++ * UNIFORM_SLOT;
      k.params.write(this.arenaView, offset, args.params);
      entries.push({ binding: binding++, resource: { buffer: this.arena, offset, size: k.params.byteSize } });
    }
    for (const b of args.buffers) {
      entries.push({ binding: binding++, resource: 'buffer' in b ? b : { buffer: b } });
    }
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    if (x === 0 || y === 0 || z === 0) return;
    this.checkGrid(k, x, y, z);
    const pass = this.beginPass(k.name);
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    this.dispatches++;
    if (this.profiling) this.endPass();
  }

  private checkGrid(k: Kernel, x: number, y: number, z: number): void {
    const maxDim = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxDim || y > maxDim || z > maxDim) throw new Error(`${k.name}: ${x}x${y}x${z} workgroups exceed ${maxDim} per dimension (use grid())`);
  }

  // Bind-group cache. Pipelines get an explicit layout (binding types parsed from the kernel's
  // WGSL) whose params uniform has a dynamic offset, so one bind group — keyed by the pipeline
  // and every buffer binding (buffer, offset, size) — serves every dispatch with the same
  // buffers; only the arena offset changes per dispatch.
  private explicitByKernel = new Map<Kernel, ExplicitPipeline | null>();
  private explicitByKey = new Map<string, ExplicitPipeline>();
  private bufIds = new WeakMap<GPUBuffer, number>();
  private nextBufId = 1;
  private bindGroups = new Map<string, GPUBindGroup>();
  private bindGroupKeysOf = new WeakMap<GPUBuffer, string[]>();
  private dynOffset: number[] = [0];
  /** Bind groups created / served from the cache (stats). */
  private bgCreated = 0;
  private bgHits = 0;

  private explicitPipeline(k: Kernel, nBindings: number): ExplicitPipeline | null {
    let ex = this.explicitByKernel.get(k);
    if (ex !== undefined && (ex === null || ex.nBindings === nBindings)) return ex;
    const types = parseBindings(k.code);
    const entries: GPUBindGroupLayoutEntry[] = [];
    for (let b = 0; b < nBindings; b++) {
      const t = types.get(b);
      if (!t || (b === 0 && k.params ? t !== 'uniform' : t === 'uniform')) {
        this.explicitByKernel.set(k, null);
        return null;
      }
      entries.push({ binding: b, visibility: 4 /* GPUShaderStage.COMPUTE */, buffer: { type: t, hasDynamicOffset: b === 0 && !!k.params } });
    }
    const consts = k.constants ? JSON.stringify(Object.entries(k.constants).sort()) : '';
    const key = `${nBindings}|${k.name}|${k.entryPoint ?? 'main'}|${consts}|${k.code}`;
    ex = this.explicitByKey.get(key);
    if (!ex) {
      const layout = this.device.createBindGroupLayout({ label: k.name, entries });
      const module = this.device.createShaderModule({ label: k.name, code: k.code });
      const pipeline = this.device.createComputePipeline({
        label: k.name,
        layout: this.device.createPipelineLayout({ label: k.name, bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: k.entryPoint ?? 'main', constants: k.constants },
      });
      ex = { id: this.explicitByKey.size + 1, pipeline, layout, nBindings };
      this.explicitByKey.set(key, ex);
    }
    this.explicitByKernel.set(k, ex);
    return ex;
  }

  private bufId(b: GPUBuffer): number {
    let id = this.bufIds.get(b);
    if (id === undefined) this.bufIds.set(b, (id = this.nextBufId++));
    return id;
  }

  private dispatchCached<F extends string>(k: Kernel<F>, ex: ExplicitPipeline, args: DispatchArgs<F>, x: number, y: number, z: number): void {
    let offset = -1;
    if (k.params) {
      if (!args.params) throw new Error(`${k.name}: params required`);
      if (this.arenaUsed === ARENA_SLOTS) this.flush();
      offset = this.arenaUsed++ * UNIFORM_SLOT;
      k.params.write(this.arenaView, offset, args.params);
    }
    if (x === 0 || y === 0 || z === 0) return;
    this.checkGrid(k, x, y, z);
    let key = String(ex.id);
    for (const b of args.buffers) {
      if ('buffer' in b) key += `|${this.bufId(b.buffer)}:${b.offset ?? 0}:${b.size ?? -1}`;
      else key += `|${this.bufId(b)}`;
    }
    let bg = this.bindGroups.get(key);
    if (!bg) {
      const entries: GPUBindGroupEntry[] = [];
      let binding = 0;
      if (k.params) entries.push({ binding: binding++, resource: { buffer: this.arena, offset: 0, size: k.params.byteSize } });
      for (const b of args.buffers) entries.push({ binding: binding++, resource: 'buffer' in b ? b : { buffer: b } });
      bg = this.device.createBindGroup({ label: k.name, layout: ex.layout, entries });
      if (this.bindGroups.size >= BIND_GROUP_CACHE) {
        this.bindGroups.clear();
        this.bindGroupKeysOf = new WeakMap();
      }
      this.bindGroups.set(key, bg);
      for (const b of args.buffers) {
        const buf = 'buffer' in b ? b.buffer : b;
        let keys = this.bindGroupKeysOf.get(buf);
        if (!keys) this.bindGroupKeysOf.set(buf, (keys = []));
        keys.push(key);
      }
      this.bgCreated++;
    } else this.bgHits++;
    const pass = this.beginPass(k.name);
    pass.setPipeline(ex.pipeline);
    if (k.params) {
      this.dynOffset[0] = offset;
      pass.setBindGroup(0, bg, this.dynOffset);
    } else pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(x, y, z);
    this.dispatches++;
    if (this.profiling) this.endPass();
  }

  /** Splits n workgroups into a 2-D grid within the per-dimension limit. Kernels use
   *  `wid.x + wid.y * nwg.x` as their linear workgroup index and bounds-check it. */
  grid(n: number): [number, number, number] {
    const maxDim = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (n <= maxDim) return [n, 1, 1];
    const y = Math.ceil(n / maxDim);
    return [Math.ceil(n / y), y, 1];
  }

  /** Submits everything recorded so far (params arena first). */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    let resolve: { buf: GPUBuffer; count: number; names: string[] } | null = null;
    if (this.querySet && this.queryNames.length) {
      const count = this.queryNames.length * 2;
      const buf = this.acquire(count * 8, QUERY_RESOLVE | COPY_SRC, 'timestamps');
      this.encoder.resolveQuerySet(this.querySet, 0, count, buf, 0);
      resolve = { buf, count, names: this.queryNames };
      this.queryNames = [];
    }
    if (this.arenaUsed) this.device.queue.writeBuffer(this.arena, 0, this.arenaCpu, 0, this.arenaUsed * UNIFORM_SLOT);
    this.device.queue.submit([this.encoder.finish()]);
    this.submits++;
    this.encoder = null;
    this.arenaUsed = 0;
    if (resolve) this.pendingTimestamps.push(this.collectTimestamps(resolve));
  }

  /** Waits until the GPU has finished all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await Promise.all(this.pendingTimestamps.splice(0));
  }

  // ---------------------------------------------------------------- profiling

  private pendingTimestamps: Promise<void>[] = [];

  /** Turns per-dispatch GPU timestamps on (needs 'timestamp-query'); returns false if unsupported. */
  setProfiling(on: boolean): boolean {
    if (on && !this.info.features.timestampQuery) return false;
    this.flush();
    this.profiling = on;
    if (on && !this.querySet) this.querySet = this.device.createQuerySet({ type: 'timestamp', count: this.queryCapacity });
    return true;
  }

  /** Per-kernel GPU time since the last reset, sorted by total time. */
  async profile(reset = true): Promise<Array<{ name: string; ms: number; count: number }>> {
    await this.sync();
    const rows = [...this.profileTotals.entries()]
      .map(([name, v]) => ({ name, ms: v.ns / 1e6, count: v.count }))
      .sort((a, b) => b.ms - a.ms);
    if (reset) this.profileTotals.clear();
    return rows;
  }

  private async collectTimestamps(r: { buf: GPUBuffer; count: number; names: string[] }): Promise<void> {
    const data = new BigUint64Array(await this.read(r.buf, r.count * 8));
    this.release(r.buf);
    r.names.forEach((name, i) => {
      const ns = Number(data[2 * i + 1] - data[2 * i]);
      const t = this.profileTotals.get(name) ?? { ns: 0, count: 0 };
      t.ns += ns > 0 ? ns : 0;
      t.count++;
      this.profileTotals.set(name, t);
    });
  }

  // ---------------------------------------------------------------- internals

  stats(): RuntimeStats {
    return {
      allocatedBytes: this.allocatedBytes,
      pooledBytes: this.pooledBytes,
      liveBuffers: this.liveBuffers,
      pipelines: this.pipelinesByKey.size + this.explicitByKey.size,
      bindGroupsCreated: this.bgCreated,
      bindGroupHits: this.bgHits,
      dispatches: this.dispatches,
      submits: this.submits,
    };
  }

  private enc(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  private beginPass(name: string): GPUComputePassEncoder {
    if (this.pass) return this.pass;
    if (this.profiling && this.querySet) {
      if (this.queryNames.length * 2 + 2 > this.queryCapacity) this.flush();
      const i = this.queryNames.length;
      this.queryNames.push(name);
      this.pass = this.enc().beginComputePass({
        timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
      });
    } else {
      this.pass = this.enc().beginComputePass();
    }
    return this.pass;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  destroyAll(): void {
    this.flush();
    this.trimPool();
    this.arena.destroy();
    this.querySet?.destroy();
  }
}
