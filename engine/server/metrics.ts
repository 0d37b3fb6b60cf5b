// The server's Prometheus metrics (prom-client, one Registry per server).
//
// vLLM's names where vLLM has the metric, so dashboards and the Kubernetes Gateway API Inference
// Extension (its "Model Server Protocol") read lorafleet pods like vLLM pods:
//   vllm:num_requests_waiting   gauge  requests queued in the scheduler
//   vllm:num_requests_running   gauge  requests in the running batch
//   vllm:kv_cache_usage_perc    gauge  KV-cache usage, 1 = 100 % (also as vllm:gpu_cache_usage_perc, its V0 name)
//   vllm:lora_requests_info     gauge  value = unix time of the sample (the EPP keeps the newest); labels
//                                      running_lora_adapters / waiting_lora_adapters (comma-joined names),
//                                      max_lora (adapters one batch may hold)
//   vllm:prompt_tokens_total / vllm:generation_tokens_total          counters
//   vllm:request_success_total{finished_reason}                      counter (stop | length | abort)
//   vllm:time_to_first_token_seconds / vllm:inter_token_latency_seconds / vllm:e2e_request_latency_seconds  histograms
// lorafleet's own (lorafleet_*): HTTP requests by route and status, generation requests by
// endpoint / model / outcome, queue depth, running batch size and tokens, KV pages, adapter pool
// hits / misses / evictions per tier, GPU bytes, router decisions, engine recoveries.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { LocalEngine as Engine } from '../api/engine.ts'; // the in-process engine, with its parts

export interface MetricsSource {
  /** The engine now serving (null while it is being recreated). */
  engine(): Engine | null;
  /** Adapters one batch may hold (vLLM's max_loras). */
  maxLoras(): number;
  recoveries(): number;
  inflight(): number;
}

