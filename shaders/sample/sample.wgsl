// Token sampling, one workgroup per row (runs once per generated token).
// Per row r with parameters rowp[r] (see shaders/sample.ts SampleParams):
//  1. lp = logits (NaN → -inf); repetition penalty (HF RepetitionPenaltyLogitsProcessor): for
//     every token t in the row's history hist[hist_off .. hist_off + hist_len),
//     lp[t] = logit < 0 ? logit * penalty : logit / penalty (once per distinct token).
//  2. temperature <= 0 (or every lp = -inf): greedy argmax of lp, ties → lowest index.
//  3. Order the vocabulary by (lp desc, index asc) (-0 == +0). e_i = exp((lp_i - max) / T).
//  4. top-k (0 < top_k < vocab): keep the first top_k in that order.
//  5. top-p (top_p < 1): keep the shortest prefix whose mass reaches top_p * (mass kept by 4)
//     (HF TopPLogitsWarper: a token is kept iff the mass strictly before it is < top_p; >= 1 token).
//  6. u = uniform(seed, step) (PCG hash, exact 24-bit fraction); pick the first kept token in the
//     same order whose cumulative mass exceeds u * (kept mass).
// Every "first prefix of the order whose weight reaches a goal" is found without sorting:
// a radix select over the 32-bit order key of lp, 4 bits per pass (8 passes over the row, 16
// bins), then ties of the final key are resolved in index order by a chunked count select.
// Split into small dispatches (one workgroup per row each): main_prep, then per phase
// (0 top-k, 1 top-p, 2 draw) 8 × main_radix and 1 × main_select. One big kernel took SwiftShader
// 10-20 s to compile. State between dispatches lives in `st` (16 u32 per row, layout below);
// scratch ([rows, vocab] f32) holds lp only when a repetition penalty applies; e is recomputed.
// Grammar masks (the masked variant, see shaders/lib/token-mask.ts): a row whose word offset
// mrow[row] is not 0xffffffff reads lp = -inf for every token whose bit is 0 in
// mbits[mrow[row] ..][ceil(vocab/32)] before step 1, so masked tokens are never chosen (greedy or
// sampled); rows without a mask, and the unmasked variant, are unchanged.
struct SampleRow {
  temperature: f32,
  top_k: u32,
  top_p: f32,
  penalty: f32,
  seed: u32,
  step: u32,
  hist_off: u32,
  hist_len: u32,
}

@group(0) @binding(0) var<uniform> p: SampleParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> rowp: array<SampleRow>;
@group(0) @binding(3) var<storage, read> hist: array<u32>;
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(5) var<storage, read_write> o: array<u32>;
@group(0) @binding(6) var<storage, read_write> st: array<u32>;
// Compacted sets in index order, [rows][3][vocab]: list 0 = kept after top-k, list 1 = kept after
// top-p, list 2 = the current radix select's candidates (kept elements matching its 12-bit prefix
// after pass 2 — sign, exponent, 3 mantissa bits; passes 3..7 and the select scan only those).
@group(0) @binding(7) var<storage, read_write> lists: array<u32>;

// st[row * 16 + ...]
const ST_FLAGS = 0u;   // bit0 top-k cut on, bit1 top-p cut on, bit2 done (greedy written)
const ST_KK_KEY = 1u;
const ST_KK_IDX = 2u;
const ST_PP_KEY = 3u;
const ST_PP_IDX = 4u;
const ST_MAX = 5u;     // f32 bits
const ST_INV_T = 6u;   // f32 bits
const ST_PREFIX = 7u;  // radix select in progress: key prefix
const ST_ABOVE = 8u;   // f32 bits: weight of kept elements above the prefix range
const ST_GOAL = 9u;    // f32 bits: absolute goal
const ST_LIST = 10u;   // 0: iterate the whole vocabulary; 1 + l: iterate list l
const ST_LIST_N = 11u; // length of that list
const ST_RLIST_N = 12u; // length of list 2
// ST_FLAGS bit3: lp was written to scratch (penalty applied); without it lp = sanitized logits.

MASK_DECL

