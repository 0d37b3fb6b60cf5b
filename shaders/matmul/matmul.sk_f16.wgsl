// matmul split-K chunk loaders, packed f16 weights (with matmul.x_f32 + matmul.w_f16): a chunk is
// one u32 = 2 halves; lanes read consecutive u32s of W. The padded half of an odd K is 0 in W,
// and xskt zeroes x past K.
const E: u32 = 2u;
alias VE = vec2<f32>;
fn vdot(a: vec2<f32>, b: vec2<f32>) -> f32 { return dot(a, b); }
fn xsk(m: u32, c: u32) -> vec2<f32> {
  let i = p.xOff + m * p.K + 2u * c;
  return vec2<f32>(x[i], x[i + 1u]);
}
fn xskt(m: u32, c: u32) -> vec2<f32> {
  let i = p.xOff + m * p.K + 2u * c;
  return vec2<f32>(x[i], select(0.0, x[i + 1u], 2u * c + 1u < p.K));
}
fn wsk(r: u32, c: u32) -> vec2<f32> { return unpack2x16float(w[r * p.wStride + c]); }
