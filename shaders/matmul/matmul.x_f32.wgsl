// matmul activation loader, any K / offset: x[xOff + m*K + k] read as scalars.
@group(0) @binding(1) var<storage, read> x: array<f32>;

fn x1(m: u32, k: u32) -> f32 { return x[p.xOff + m * p.K + k]; }
// k + 3 < K.
fn x4(m: u32, k: u32) -> vec4<f32> {
  let i = p.xOff + m * p.K + k;
  return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}
// Guarded: elements at k + c >= K read as 0 (the loop tail of the generated variants).
fn x4g(m: u32, k: u32) -> vec4<f32> {
  let i = p.xOff + m * p.K + k;
  return vec4<f32>(select(0.0, x[i], k < p.K), select(0.0, x[i + 1u], k + 1u < p.K),
                   select(0.0, x[i + 2u], k + 2u < p.K), select(0.0, x[i + 3u], k + 3u < p.K));
}
