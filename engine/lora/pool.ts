// The adapter pool: three tiers and the GPU layout the SGMV / BGMV kernels read.
//
//   GPU tier   a fixed byte budget of "pages". One page = one rank row of one adapter, in every
//              (layer, group) bank at once (S-LoRA-style unified paging, pages = rank rows). A group
//              is the modules that share an input (q|k|v, o, gate|up, down; hook.ts LORA_GROUPS):
//                bank(l, g).A  [P, nMod_g, ceil4(in_g)]   f32   page p, module m: row k of its lora_A
//                bank(l, g).Bt [P, Σ_m ceil4(out_m)]      f32   page p: column k of every module's
//                                                                lora_B side by side (module order)
//              so one binding serves the whole group (one shrink + one expand per group and step).
//              P = floor(gpuBudgetBytes / bytesPerPage), bytesPerPage = Σ_l Σ_g 4·(nMod_g·ceil4(in_g) + Σ_m ceil4(out_m)).
//              An adapter of rank r takes r pages (any r free pages: no fragmentation, ranks mix
//              freely) and one slot of the small tables
//                pages    [S, rMax] u32        page of rank row k of the adapter in slot s
//                slotInfo [S, 2 + L] u32       rank, f32 bits of scaling, per-layer module bit mask
//              (an adapter that does not target (l, m) leaves those pages unused: its mask bit is clear).
//              LRU eviction; an adapter with pins > 0 (a running request or step) is never evicted;
//              when every resident adapter is pinned and the newcomer does not fit, acquire() throws
//              LoraPoolFullError (the scheduler keeps the request waiting and retries after requests finish).
//   CPU tier   parsed adapters (Float32Arrays), LRU under cpuBudgetBytes.
//   persistent PEFT files by name (AdapterStore: a directory in Node, IndexedDB in the browser).
//
// Counters (stats()): gpu hits / misses / loads / evictions, CPU-tier hits, persistent-tier loads,
// and bytes in each tier.
import type { Runtime } from '../../shaders/gpu/runtime.ts';
import type { ModelConfig } from '../model/config.ts';
import type { ModelSource } from '../model/source.ts';
import { bankLayout, type LoraBank, type LoraTables } from '../../shaders/lora/lora.ts';
import { LORA_GROUP_NAMES, LORA_GROUPS, LORA_MODULES, groupOf, type LoraGroup, type LoraModule } from './hook.ts';
import { adapterSpec, encodePeftAdapter, loadPeftAdapter, loraKey, moduleDims, type LoraAdapter } from './peft.ts';
import { MemorySource } from '../model/source.ts';
import type { AdapterStore } from './store.ts';
import { LoraPoolError, LoraPoolFullError } from '../api/errors.ts';
export { LoraPoolError, LoraPoolFullError };


export interface AdapterPoolOptions {
  config: ModelConfig;
  /** GPU bytes for adapter pages (the tables come on top and are small). */
  gpuBudgetBytes: number;
  /** Largest rank accepted (default 64). */
  maxRank?: number;
  /** Most adapters resident at once (default min(pages, 256)). */
  maxSlots?: number;
  /** CPU-tier budget in bytes (default 1 GiB). */
  cpuBudgetBytes?: number;
  /** Persistent tier (default none: adapters given as paths / sources are re-read from there). */
  store?: AdapterStore | null;
}

export interface PoolStats {
  hits: number;
  misses: number;
  /** Uploads to the GPU tier. */
  loads: number;
  evictions: number;
  cpuHits: number;
  cpuEvictions: number;
  /** Loads from the persistent tier (or the adapter's original source). */
  persistentLoads: number;
  gpuBytesUsed: number;
  gpuBytesCapacity: number;
  cpuBytes: number;
  persistentBytes: number;
  resident: number;
  pagesFree: number;
  pages: number;
}

