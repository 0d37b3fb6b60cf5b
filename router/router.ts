/**
 * The semantic router: embeds a request, scores it against every route's utterances and picks
 * the adapter. Also fit() (thresholds from labelled examples) and evaluate() (accuracy, per-route
 * precision/recall, confusion matrix).
 *
 * Scoring. s_u = e·u for each utterance embedding u (all L2-normalised: cosine). A route's score is
 * the mean (or max) of its top-k s_u. Routes scoring below their threshold are out; of the rest
 * the highest wins; routes within tieEpsilon of the winner with another adapter make a tie, which
 * is reported (`reason: 'tie'`, `tied`) and resolved by route order in the file. No route left →
 * `route: null`, the fallback adapter, `reason: 'below_threshold'`. A request with no usable
 * feature (zero embedding) → the fallback, `reason: 'no_features'`.
 */
import { RouterError, type Encoder } from './encoder.ts';
import { parseRouterFile, requestText, type ChatMessage, type RouterFile } from './schema.ts';

export type RouteReason = 'match' | 'tie' | 'below_threshold' | 'no_features';

/** What the engine needs to serve a request, and what it reports back and counts. */
export interface RouteDecision {
  /** The route taken; null when none passed its threshold (the fallback adapter serves it). */
  route: string | null;
  adapter: string;
  /** The best route's score (also when it was under its threshold). */
  score: number;
  reason: RouteReason;
  /** Every route's score. */
  scores: Record<string, number>;
  /** Routes tied with the winner (winner first), when reason is 'tie'. */
  tied?: string[];
}

/** The routing function the engine takes (`model: "auto"`). */
export type RouteFn = (input: string | ChatMessage[]) => Promise<RouteDecision & { fallback: string }>;

export interface LabeledExample {
  text?: string;
  messages?: ChatMessage[];
  /** Expected route name, or null for "no route" (the fallback). */
  route: string | null;
}

export interface EvalReport {
  n: number;
  /** Route name (null = no route) equals the label. */
  accuracy: number;
  /** The adapter chosen equals the label's adapter (null label = fallback adapter). */
  adapterAccuracy: number;
  perRoute: Record<string, { precision: number; recall: number; support: number; predicted: number }>;
  /** rows: true label, columns: predicted; labels include '(none)'. */
  confusion: { labels: string[]; matrix: number[][] };
  errors: { text: string; expected: string; got: string; score: number }[];
}

export interface FitReport {
  thresholds: Record<string, number>;
  before: { accuracy: number; adapterAccuracy: number };
  after: { accuracy: number; adapterAccuracy: number };
}

export const NONE = '(none)';

export class Router {
  private utt: Float32Array = new Float32Array(0);
  private uttRoute: Int32Array = new Int32Array(0);
  private routeStart: number[] = [];

  private constructor(
    private file: RouterFile,
    readonly encoder: Encoder,
  ) {}

  /** A router from a parsed (or raw, validated here) router file and a loaded encoder. */
  static async create(file: RouterFile | unknown, encoder: Encoder): Promise<Router> {
    const f = parseRouterFile(file);
    const r = new Router(f, encoder);
    await r.embedUtterances();
    return r;
  }

  get config(): RouterFile {
    return this.file;
  }

  get routes(): RouterFile['routes'] {
    return this.file.routes;
  }

  private async embedUtterances(): Promise<void> {
    const d = this.encoder.dim;
    const all: string[] = [];
    const owner: number[] = [];
    this.file.routes.forEach((r, ri) => {
      this.routeStart.push(all.length);
      for (const u of r.utterances) {
        all.push(u);
        owner.push(ri);
      }
    });
    this.utt = new Float32Array(all.length * d);
    // Batches of similar length (a transformer pads every row to the batch's longest).
    const order = all.map((_, i) => i).sort((a, b) => all[a].length - all[b].length || a - b);
    for (let i = 0; i < order.length; i += 32) {
      const idx = order.slice(i, i + 32);
      const embs = await this.encoder.embed(idx.map((k) => all[k]));
      embs.forEach((e, j) => this.utt.set(e, idx[j] * d));
    }
    this.uttRoute = Int32Array.from(owner);
  }

