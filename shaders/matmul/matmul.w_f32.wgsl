// matmul weight loader, f32 with any K: W[r, k] = w[r*wStride + k] (wStride = K).
@group(0) @binding(4) var<storage, read> w: array<f32>;

fn w1(r: u32, k: u32) -> f32 { return w[r * p.wStride + k]; }
// k + 3 < K.
fn w4(r: u32, k: u32) -> vec4<f32> {
  let i = r * p.wStride + k;
  return vec4<f32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
}