const LATENCY = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly http: Counter<'method' | 'route' | 'status'>;
  readonly requests: Counter<'endpoint' | 'model' | 'outcome'>;
  readonly promptTokens: Counter<'model_name'>;
  readonly generationTokens: Counter<'model_name'>;
  readonly success: Counter<'model_name' | 'finished_reason'>;
  readonly ttft: Histogram<'model_name'>;
  readonly itl: Histogram<'model_name'>;
  readonly e2e: Histogram<'model_name'>;
  readonly routes: Counter<'route' | 'adapter'>;

  constructor(src: MetricsSource) {
    const r = this.registry;
    const reg = { registers: [r] };
    this.http = new Counter({ name: 'lorafleet_http_requests_total', help: 'HTTP requests by method, route and status.', labelNames: ['method', 'route', 'status'], ...reg });
    this.requests = new Counter({
      name: 'lorafleet_requests_total',
      help: 'Generation requests by endpoint, model and outcome (stop, length, cancelled, error, rejected).',
      labelNames: ['endpoint', 'model', 'outcome'],
      ...reg,
    });
    this.promptTokens = new Counter({ name: 'vllm:prompt_tokens_total', help: 'Number of prefill tokens processed.', labelNames: ['model_name'], ...reg });
    this.generationTokens = new Counter({ name: 'vllm:generation_tokens_total', help: 'Number of generation tokens processed.', labelNames: ['model_name'], ...reg });
    this.success = new Counter({ name: 'vllm:request_success_total', help: 'Count of finished requests by finish reason.', labelNames: ['model_name', 'finished_reason'], ...reg });
    this.ttft = new Histogram({ name: 'vllm:time_to_first_token_seconds', help: 'Histogram of time to first token in seconds.', labelNames: ['model_name'], buckets: LATENCY, ...reg });
    this.itl = new Histogram({ name: 'vllm:inter_token_latency_seconds', help: 'Histogram of inter-token latency in seconds.', labelNames: ['model_name'], buckets: LATENCY, ...reg });
    this.e2e = new Histogram({ name: 'vllm:e2e_request_latency_seconds', help: 'Histogram of end to end request latency in seconds.', labelNames: ['model_name'], buckets: LATENCY, ...reg });
    this.routes = new Counter({ name: 'lorafleet_router_decisions_total', help: 'Requests with model "auto" by the route and adapter the router chose.', labelNames: ['route', 'adapter'], ...reg });

    const sched = () => src.engine()?.metrics() ?? null;
    const gauge = (name: string, help: string, value: (e: Engine) => number, labelNames: string[] = ['model_name']) =>
      new Gauge({
        name, help, labelNames, ...reg,
        collect() {
          const e = src.engine();
          this.reset();
          if (e) this.set({ model_name: e.modelName }, value(e));
        },
      });
    gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', (e) => e.metrics().running);
    gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', (e) => e.metrics().queueDepth);
    const kvUsage = (e: Engine) => {
      const m = e.metrics();
      return m.kvTotalBlocks ? (m.kvTotalBlocks - m.kvFreeBlocks) / m.kvTotalBlocks : 0;
    };
    gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', kvUsage);
    // the name vLLM's V0 engine used (and older Inference Extension releases scrape)
    gauge('vllm:gpu_cache_usage_perc', 'GPU KV-cache usage. 1 means 100 percent usage (old name of vllm:kv_cache_usage_perc).', kvUsage);
    new Gauge({
      name: 'vllm:lora_requests_info',
      help: 'Running stats on lora requests.',
      labelNames: ['running_lora_adapters', 'max_lora', 'waiting_lora_adapters'],
      ...reg,
      collect() {
        const m = sched();
        this.reset();
        this.set(
          { running_lora_adapters: m?.runningAdapters.join(',') ?? '', max_lora: String(src.maxLoras()), waiting_lora_adapters: m?.waitingAdapters.join(',') ?? '' },
          Date.now() / 1000,
        );
      },
    });
    gauge('lorafleet_queue_depth', 'Requests waiting in the scheduler queue.', (e) => e.metrics().queueDepth);
    gauge('lorafleet_batch_running', 'Sequences in the running batch.', (e) => e.metrics().running);
    gauge('lorafleet_batch_tokens', 'Tokens in the last forward step.', (e) => e.metrics().lastBatchTokens);
    gauge('lorafleet_kv_pages_used', 'KV-cache pages (blocks) in use.', (e) => e.metrics().kvTotalBlocks - e.metrics().kvFreeBlocks);
    gauge('lorafleet_kv_pages_total', 'KV-cache pages (blocks) in all.', (e) => e.metrics().kvTotalBlocks);
    gauge('lorafleet_gpu_bytes_in_use', 'GPU bytes allocated and not pooled for reuse.', (e) => e.runtime.stats().allocatedBytes - e.runtime.stats().pooledBytes);
    gauge('lorafleet_adapter_pool_resident', 'Adapters resident in the GPU tier.', (e) => e.lora?.pool.stats().resident ?? 0);
    gauge('lorafleet_adapters_registered', 'Adapters registered (any tier).', (e) => e.lora?.pool.names().length ?? 0);
    new Gauge({ name: 'lorafleet_inflight_requests', help: 'HTTP generation requests being answered.', ...reg, collect() { this.set(src.inflight()); } });
    new Gauge({ name: 'lorafleet_engine_recoveries', help: 'Engines recreated after a device loss.', ...reg, collect() { this.set(src.recoveries()); } });

    // Pool counters: cumulative in the pool; mirrored into counters by deltas (a recreated engine starts from 0).
    const last = new Map<string, number>();
    let lastEngine: Engine | null = null;
    const pool = new Counter({
      name: 'lorafleet_adapter_pool_events_total',
      help: 'Adapter pool events by tier (gpu | cpu) and kind (hit | miss | eviction); a cpu miss is a load from the persistent tier.',
      labelNames: ['tier', 'kind'],
      ...reg,
      collect() {
        const e = src.engine();
        if (e !== lastEngine) {
          last.clear();
          lastEngine = e;
        }
        const s = e?.lora?.pool.stats();
        if (!s) return;
        const now: Array<[string, string, number]> = [
          ['gpu', 'hit', s.hits], ['gpu', 'miss', s.misses], ['gpu', 'eviction', s.evictions],
          ['cpu', 'hit', s.cpuHits], ['cpu', 'miss', s.persistentLoads], ['cpu', 'eviction', s.cpuEvictions],
        ];
        for (const [tier, kind, v] of now) {
          const k = `${tier}/${kind}`;
          const prev = last.get(k) ?? 0;
          const d = v >= prev ? v - prev : v;
          if (d > 0) this.inc({ tier, kind }, d);
          else this.inc({ tier, kind }, 0);
          last.set(k, v);
        }
      },
    });
    void pool;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
  get contentType(): string {
    return this.registry.contentType;
  }
}
