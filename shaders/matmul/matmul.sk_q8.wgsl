// matmul split-K chunk loaders, int8 weights (with matmul.x_f32 + matmul.w_q8): a chunk is one
// u32 = 4 int8; lanes read consecutive u32s of W; 8 chunks share a scale. W is zero-padded to
// a multiple of 32 along K; xskt zeroes x past K.
const E: u32 = 4u;
alias VE = vec4<f32>;
fn vdot(a: vec4<f32>, b: vec4<f32>) -> f32 { return dot(a, b); }
fn xsk(m: u32, c: u32) -> vec4<f32> {
  let i = p.xOff + m * p.K + 4u * c;
  return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}
fn xskt(m: u32, c: u32) -> vec4<f32> {
  let i = p.xOff + m * p.K + 4u * c;
  let k = 4u * c;
  return vec4<f32>(x[i], select(0.0, x[i + 1u], k + 1u < p.K), select(0.0, x[i + 2u], k + 2u < p.K), select(0.0, x[i + 3u], k + 3u < p.K));
}
fn wsk(r: u32, c: u32) -> vec4<f32> {
  return unpackI8(w[r * p.wStride + c]) * wscale[r * (p.wStride / 8u) + c / 8u];
}