  /** Per-route aggregated scores for one embedding (null when the embedding is all zeros). */
  scoreEmbedding(e: Float32Array): Float64Array | null {
    const d = this.encoder.dim;
    let nz = false;
    for (let c = 0; c < d; c++) if (e[c] !== 0) { nz = true; break; }
    if (!nz) return null;
    const { topK, aggregate } = this.file.scoring;
    const R = this.file.routes.length;
    const out = new Float64Array(R);
    for (let r = 0; r < R; r++) {
      const start = this.routeStart[r];
      const end = r + 1 < R ? this.routeStart[r + 1] : this.uttRoute.length;
      const k = aggregate === 'max' ? 1 : Math.min(topK, end - start);
      // Keep the k best similarities in a small sorted array (k is tiny).
      const best = new Float64Array(k).fill(-Infinity);
      for (let u = start; u < end; u++) {
        let s = 0;
        const o = u * d;
        for (let c = 0; c < d; c++) s += e[c] * this.utt[o + c];
        if (s > best[k - 1]) {
          let j = k - 1;
          while (j > 0 && best[j - 1] < s) {
            best[j] = best[j - 1];
            j--;
          }
          best[j] = s;
        }
      }
      let sum = 0;
      for (let j = 0; j < k; j++) sum += best[j];
      out[r] = sum / k;
    }
    return out;
  }

  private decide(scores: Float64Array | null, thresholds?: number[]): RouteDecision {
    const routes = this.file.routes;
    const fallback = this.file.fallback.adapter;
    if (!scores) {
      return { route: null, adapter: fallback, score: 0, reason: 'no_features', scores: Object.fromEntries(routes.map((r) => [r.name, 0])) };
    }
    const named = Object.fromEntries(routes.map((r, i) => [r.name, scores[i]]));
    let top = 0;
    for (let i = 1; i < routes.length; i++) if (scores[i] > scores[top]) top = i;
    let win = -1;
    for (let i = 0; i < routes.length; i++) {
      const t = thresholds ? thresholds[i] : (routes[i].threshold ?? this.file.scoring.threshold);
      if (scores[i] >= t && (win < 0 || scores[i] > scores[win])) win = i;
    }
    if (win < 0) return { route: null, adapter: fallback, score: scores[top], reason: 'below_threshold', scores: named };
    const eps = this.file.scoring.tieEpsilon;
    const tied: string[] = [];
    for (let i = 0; i < routes.length; i++) {
      const t = thresholds ? thresholds[i] : (routes[i].threshold ?? this.file.scoring.threshold);
      if (i !== win && scores[i] >= t && scores[win] - scores[i] <= eps && routes[i].adapter !== routes[win].adapter) tied.push(routes[i].name);
    }
    const w = routes[win];
    if (tied.length) return { route: w.name, adapter: w.adapter, score: scores[win], reason: 'tie', scores: named, tied: [w.name, ...tied] };
    return { route: w.name, adapter: w.adapter, score: scores[win], reason: 'match', scores: named };
  }

  async route(input: string | ChatMessage[]): Promise<RouteDecision> {
    return (await this.routeBatch([input]))[0];
  }

  /** One encoder run for the whole batch. */
  async routeBatch(inputs: Array<string | ChatMessage[]>): Promise<RouteDecision[]> {
    if (!Array.isArray(inputs) || inputs.length === 0) throw new RouterError('route: no inputs');
    const texts = inputs.map((x) => requestText(x, this.file.embed));
    const embs = await this.encoder.embed(texts);
    return embs.map((e) => this.decide(this.scoreEmbedding(e)));
  }

  /** The routing function for the engine. Its decisions also name the router's fallback adapter
   *  (`fallback`), which the engine serves when the chosen adapter is not loaded. */
  asRouteFn(): RouteFn {
    return async (input) => ({ ...(await this.route(input)), fallback: this.file.fallback.adapter });
  }

  private checkLabels(examples: LabeledExample[], what: string): void {
    if (examples.length === 0) throw new RouterError(`${what}: no labelled examples`);
    const names = new Set(this.file.routes.map((r) => r.name));
    examples.forEach((x, i) => {
      if (x.route !== null && !names.has(x.route))
        throw new RouterError(`${what}: example ${i} has route '${x.route}', which is not in the router (${[...names].join(', ')})`);
      if (x.text === undefined && x.messages === undefined) throw new RouterError(`${what}: example ${i} has neither text nor messages`);
    });
  }

  private async scoreExamples(examples: LabeledExample[]): Promise<Array<Float64Array | null>> {
    const texts = examples.map((x) => requestText(x.text ?? x.messages!, this.file.embed));
    const out: Array<Float64Array | null> = [];
    for (let i = 0; i < texts.length; i += 256) {
      const embs = await this.encoder.embed(texts.slice(i, i + 256));
      for (const e of embs) out.push(this.scoreEmbedding(e));
    }
    return out;
  }

  private adapterOf(route: string | null): string {
    return route === null ? this.file.fallback.adapter : this.file.routes.find((r) => r.name === route)!.adapter;
  }

  async evaluate(examples: LabeledExample[]): Promise<EvalReport> {
    this.checkLabels(examples, 'evaluate');
    const scored = await this.scoreExamples(examples);
    return this.report(examples, scored.map((s) => this.decide(s)));
  }