interface Resident {
  name: string;
  slot: number;
  pages: number[];
  rank: number;
  scaling: number;
  targetModules: LoraModule[];
  /** masks[l]: bit m set when the adapter has (l, m). */
  masks: number[];
  lastUse: number;
}

interface Registered {
  name: string;
  /** Where to re-read it from when it is in neither the GPU nor the CPU tier. */
  source: { kind: 'store' } | { kind: 'source'; src: ModelSource | string } | { kind: 'memory'; adapter: LoraAdapter };
  r: number;
  persistentBytes: number;
}

/** Input width and per-module output widths of a group (modules of a group share the input). */
export function groupDims(c: ModelConfig, g: LoraGroup): { inDim: number; outDims: number[] } {
  const dims = LORA_GROUPS[g].map((m) => moduleDims(c, m));
  return { inDim: dims[0]!.inDim, outDims: dims.map((d) => d.outDim) };
}

const MODULE_BIT = Object.fromEntries(LORA_MODULES.map((m, i) => [m, 1 << i])) as Record<LoraModule, number>;
export const moduleBit = (m: LoraModule): number => MODULE_BIT[m];

export class AdapterPool {
  readonly config: ModelConfig;
  readonly rMax: number;
  readonly slots: number;
  readonly pageCount: number;
  readonly bytesPerPage: number;
  readonly tables: LoraTables;
  private banks: LoraBank[] = [];
  private freePages: number[] = [];
  private freeSlots: number[] = [];
  private resident = new Map<string, Resident>();
  private pins = new Map<string, number>();
  private registry = new Map<string, Registered>();
  private cpu = new Map<string, LoraAdapter>(); // insertion order = LRU order
  private cpuBytes = 0;
  private readonly cpuBudget: number;
  private clock = 0;
  private lock: Promise<unknown> = Promise.resolve();
  private counters = { hits: 0, misses: 0, loads: 0, evictions: 0, cpuHits: 0, cpuEvictions: 0, persistentLoads: 0 };
  readonly store: AdapterStore | null;

  constructor(
    readonly rt: Runtime,
    o: AdapterPoolOptions,
  ) {
    const c = (this.config = o.config);
    this.rMax = o.maxRank ?? 64;
    this.store = o.store ?? null;
    this.cpuBudget = o.cpuBudgetBytes ?? 1 << 30;
    this.bytesPerPage = AdapterPool.bytesPerPage(c);
    this.pageCount = Math.floor(o.gpuBudgetBytes / this.bytesPerPage);
    if (this.pageCount < 1) throw new LoraPoolError(`GPU budget ${o.gpuBudgetBytes} B holds no page (one rank row of all layers and modules = ${this.bytesPerPage} B)`);
    this.slots = Math.max(1, Math.min(o.maxSlots ?? 256, this.pageCount));
    const maxBind = rt.device.limits.maxStorageBufferBindingSize;
    for (const g of LORA_GROUP_NAMES) {
      const { inDim, outDims } = groupDims(c, g);
      const L = bankLayout(inDim, outDims);
      const big = this.pageCount * Math.max(L.aPage, L.btPage) * 4;
      if (big > maxBind) {
        throw new LoraPoolError(`GPU budget ${o.gpuBudgetBytes} B gives ${this.pageCount} pages: the ${g} bank would be ${big} B, over maxStorageBufferBindingSize ${maxBind}; lower gpuBudgetBytes`);
      }
    }
    for (let l = 0; l < c.numLayers; l++) {
      for (const g of LORA_GROUP_NAMES) {
        const { inDim, outDims } = groupDims(c, g);
        const L = bankLayout(inDim, outDims);
        this.banks.push({
          A: rt.createBuffer(this.pageCount * L.aPage * 4, `lora-A-${l}-${g}`),
          Bt: rt.createBuffer(this.pageCount * L.btPage * 4, `lora-Bt-${l}-${g}`),
          inDim,
          outDims,
          mod0: LORA_MODULES.indexOf(LORA_GROUPS[g][0]!),
        });
      }
    }
    const slotStride = 2 + c.numLayers;
    this.tables = {
      pages: rt.createBuffer(this.slots * this.rMax * 4, 'lora-pages'),
      slotInfo: rt.upload(new Uint32Array(this.slots * slotStride), 'lora-slots'),
      rMax: this.rMax,
      slotStride,
    };
    this.freePages = Array.from({ length: this.pageCount }, (_, i) => i);
    this.freeSlots = Array.from({ length: this.slots }, (_, i) => this.slots - 1 - i);
  }

