// matmul split-K chunk loaders, f32 weights (with matmul.x_f32 + matmul.w_f32): a chunk is one
// element, so the lanes of a subgroup read consecutive floats of x and W (one vector load each
// on SIMD CPUs, coalesced on GPUs).
const E: u32 = 1u;
alias VE = f32;
fn vdot(a: f32, b: f32) -> f32 { return a * b; }
fn xsk(m: u32, c: u32) -> f32 { return x[p.xOff + m * p.K + c]; }
fn xskt(m: u32, c: u32) -> f32 { return xsk(m, c); }
fn wsk(r: u32, c: u32) -> f32 { return w[r * p.wStride + c]; }
