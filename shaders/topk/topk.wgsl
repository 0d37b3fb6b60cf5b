// Row top-k: the k largest values of logits[r * row_stride + (0..vocab)], sorted descending,
// ties by lowest index (the total order (value desc, index asc)); NaNs are never selected.
// One workgroup per row; k rounds, each an argmax (red_argmax) restricted to the elements
// strictly after the previous pick in that total order. A row with fewer than k selectable
// elements pads with (value -inf, index 0xffffffff).
@group(0) @binding(0) var<uniform> p: TopkParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_values: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_indices: array<u32>;

@compute @workgroup_size(RED_WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32> RED_ARGS) {
  red_init(li, RED_SGS);
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.row_stride;
  let ninf = red_neg_inf();
  var pv = 0.0;          // previous pick (value, index); round 0 has none
  var pi = 0u;
  var done = false;
  for (var r = 0u; r < p.k; r++) {
    var bv = ninf;
    var bi = 0xffffffffu;
    if (!done) {
      for (var i = li; i < p.vocab; i += RED_WG) {
        let v = logits[base + i];
        let after = r == 0u || v < pv || (v == pv && i > pi);
        if (after && (v > bv || (v == bv && i < bi))) { bv = v; bi = i; }
      }
    }
    let m = red_argmax(bv, bi);
    pv = bitcast<f32>(m.x);
    pi = m.y;
    if (pi == 0xffffffffu) { done = true; }
    if (li == 0u) {
      out_values[row * p.k + r] = select(pv, ninf, done);
      out_indices[row * p.k + r] = pi;
    }
  }
}
