// matmul weight loader, int8 groups: u32 j of a row holds int8 elements 4j..4j+3 (byte 0 = 4j);
// one f32 scale per 32 consecutive K elements. wStride = Kp / 4 u32s per row (Kp multiple of 32),
// so a row has wStride / 8 scales. W[r, k] = int8 * scale (exactly what dequantized() computes).
@group(0) @binding(4) var<storage, read> w: array<u32>;
@group(0) @binding(5) var<storage, read> wscale: array<f32>;

fn q8scale(r: u32, k: u32) -> f32 { return wscale[r * (p.wStride / 8u) + k / 32u]; }
fn unpackI8(u: u32) -> vec4<f32> {
  return vec4<f32>((vec4<i32>(bitcast<i32>(u)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}
fn w1(r: u32, k: u32) -> f32 {
  let b = (bitcast<i32>(w[r * p.wStride + k / 4u]) << (24u - 8u * (k % 4u))) >> 24u;
  return f32(b) * q8scale(r, k);
}
// k % 4 == 0.
fn w4(r: u32, k: u32) -> vec4<f32> { return unpackI8(w[r * p.wStride + k / 4u]) * q8scale(r, k); }
// The int8 values alone (k % 4 == 0): the generated variants apply the scale once per group.
fn w4raw(r: u32, k: u32) -> vec4<f32> { return unpackI8(w[r * p.wStride + k / 4u]); }