  /** GPU bytes of one page (one rank row in every (layer, module) bank). */
  static bytesPerPage(c: ModelConfig): number {
    let perPage = 0;
    for (const g of LORA_GROUP_NAMES) {
      const { inDim, outDims } = groupDims(c, g);
      const L = bankLayout(inDim, outDims);
      perPage += 4 * (L.aPage + L.btPage);
    }
    return perPage * c.numLayers;
  }

  /** The bank of a (layer, group): every module of the group in one A and one Bt buffer. */
  bank(layer: number, group: LoraGroup): LoraBank {
    const b = this.banks[layer * LORA_GROUP_NAMES.length + LORA_GROUP_NAMES.indexOf(group)];
    if (!b) throw new LoraPoolError(`no LoRA bank for layer ${layer}, group ${group}`, 'internal');
    return b;
  }
  /** The bank holding a module and the module's index in it. */
  bankOf(layer: number, module: LoraModule): { bank: LoraBank; index: number } {
    const { group, index } = groupOf(module);
    return { bank: this.bank(layer, group), index };
  }

  // ------------------------------------------------------------ registry

  has(name: string): boolean {
    return this.registry.has(name);
  }
  names(): string[] {
    return [...this.registry.keys()].sort();
  }
  isResident(name: string): boolean {
    return this.resident.has(name);
  }
  inCpuTier(name: string): boolean {
    return this.cpu.has(name);
  }

  /**
   * Registers an adapter under `name`: a parsed adapter, a PEFT directory path or a ModelSource.
   * It is validated against the base model now (errors surface here, not mid-request), kept in the
   * CPU tier and, when the pool has a store, written to the persistent tier.
   */
  async register(name: string, input: LoraAdapter | ModelSource | string): Promise<LoraAdapter> {
    return this.serial(async () => {
      if (this.registry.has(name)) throw new LoraPoolError(`adapter "${name}" is already loaded (unload it first)`);
      const isAdapter = typeof input === 'object' && 'weights' in input;
      const a = isAdapter ? { ...(input as LoraAdapter), name } : await loadPeftAdapter(input as ModelSource | string, this.config, name);
      this.checkAdapter(a);
      let source: Registered['source'];
      let persistentBytes = 0;
      if (this.store) {
        const files = encodePeftAdapter(adapterSpec(a));
        await this.store.put(name, files);
        persistentBytes = await this.store.bytes(name);
        source = { kind: 'store' };
      } else if (isAdapter) {
        source = { kind: 'memory', adapter: a };
      } else {
        source = { kind: 'source', src: input as ModelSource | string };
      }
      this.registry.set(name, { name, source, r: a.r, persistentBytes });
      this.cpuPut(a);
      return a;
    });
  }

  /** Registers every adapter found in the persistent tier (e.g. after a restart). Returns their names. */
  async restoreFromStore(): Promise<string[]> {
    return this.serial(() => this.restore());
  }

  private async restore(): Promise<string[]> {
    if (!this.store) return [];
    const names: string[] = [];
    for (const name of await this.store.list()) {
      if (this.registry.has(name)) continue;
      const files = await this.store.get(name);
      if (!files) continue;
      const a = await loadPeftAdapter(new MemorySource(files, `store/${name}`), this.config, name);
      this.checkAdapter(a);
      this.registry.set(name, { name, source: { kind: 'store' }, r: a.r, persistentBytes: await this.store.bytes(name) });
      names.push(name);
    }
    return names;
  }

