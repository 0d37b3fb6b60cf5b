// matmul weight loader, f32 with K % 4 == 0: vec4 loads (wStride = K / 4 vec4s).
@group(0) @binding(4) var<storage, read> w: array<vec4<f32>>;

fn w1(r: u32, k: u32) -> f32 { return w[r * p.wStride + k / 4u][k % 4u]; }
fn w4(r: u32, k: u32) -> vec4<f32> { return w[r * p.wStride + k / 4u]; }