  private report(examples: LabeledExample[], decisions: RouteDecision[]): EvalReport {
    const labels = [...this.file.routes.map((r) => r.name), NONE];
    const idx = new Map(labels.map((l, i) => [l, i]));
    const matrix = labels.map(() => labels.map(() => 0));
    let correct = 0, adapterCorrect = 0;
    const errors: EvalReport['errors'] = [];
    examples.forEach((x, i) => {
      const d = decisions[i];
      const exp = x.route ?? NONE, got = d.route ?? NONE;
      matrix[idx.get(exp)!][idx.get(got)!]++;
      if (exp === got) correct++;
      else errors.push({ text: x.text ?? requestText(x.messages!, this.file.embed), expected: exp, got, score: d.score });
      if (d.adapter === this.adapterOf(x.route)) adapterCorrect++;
    });
    const perRoute: EvalReport['perRoute'] = {};
    labels.forEach((l, i) => {
      const tp = matrix[i][i];
      const support = matrix[i].reduce((a, b) => a + b, 0);
      const predicted = matrix.reduce((a, row) => a + row[i], 0);
      if (l === NONE && support === 0 && predicted === 0) return;
      perRoute[l] = { precision: predicted ? tp / predicted : 0, recall: support ? tp / support : 0, support, predicted };
    });
    return { n: examples.length, accuracy: correct / examples.length, adapterAccuracy: adapterCorrect / examples.length, perRoute, confusion: { labels, matrix }, errors };
  }

  /**
   * Calibrates each route's threshold on labelled examples. For route r, among the examples whose
   * best-scoring route is r, the threshold t (accept when score ≥ t, else the fallback) maximises the
   * adapter accuracy, then the route accuracy, then routes more (lower t); the stored threshold is
   * the midpoint between the lowest accepted score and the next score below it, lowered by
   * `margin` (labelled examples worded like the utterances score higher than real traffic). Updates the router
   * in place; `config` then carries the thresholds.
   */
  async fit(examples: LabeledExample[], opts: { margin?: number } = {}): Promise<FitReport> {
    const margin = opts.margin ?? 0;
    this.checkLabels(examples, 'fit');
    const scored = await this.scoreExamples(examples);
    const rep0 = this.report(examples, scored.map((s) => this.decide(s)));
    const routes = this.file.routes;
    const fallback = this.file.fallback.adapter;
    const thresholds: number[] = [];
    routes.forEach((route, r) => {
      const mine: { s: number; label: string | null }[] = [];
      scored.forEach((s, i) => {
        if (!s) return;
        let top = 0;
        for (let j = 1; j < s.length; j++) if (s[j] > s[top]) top = j;
        if (top === r) mine.push({ s: s[r], label: examples[i].route });
      });
      if (mine.length === 0) {
        thresholds.push(route.threshold ?? this.file.scoring.threshold);
        return;
      }
      mine.sort((a, b) => b.s - a.s);
      // Accept the first k (by score); reject the rest (→ fallback, route null).
      const accAd = (l: string | null) => (this.adapterOf(l) === route.adapter ? 1 : 0);
      const rejAd = (l: string | null) => (this.adapterOf(l) === fallback ? 1 : 0);
      const accRt = (l: string | null) => (l === route.name ? 1 : 0);
      const rejRt = (l: string | null) => (l === null ? 1 : 0);
      let ad = mine.reduce((a, m) => a + rejAd(m.label), 0);
      let rt = mine.reduce((a, m) => a + rejRt(m.label), 0);
      let bestK = 0, bestAd = ad, bestRt = rt;
      for (let k = 1; k <= mine.length; k++) {
        const l = mine[k - 1].label;
        ad += accAd(l) - rejAd(l);
        rt += accRt(l) - rejRt(l);
        if (ad > bestAd || (ad === bestAd && rt >= bestRt)) {
          bestK = k;
          bestAd = ad;
          bestRt = rt;
        }
      }
      let t: number;
      if (bestK === 0) t = Math.min(1, mine[0].s + 1e-6);
      else if (bestK === mine.length) t = Math.max(-1, mine[bestK - 1].s - 0.05);
      else t = (mine[bestK - 1].s + mine[bestK].s) / 2;
      thresholds.push(Math.round(Math.max(-1, t - (bestK === 0 ? 0 : margin)) * 1e6) / 1e6);
    });
    this.file = { ...this.file, routes: routes.map((r, i) => ({ ...r, threshold: thresholds[i] })) };
    const rep1 = this.report(examples, scored.map((s) => this.decide(s)));
    return {
      thresholds: Object.fromEntries(routes.map((r, i) => [r.name, thresholds[i]])),
      before: { accuracy: rep0.accuracy, adapterAccuracy: rep0.adapterAccuracy },
      after: { accuracy: rep1.accuracy, adapterAccuracy: rep1.adapterAccuracy },
    };
  }

  async dispose(): Promise<void> {
    await this.encoder.dispose();
  }
}
