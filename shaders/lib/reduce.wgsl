// Workgroup reductions, plain variant (no subgroup ops). Library text, not an op: shaders/reduce.ts
// prepends it (with `const RED_WG`) to row-reduction kernels. One barrier to publish the
// partials, every invocation then combines all RED_WG partials in the same order (so every
// invocation gets bit-identical results and control flow stays uniform), one barrier to
// make the scratch reusable. No log2(WG) tree: barriers are very slow on SwiftShader.
var<workgroup> red_f: array<f32, RED_WG>;
var<workgroup> red_u: array<u32, RED_WG>;
var<private> red_li: u32;

fn red_init(li: u32, sgs: u32) { red_li = li; }

fn red_sum(v: f32) -> f32 {
  red_f[red_li] = v;
  workgroupBarrier();
  var s = 0.0;
  for (var i = 0u; i < RED_WG; i++) { s += red_f[i]; }
  workgroupBarrier();
  return s;
}

fn red_sum_u(v: u32) -> u32 {
  red_u[red_li] = v;
  workgroupBarrier();
  var s = 0u;
  for (var i = 0u; i < RED_WG; i++) { s += red_u[i]; }
  workgroupBarrier();
  return s;
}

fn red_max(v: f32) -> f32 {
  red_f[red_li] = v;
  workgroupBarrier();
  var m = red_f[0];
  for (var i = 1u; i < RED_WG; i++) { m = max(m, red_f[i]); }
  workgroupBarrier();
  return m;
}

// (value, index) maximum; ties → lowest index. Invocations with nothing pass (-inf-ish, 0xffffffff).
fn red_argmax(v: f32, idx: u32) -> vec2<u32> {
  red_f[red_li] = v;
  red_u[red_li] = idx;
  workgroupBarrier();
  var bv = red_f[0];
  var bi = red_u[0];
  for (var i = 1u; i < RED_WG; i++) {
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