var<workgroup> sm_bins: array<f32, 16u * RED_WG>;
var<workgroup> sm_tot: array<f32, 16>;
var<workgroup> sm_cnt: array<u32, RED_WG>;
var<workgroup> sm_res: atomic<u32>;
var<workgroup> sm_row: SampleRow;
var<workgroup> sm_flag: u32;

var<private> s_li: u32;
var<private> s_lp: u32;
var<private> s_lb: u32;     // row offset in logits
var<private> s_pen: bool;   // lp lives in scratch (repetition penalty applied), else = logits
var<private> s_m: f32;
var<private> s_inv_t: f32;
var<private> s_st: u32;
var<private> kk_on: bool;
var<private> kk_key: u32;
var<private> kk_idx: u32;
var<private> pp_on: bool;
var<private> pp_key: u32;
var<private> pp_idx: u32;
var<private> s_list: u32;   // 0 or 1 + list number
var<private> s_n: u32;      // domain length
var<private> s_lbase: u32;  // offset of the current list in `lists`

fn pcg(x: u32) -> u32 {
  let state = x * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// Uniform in [0, 1): 24 random bits, exact in f32 (and in float64 on the host).
fn uniform01(seed: u32, step: u32) -> f32 {
  return f32(pcg(pcg(seed) + step) >> 8u) * (1.0 / 16777216.0);
}

// Order key: larger value <-> larger key; -0 maps like +0.
fn fkey(v: f32) -> u32 {
  var b = bitcast<u32>(v);
  if (b == 0x80000000u) { b = 0u; }
  return select(~b, b | 0x80000000u, (b & 0x80000000u) == 0u);
}

fn funkey(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

fn sanitize(v: f32) -> f32 {
  if ((bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u) { return red_neg_inf(); }
  return v;
}

// Penalized logit of element i; e(i) = exp((lp - max) / T). Storage writes are expensive on
// SwiftShader, so neither is materialized unless a penalty forces lp into scratch.
fn lp(i: u32) -> f32 {
  if (!mask_allows(i)) { return red_neg_inf(); }
  if (s_pen) { return scratch[s_lp + i]; }
  return sanitize(logits[s_lb + i]);
}

fn ew(i: u32) -> f32 { return exp((lp(i) - s_m) * s_inv_t); }

// Is element i (order key k) inside the current kept prefix (top-k, then top-p cut)?
fn member(i: u32, k: u32) -> bool {
  if (kk_on && (k < kk_key || (k == kk_key && i > kk_idx))) { return false; }
  if (pp_on && (k < pp_key || (k == pp_key && i > pp_idx))) { return false; }
  return true;
}

// The d-th element of the current domain (the whole row, or the compacted kept list).
fn dom(d: u32) -> u32 {
  if (s_list == 0u) { return d; }
  return lists[s_lbase + d];
}

// Common start of the radix / select dispatches: offsets, row params, cut state, domain
// (rlist: iterate list 2, the radix candidates, instead of the phase's domain).
fn begin(li: u32, row: u32, rlist: bool) -> SampleRow {
  // Every entry point binds the same 7 resources (layout 'auto' drops unused ones).
  if (p.rows == 0xffffffffu) { o[0] = hist[0] + u32(logits[0]) + lists[0]; }
  s_li = li;
  s_lp = row * p.vocab;
  s_lb = row * p.row_stride;
  s_st = row * 16u;
  mask_begin(row);
  if (li == 0u) { sm_row = rowp[row]; }
  let rp = workgroupUniformLoad(&sm_row);
  let flags = st[s_st + ST_FLAGS];
  s_pen = (flags & 8u) != 0u;
  s_m = bitcast<f32>(st[s_st + ST_MAX]);
  s_inv_t = bitcast<f32>(st[s_st + ST_INV_T]);
  kk_on = (flags & 1u) != 0u;
  kk_key = st[s_st + ST_KK_KEY];
  kk_idx = st[s_st + ST_KK_IDX];
  pp_on = (flags & 2u) != 0u;
  pp_key = st[s_st + ST_PP_KEY];
  pp_idx = st[s_st + ST_PP_IDX];
  s_list = st[s_st + ST_LIST];
  s_n = select(st[s_st + ST_LIST_N], p.vocab, s_list == 0u);
  s_lbase = (row * 3u + max(s_list, 1u) - 1u) * p.vocab;
  if (rlist) {
    s_list = 3u;
    s_n = st[s_st + ST_RLIST_N];
    s_lbase = (row * 3u + 2u) * p.vocab;
  }
  return rp;
}

// Does phase p.phase run for this row? (uniform: decided by invocation 0, shared)
fn phase_on(li: u32, rp: SampleRow) -> bool {
  if (li == 0u) {
    var on = (st[s_st + ST_FLAGS] & 4u) == 0u;
    if (p.phase == 0u) { on = on && rp.top_k > 0u && rp.top_k < p.vocab; }
    if (p.phase == 1u) { on = on && rp.top_p < 1.0; }
    sm_flag = select(0u, 1u, on);
  }
  return workgroupUniformLoad(&sm_flag) == 1u;
}

@compute @workgroup_size(RED_WG)
fn main_prep(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32> RED_ARGS) {
  red_init(li, RED_SGS);
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  s_li = li;
  s_lp = row * p.vocab;
  s_lb = row * p.row_stride;
  s_st = row * 16u;
  mask_begin(row);
  if (li == 0u) { sm_row = rowp[row]; }
  let rp = workgroupUniformLoad(&sm_row);

  // 1. lp = sanitized logits; with a repetition penalty, materialized in scratch and penalized.
  let pen = rp.penalty != 1.0 && rp.hist_len > 0u;
  s_pen = pen;
  if (pen) {
    for (var i = li; i < p.vocab; i += RED_WG) { scratch[s_lp + i] = sanitize(logits[s_lb + i]); }
    storageBarrier();
    for (var j = li; j < rp.hist_len; j += RED_WG) {
      let t = hist[rp.hist_off + j];
      if (t < p.vocab) {
        let v = sanitize(logits[s_lb + t]);
        scratch[s_lp + t] = select(v / rp.penalty, v * rp.penalty, v < 0.0);
      }
    }
    storageBarrier();
  }

  // 2. max / argmax of lp; greedy rows finish here.
  var mx = red_neg_inf();
  var mi = 0xffffffffu;
  for (var i = li; i < p.vocab; i += RED_WG) {
    let v = lp(i);
    if (v > mx || (v == mx && i < mi)) { mx = v; mi = i; }
  }
  let am = red_argmax(mx, mi);
  let m = bitcast<f32>(am.x);
  let greedy = !(rp.temperature > 0.0) || am.y == 0xffffffffu || m == red_neg_inf();
  let inv_t = 1.0 / rp.temperature;
  if (li == 0u) {
    st[s_st + ST_FLAGS] = select(0u, 4u, greedy) | select(0u, 8u, s_pen);
    st[s_st + ST_LIST] = 0u;
    if (p.rows == 0xffffffffu) { lists[0] = 0u; } // keep binding 7 in this entry point's layout
    st[s_st + ST_MAX] = am.x;
    st[s_st + ST_INV_T] = bitcast<u32>(inv_t);
    if (greedy) { o[row] = select(am.y, 0u, am.y == 0xffffffffu); }
  }
}

// One 4-bit radix pass (p.ps = 0..7) of phase p.phase: find the largest key K such that the
// weight of kept elements with key >= K reaches the goal (>= goal; > for the draw). Weight:
// count (top-k) or e (top-p, draw). For top-p and the draw the goal is a fraction (top_p, u)
// of the total kept weight, known after pass 0. If the goal is never reached (rounding), K
// ends at the smallest kept key.
@compute @workgroup_size(RED_WG)
fn main_radix(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32> RED_ARGS) {
  red_init(li, RED_SGS);
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let rp = begin(li, row, p.ps >= 3u);
  if (!phase_on(li, rp)) { return; }
  let by_mass = p.phase != 0u;
  let strict = p.phase == 2u;
  var prefix = 0u;
  var above = 0.0;
  if (p.ps > 0u) {
    prefix = st[s_st + ST_PREFIX];
    above = bitcast<f32>(st[s_st + ST_ABOVE]);
  }
  let shift = 28u - 4u * p.ps;
  let hi_mask = select(~((2u << (shift + 3u)) - 1u), 0u, p.ps == 0u);
  // 16 bins in registers (a dynamically indexed array, private or workgroup, costs SwiftShader
  // tens of seconds of shader compilation), published once per pass.
  var h = mat4x4<f32>();
  for (var j = li; j < s_n; j += RED_WG) {
    let i = dom(j);
    let k = fkey(lp(i));
    if (((k ^ prefix) & hi_mask) == 0u && member(i, k)) {
      var w = 1.0;
      if (by_mass) { w = ew(i); }
      let d = (k >> shift) & 15u;
      let lane = vec4<f32>(select(0.0, w, (d & 3u) == 0u), select(0.0, w, (d & 3u) == 1u), select(0.0, w, (d & 3u) == 2u), select(0.0, w, (d & 3u) == 3u));
      let q = d >> 2u;
      if (q == 0u) { h[0] += lane; } else if (q == 1u) { h[1] += lane; } else if (q == 2u) { h[2] += lane; } else { h[3] += lane; }
    }
  }
  for (var q = 0u; q < 4u; q++) {
    let v = h[q];
    sm_bins[(4u * q) * RED_WG + li] = v.x;
    sm_bins[(4u * q + 1u) * RED_WG + li] = v.y;
    sm_bins[(4u * q + 2u) * RED_WG + li] = v.z;
    sm_bins[(4u * q + 3u) * RED_WG + li] = v.w;
  }
  workgroupBarrier();
  if (li < 16u) {
    var s = 0.0;
    for (var j = 0u; j < RED_WG; j++) { s += sm_bins[li * RED_WG + j]; }
    sm_tot[li] = s;
  }
  workgroupBarrier();
  if (li == 0u) {
    var goal = 0.0;
    if (p.ps > 0u) {
      goal = bitcast<f32>(st[s_st + ST_GOAL]);
    } else if (p.phase == 0u) {
      goal = f32(rp.top_k);
    } else {
      var tot = 0.0;
      for (var d = 0u; d < 16u; d++) { tot += sm_tot[15u - d]; }
      goal = select(uniform01(rp.seed, rp.step), rp.top_p, p.phase == 1u) * tot;
    }
    var run = above;
    var chosen = 0u;
    var chosen_bin = 0.0;
    var found = false;
    for (var dd = 0u; dd < 16u; dd++) {
      let d = 15u - dd;
      let b = sm_tot[d];
      if (b > 0.0) {
        let t = run + b;
        chosen = d;
        chosen_bin = b;
        if ((strict && t > goal) || (!strict && t >= goal)) { found = true; break; }
        run = t;
      }
    }
    if (!found) { run = run - chosen_bin; }
    st[s_st + ST_PREFIX] = prefix | (chosen << shift);
    st[s_st + ST_ABOVE] = bitcast<u32>(run);
    st[s_st + ST_GOAL] = bitcast<u32>(goal);
  }
}

// How many ties of weight e (each) are needed after `above` to reach goal (>=, or > when strict).
fn ties_needed(goal: f32, above: f32, e: f32, strict: bool) -> u32 {
  let q = (goal - above) / e;
  if (!(q < 4.0e9)) { return 0xffffffffu; }
  if (strict) { return u32(max(floor(q), 0.0)) + 1u; }
  return max(1u, u32(max(ceil(q), 0.0)));
}

// Ends phase p.phase: the c-th kept element with the selected key, in index order (c from the
// ties still needed), becomes the cut (top-k, top-p) or the sampled token (draw).
// Contiguous chunks per invocation so that index order is chunk order.
@compute @workgroup_size(RED_WG)
fn main_select(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32> RED_ARGS) {
  red_init(li, RED_SGS);
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let rp = begin(li, row, true);
  if (!phase_on(li, rp)) { return; }
  let key = st[s_st + ST_PREFIX];
  let above = bitcast<f32>(st[s_st + ST_ABOVE]);
  var c = rp.top_k - u32(above);
  if (p.phase != 0u) {
    let ek = exp((funkey(key) - bitcast<f32>(st[s_st + ST_MAX])) * bitcast<f32>(st[s_st + ST_INV_T]));
    c = ties_needed(bitcast<f32>(st[s_st + ST_GOAL]), above, ek, p.phase == 2u);
  }
  let chunk = (s_n + RED_WG - 1u) / RED_WG;
  let c0 = min(li * chunk, s_n);
  let c1 = min(c0 + chunk, s_n);
  var n = 0u;
  for (var j = c0; j < c1; j++) {
    let i = dom(j);
    if (fkey(lp(i)) == key && member(i, key)) { n++; }
  }
  sm_cnt[li] = n;
  if (li == 0u) { atomicStore(&sm_res, 0xffffffffu); }
  workgroupBarrier();
  var pre = 0u;
  var tot = 0u;
  for (var j = 0u; j < RED_WG; j++) {
    let v = sm_cnt[j];
    if (j < li) { pre += v; }
    tot += v;
  }
  let cc = max(1u, min(c, tot));
  if (n > 0u && pre < cc && cc <= pre + n) {
    var acc = pre;
    for (var j = c0; j < c1; j++) {
      let i = dom(j);
      if (fkey(lp(i)) == key && member(i, key)) {
        acc++;
        if (acc == cc) { atomicStore(&sm_res, i); break; }
      }
    }
  }
  workgroupBarrier();
  if (li == 0u) {
    let idx = atomicLoad(&sm_res);
    let flags = st[s_st + ST_FLAGS];
    if (p.phase == 0u) { st[s_st + ST_KK_KEY] = key; st[s_st + ST_KK_IDX] = idx; st[s_st + ST_FLAGS] = flags | 1u; }
    if (p.phase == 1u) { st[s_st + ST_PP_KEY] = key; st[s_st + ST_PP_IDX] = idx; st[s_st + ST_FLAGS] = flags | 2u; }
    if (p.phase == 2u) { o[row] = idx; }
  }
}

// Compaction, in index order, of the current phase domain: after phase p.phase set a cut (p.ps
// == 0), its kept elements → list p.phase, so later phases scan only them (top-k: k elements
// instead of vocab); after radix pass 2 (p.ps == 2), the candidates → list 2.
@compute @workgroup_size(RED_WG)
fn main_compact(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32> RED_ARGS) {
  red_init(li, RED_SGS);
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let rp = begin(li, row, false);
  if (!phase_on(li, rp)) { return; }
  let chunk = (s_n + RED_WG - 1u) / RED_WG;
  let c0 = min(li * chunk, s_n);
  let c1 = min(c0 + chunk, s_n);
  var n = 0u;
  // p.ps == 2: radix candidates (kept, key matching the 12-bit prefix after pass 2) → list 2;
  // else the kept set after phase p.phase → list p.phase.
  let rad = p.ps == 2u;
  let prefix = st[s_st + ST_PREFIX];
  for (var j = c0; j < c1; j++) {
    let i = dom(j);
    let k = fkey(lp(i));
    if (member(i, k) && (!rad || (k >> 20u) == (prefix >> 20u))) { n++; }
  }
  sm_cnt[li] = n;
  workgroupBarrier();
  var pre = 0u;
  var tot = 0u;
  for (var j = 0u; j < RED_WG; j++) {
    let v = sm_cnt[j];
    if (j < li) { pre += v; }
    tot += v;
  }
  let out_base = (row * 3u + select(p.phase, 2u, rad)) * p.vocab;
  for (var j = c0; j < c1; j++) {
    let i = dom(j);
    let k = fkey(lp(i));
    if (member(i, k) && (!rad || (k >> 20u) == (prefix >> 20u))) { lists[out_base + pre] = i; pre++; }
  }
  if (li == 0u) {
    if (rad) {
      st[s_st + ST_RLIST_N] = tot;
    } else {
      st[s_st + ST_LIST] = 1u + p.phase;
      st[s_st + ST_LIST_N] = tot;
    }
  }
}