  /** Removes an adapter from every tier (`keepPersistent`: leave its files in the store). Fails while pinned. */
  async unload(name: string, opts: { keepPersistent?: boolean } = {}): Promise<void> {
    return this.serial(async () => {
      const reg = this.registry.get(name);
      if (!reg) throw new LoraPoolError(`adapter "${name}" is not loaded`);
      if ((this.pins.get(name) ?? 0) > 0) throw new LoraPoolError(`adapter "${name}" is in use by ${this.pins.get(name)} running request(s)/step(s)`);
      const r = this.resident.get(name);
      if (r) this.freeResident(r);
      this.cpuDrop(name);
      if (this.store && reg.source.kind === 'store' && !opts.keepPersistent) await this.store.delete(name);
      this.registry.delete(name);
    });
  }

  private checkAdapter(a: LoraAdapter): void {
    if (a.r > this.rMax) {
      throw new LoraPoolError(`adapter "${a.name}": rank ${a.r} exceeds the pool's maximum rank ${this.rMax} (max_lora_rank: createLoraSupport({ maxRank }) / createEngine({ lora: { maxRank } }))`);
    }
    if (a.r > this.pageCount) throw new LoraPoolError(`adapter "${a.name}": rank ${a.r} needs more pages than the GPU budget holds (${this.pageCount})`);
    for (const [key, p] of a.weights) {
      const [l, m] = key.split('.') as [string, LoraModule];
      const { inDim, outDim } = moduleDims(this.config, m);
      if (Number(l) >= this.config.numLayers || p.A.length !== a.r * inDim || p.B.length !== outDim * a.r) {
        throw new LoraPoolError(`adapter "${a.name}": ${key} does not fit the base model`);
      }
    }
  }

  // ------------------------------------------------------------ pins

  /** Marks an adapter in use (a running request): it cannot be evicted until unpin(). */
  pin(name: string): void {
    if (!this.registry.has(name)) throw new LoraPoolError(`unknown adapter "${name}" (loaded: ${this.names().join(', ') || 'none'})`);
    this.pins.set(name, (this.pins.get(name) ?? 0) + 1);
  }
  unpin(name: string): void {
    const n = this.pins.get(name) ?? 0;
    if (n <= 0) throw new LoraPoolError(`unpin("${name}") without a matching pin`);
    if (n === 1) this.pins.delete(name);
    else this.pins.set(name, n - 1);
  }
  pinCount(name: string): number {
    return this.pins.get(name) ?? 0;
  }

  // ------------------------------------------------------------ GPU residency

  /** Makes the adapter GPU-resident (loading / evicting as needed); returns its slot. */
  async acquire(name: string): Promise<{ slot: number; rank: number; targetModules: LoraModule[]; masks: number[]; readonly pages: readonly number[]; readonly scaling: number }> {
    return this.serial(async () => {
      const r = this.resident.get(name);
      if (r) {
        this.counters.hits++;
        r.lastUse = ++this.clock;
        return r;
      }
      const reg = this.registry.get(name);
      if (!reg) throw new LoraPoolError(`unknown adapter "${name}" (loaded: ${this.names().join(', ') || 'none'})`);
      this.counters.misses++;
      // Make room first (cheap, synchronous bookkeeping), then fetch and upload.
      this.makeRoom(reg.r, name);
      const a = await this.fetch(reg);
      return this.upload(a);
    });
  }

  /** Drops an adapter from the GPU tier (it stays in the CPU / persistent tiers). False when pinned or not resident. */
  evict(name: string): boolean {
    const r = this.resident.get(name);
    if (!r || (this.pins.get(name) ?? 0) > 0) return false;
    this.freeResident(r);
    this.counters.evictions++;
    return true;
  }

