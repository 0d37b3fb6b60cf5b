// Row softmax in place, numerically stable: x[r, c] = exp(x[r, c] - max_r) / sum_r over the
// valid columns c < limit(r); masked columns (c >= limit) are set to 0.
//   limit(r) = cols, or with causal masking (p.causal == 1): min(cols, q + query_offset + 1)
//   where q = r % query_rows (rows may stack several heads of query_rows queries each).
// A row with no valid column becomes all zeros.
// Entry points: main (one workgroup per row, one-barrier reductions), main_rows (one invocation
// per row, no barriers: many short rows, e.g. attention scores on SwiftShader).
@group(0) @binding(0) var<uniform> p: SoftmaxParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

fn sm_limit(row: u32) -> u32 {
  if (p.causal == 0u) { return p.cols; }
  let q = row % p.query_rows;
  return min(p.cols, q + p.query_offset + 1u);
}

@compute @workgroup_size(RED_WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32> RED_ARGS) {
  red_init(li, RED_SGS);
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let lim = sm_limit(row);
  var m = red_neg_inf();
  for (var i = li; i < lim; i += RED_WG) { m = max(m, x[base + i]); }
  m = red_max(m);
  var s = 0.0;
  for (var i = li; i < lim; i += RED_WG) {
    let e = exp(x[base + i] - m);
    x[base + i] = e;
    s += e;
  }
  s = red_sum(s);
  let inv = 1.0 / s;
  for (var i = li; i < p.cols; i += RED_WG) {
    x[base + i] = select(0.0, x[base + i] * inv, i < lim);
  }
}

@compute @workgroup_size(64)
fn main_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.x + gid.y * nwg.x * 64u;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let lim = sm_limit(row);
  var m = red_neg_inf();
  for (var i = 0u; i < lim; i++) { m = max(m, x[base + i]); }
  var s = 0.0;
  for (var i = 0u; i < lim; i++) {
    let e = exp(x[base + i] - m);
    x[base + i] = e;
    s += e;
  }
  let inv = 1.0 / s;
  for (var i = 0u; i < lim; i++) { x[base + i] *= inv; }
  for (var i = lim; i < p.cols; i++) { x[base + i] = 0.0; }
}
