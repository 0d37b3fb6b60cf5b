// Row argmax: out[r] = the lowest index of the maximum of logits[r * row_stride + (0..vocab)].
// One workgroup per row; invocation li scans columns li, li + RED_WG, ... (keeping the first of
// equal values), then one red_argmax (ties → lowest index). NaNs never win; a row with no
// comparable value (all NaN) yields 0. Masked variant (shaders/lib/token-mask.ts): tokens whose
// bit is 0 in the row's grammar mask are skipped (rows with mrow[row] = 0xffffffff: no mask).
@group(0) @binding(0) var<uniform> p: ArgmaxParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<u32>;
MASK_DECL

@compute @workgroup_size(RED_WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32> RED_ARGS) {
  red_init(li, RED_SGS);
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.row_stride;
  mask_begin(row);
  var bv = red_neg_inf();
  var bi = 0xffffffffu;
  for (var i = li; i < p.vocab; i += RED_WG) {
    if (!mask_allows(i)) { continue; }
    let v = logits[base + i];
    if (v > bv || (v == bv && i < bi)) { bv = v; bi = i; }
  }
  let r = red_argmax(bv, bi);
  if (li == 0u) { o[row] = select(r.y, 0u, r.y == 0xffffffffu); }
}