  private makeRoom(rank: number, forName: string): void {
    while (this.freePages.length < rank || this.freeSlots.length === 0) {
      let victim: Resident | null = null;
      for (const r of this.resident.values()) {
        if ((this.pins.get(r.name) ?? 0) > 0) continue;
        if (!victim || r.lastUse < victim.lastUse) victim = r;
      }
      if (!victim) {
        throw new LoraPoolFullError(
          `cannot make adapter "${forName}" (rank ${rank}) resident: ${this.freePages.length} of ${this.pageCount} pages and ${this.freeSlots.length} slots free, and all ${this.resident.size} resident adapters are in use`,
        );
      }
      this.freeResident(victim);
      this.counters.evictions++;
    }
  }

  private freeResident(r: Resident): void {
    this.resident.delete(r.name);
    this.freePages.push(...r.pages);
    this.freePages.sort((a, b) => b - a); // pop() takes the lowest page: runs stay contiguous
    this.freeSlots.push(r.slot);
    // Clear the slot's masks so a stale slot can never be applied.
    this.rt.write(this.tables.slotInfo, new Uint32Array(this.tables.slotStride), r.slot * this.tables.slotStride * 4);
  }

  private async fetch(reg: Registered): Promise<LoraAdapter> {
    const c = this.cpu.get(reg.name);
    if (c) {
      this.counters.cpuHits++;
      this.cpu.delete(reg.name);
      this.cpu.set(reg.name, c); // most recent
      return c;
    }
    let a: LoraAdapter;
    if (reg.source.kind === 'memory') {
      a = reg.source.adapter;
    } else if (reg.source.kind === 'store') {
      const files = await this.store!.get(reg.name);
      if (!files) throw new LoraPoolError(`adapter "${reg.name}" vanished from the persistent store`);
      a = await loadPeftAdapter(new MemorySource(files, `store/${reg.name}`), this.config, reg.name);
      this.counters.persistentLoads++;
    } else {
      a = await loadPeftAdapter(reg.source.src, this.config, reg.name);
      this.counters.persistentLoads++;
    }
    this.cpuPut(a);
    return a;
  }

  private upload(a: LoraAdapter): Resident {
    const c = this.config;
    const slot = this.freeSlots.pop()!;
    const pages: number[] = [];
    for (let k = 0; k < a.r; k++) pages.push(this.freePages.pop()!);
    // Contiguous runs of pages → one write per run per bank.
    const runs: Array<[number, number, number]> = []; // [firstPage, firstRankRow, count]
    for (let k = 0; k < a.r; ) {
      let n = 1;
      while (k + n < a.r && pages[k + n] === pages[k] + n) n++;
      runs.push([pages[k]!, k, n]);
      k += n;
    }
    const masks = new Array<number>(c.numLayers).fill(0);
    for (const key of a.weights.keys()) {
      const [ls, m] = key.split('.') as [string, LoraModule];
      masks[Number(ls)] |= MODULE_BIT[m];
    }
    // One write per (layer, group, run of pages) into each of A and Bt; modules the adapter does not
    // target stay zero (their mask bit is clear, so the kernels never read them anyway).
    for (let l = 0; l < c.numLayers; l++) {
      for (const g of LORA_GROUP_NAMES) {
        const mods = LORA_GROUPS[g];
        const pairs = mods.map((m) => a.weights.get(loraKey(l, m)));
        if (!pairs.some(Boolean)) continue;
        const bank = this.bank(l, g);
        const L = bankLayout(bank.inDim, bank.outDims);
        for (const [p0, k0, n] of runs) {
          const ab = new Float32Array(n * L.aPage);
          const bb = new Float32Array(n * L.btPage);
          pairs.forEach((pr, mi) => {
            if (!pr) return;
            const outDim = bank.outDims[mi]!;
            for (let j = 0; j < n; j++) {
              ab.set(pr.A.subarray((k0 + j) * bank.inDim, (k0 + j + 1) * bank.inDim), j * L.aPage + mi * L.inP);
              const o0 = j * L.btPage + L.btCol[mi]!;
              for (let o = 0; o < outDim; o++) bb[o0 + o] = pr.B[o * a.r + k0 + j]!;
            }
          });
          this.rt.write(bank.A, ab, p0 * L.aPage * 4);
          this.rt.write(bank.Bt, bb, p0 * L.btPage * 4);
        }
      }
    }
    const pt = new Uint32Array(this.rMax);
    pt.set(pages);
    this.rt.write(this.tables.pages, pt, slot * this.rMax * 4);
    const info = new Uint32Array(this.tables.slotStride);
    info[0] = a.r;
    new Float32Array(info.buffer, 4, 1)[0] = a.scaling;
    info.set(masks, 2);
    this.rt.write(this.tables.slotInfo, info, slot * this.tables.slotStride * 4);
    const r: Resident = { name: a.name, slot, pages, rank: a.r, scaling: a.scaling, targetModules: a.targetModules, masks, lastUse: ++this.clock };
    this.resident.set(a.name, r);
    this.counters.loads++;
    return r;
  }

