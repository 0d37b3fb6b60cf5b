// Workgroup reductions, subgroup variant (needs `enable subgroups;`, prepended by shaders/reduce.ts).
// Each subgroup reduces with subgroupAdd/Max/Min, its first invocation publishes one partial
// at slot li / subgroup_size (subgroups are formed from consecutive local_invocation_index in a
// 1-D workgroup on every current backend), one barrier, then every invocation combines the
// partials in the same order. Same results contract as reduce.wgsl.
var<workgroup> red_f: array<f32, RED_WG>;
var<workgroup> red_u: array<u32, RED_WG>;
var<private> red_li: u32;
var<private> red_sgs: u32;

fn red_init(li: u32, sgs: u32) { red_li = li; red_sgs = sgs; }

fn red_nsg() -> u32 { return (RED_WG + red_sgs - 1u) / red_sgs; }

fn red_sum(v: f32) -> f32 {
  let s0 = subgroupAdd(v);
  if (red_li % red_sgs == 0u) { red_f[red_li / red_sgs] = s0; }
  workgroupBarrier();
  var s = 0.0;
  let n = red_nsg();
  for (var i = 0u; i < n; i++) { s += red_f[i]; }
  workgroupBarrier();
  return s;
}

fn red_sum_u(v: u32) -> u32 {
  let s0 = subgroupAdd(v);
  if (red_li % red_sgs == 0u) { red_u[red_li / red_sgs] = s0; }
  workgroupBarrier();
  var s = 0u;
  let n = red_nsg();
  for (var i = 0u; i < n; i++) { s += red_u[i]; }
  workgroupBarrier();
  return s;
}

fn red_max(v: f32) -> f32 {
  let m0 = subgroupMax(v);
  if (red_li % red_sgs == 0u) { red_f[red_li / red_sgs] = m0; }
  workgroupBarrier();
  var m = red_f[0];
  let n = red_nsg();
  for (var i = 1u; i < n; i++) { m = max(m, red_f[i]); }
  workgroupBarrier();
  return m;
}

fn red_argmax(v: f32, idx: u32) -> vec2<u32> {
  let m0 = subgroupMax(v);
  let i0 = subgroupMin(select(0xffffffffu, idx, v == m0));
  if (red_li % red_sgs == 0u) { red_f[red_li / red_sgs] = m0; red_u[red_li / red_sgs] = i0; }
  workgroupBarrier();
  var bv = red_f[0];
  var bi = red_u[0];
  let n = red_nsg();
  for (var i = 1u; i < n; i++) {
    let cv = red_f[i];
    let ci = red_u[i];
    if (cv > bv || (cv == bv && ci < bi)) { bv = cv; bi = ci; }
  }
  workgroupBarrier();
  return vec2<u32>(bitcast<u32>(bv), bi);
}

// -inf as a runtime value (a constant -inf is a WGSL shader-creation error).
var<private> red_neg_inf_bits: u32 = 0xff800000u;
fn red_neg_inf() -> f32 { return bitcast<f32>(red_neg_inf_bits); }
