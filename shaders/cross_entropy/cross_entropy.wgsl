// Cross-entropy over one chunk of lm_head logits; `main`: one invocation per row (barrier-free,
// SwiftShader's fast path), `main_wg`: one workgroup per row (below). Built through
// shaders/lib/reduce.ts (RED_WG, red_max, red_sum).
//   row r of the chunk is token t = t0 + r with logits z = logits[r*V .. r*V + V), label y = labels[t]
//   lse[t]  = log Σ_v exp(z_v)             (max-shifted, block sums of 256 for f32 accuracy)
//   logp[t] = z_y − lse[t]                 (0 when y < 0: ignored, HF's -100)
//   FLAG_GRAD: logits[r, v] ← coef[t] · (softmax(z)_v − [v == y])   (0 for ignored rows): the
//   gradient of −Σ_t coef[t]·logp[t] w.r.t. the logits, written in place for the dh GEMM.
@group(0) @binding(0) var<uniform> p: CrossEntropyParams;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read> coef: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> logp: array<f32>;

const FLAG_GRAD: u32 = 1u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * 64u;
  if (r >= p.rows) { return; }
  let t = p.t0 + r;
  let base = r * p.V;
  var m = -3.4e38;
  for (var v = 0u; v < p.V; v++) { m = max(m, logits[base + v]); }
  var total = 0.0;
  for (var b = 0u; b < p.V; b += 256u) {
    let e = min(b + 256u, p.V);
    var s = vec4<f32>(0.0);
    var v = b;
    for (; v + 4u <= e; v += 4u) {
      s += exp(vec4<f32>(logits[base + v], logits[base + v + 1u], logits[base + v + 2u], logits[base + v + 3u]) - m);
    }
    for (; v < e; v++) { s.x += exp(logits[base + v] - m); }
    total += (s.x + s.y) + (s.z + s.w);
  }
  let L = m + log(total);
  let y = labels[t];
  lse[t] = L;
  if (y >= 0) { logp[t] = logits[base + u32(y)] - L; } else { logp[t] = 0.0; }
  if ((p.flags & FLAG_GRAD) != 0u) {
    var c = 0.0;
    if (y >= 0) { c = coef[t]; }
    for (var v = 0u; v < p.V; v++) {
      var g = exp(logits[base + v] - L);
      if (i32(v) == y) { g -= 1.0; }
      logits[base + v] = c * g;
    }
  }
}

// Workgroup mode (GPUs, long rows): one workgroup of RED_WG invocations per row, columns strided
// over the invocations, max and sum through the workgroup reductions (shaders/lib/reduce.ts).
@compute @workgroup_size(RED_WG)
fn main_wg(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32> RED_ARGS) {
  red_init(li, RED_SGS);
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; }
  let t = p.t0 + r;
  let base = r * p.V;
  var m = -3.4e38;
  for (var v = li; v < p.V; v += RED_WG) { m = max(m, logits[base + v]); }
  m = red_max(m);
  let y = labels[t];
  // The label's logit is read before red_sum's barriers, so no invocation has overwritten it yet.
  var zy = 0.0;
  if (y >= 0) { zy = logits[base + u32(y)]; }
  var s = 0.0;
  for (var v = li; v < p.V; v += RED_WG) { s += exp(logits[base + v] - m); }
  let L = m + log(red_sum(s));
  if (li == 0u) {
    lse[t] = L;
    if (y >= 0) { logp[t] = zy - L; } else { logp[t] = 0.0; }
  }
  if ((p.flags & FLAG_GRAD) != 0u) {
    var c = 0.0;
    if (y >= 0) { c = coef[t]; }
    for (var v = li; v < p.V; v += RED_WG) {
      var g = exp(logits[base + v] - L);
      if (i32(v) == y) { g -= 1.0; }
      logits[base + v] = c * g;
    }
  }
}
