// matmul activation loader when K % 4 == 0 and xOff % 4 == 0: vec4 loads.
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;

fn x1(m: u32, k: u32) -> f32 { let i = p.xOff + m * p.K + k; return x[i / 4u][i % 4u]; }
fn x4(m: u32, k: u32) -> vec4<f32> { return x[(p.xOff + m * p.K + k) / 4u]; }