  // ------------------------------------------------------------ CPU tier

  private cpuPut(a: LoraAdapter): void {
    this.cpuDrop(a.name);
    this.cpu.set(a.name, a);
    this.cpuBytes += a.bytes;
    for (const [n, v] of this.cpu) {
      if (this.cpuBytes <= this.cpuBudget || n === a.name) break;
      this.cpu.delete(n);
      this.cpuBytes -= v.bytes;
      this.counters.cpuEvictions++;
    }
  }
  private cpuDrop(name: string): void {
    const v = this.cpu.get(name);
    if (v) {
      this.cpu.delete(name);
      this.cpuBytes -= v.bytes;
    }
  }

  // ------------------------------------------------------------ misc

  stats(): PoolStats {
    let persistentBytes = 0;
    for (const r of this.registry.values()) persistentBytes += r.persistentBytes;
    return {
      ...this.counters,
      gpuBytesUsed: (this.pageCount - this.freePages.length) * this.bytesPerPage,
      gpuBytesCapacity: this.pageCount * this.bytesPerPage,
      cpuBytes: this.cpuBytes,
      persistentBytes,
      resident: this.resident.size,
      pagesFree: this.freePages.length,
      pages: this.pageCount,
    };
  }

  /** Scaling (alpha/r or alpha/sqrt(r)) of a GPU-resident adapter. */
  scalingOf(name: string): number {
    const r = this.resident.get(name);
    if (!r) throw new LoraPoolError(`adapter "${name}" is not GPU-resident`);
    return r.scaling;
  }

  /**
   * Whether these adapters can be GPU-resident together (ranks fit the pages, count fits the slots).
   * A scheduler can use it to keep a step's adapter set admissible and avoid LoraPoolFullError.
   */
  fits(names: Iterable<string>): boolean {
    let pages = 0, n = 0;
    for (const name of new Set(names)) {
      const reg = this.registry.get(name);
      if (!reg) return false;
      pages += reg.r;
      n++;
    }
    return pages <= this.pageCount && n <= this.slots;
  }

  /** Residency info for a loaded adapter (null when not on the GPU). */
  residentInfo(name: string): { slot: number; rank: number; masks: number[]; pages: number[] } | null {
    const r = this.resident.get(name);
    return r ? { slot: r.slot, rank: r.rank, masks: r.masks, pages: [...r.pages] } : null;
  }

  destroy(): void {
    for (const b of this.banks) {
      this.rt.destroy(b.A);
      this.rt.destroy(b.Bt);
    }
    this.rt.destroy(this.tables.pages);
    this.rt.destroy(this.tables.slotInfo);
    this.banks = [];
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const p = this.lock.then(f, f);
    this.lock = p.catch(() => undefined);
    return p;
  }
}

export { loraKey };
