// matmul weight loader, packed f16: u32 j of a row holds halves 2j (low) and 2j+1 (high);
// wStride = Kp / 2 u32s per row (Kp = K rounded up to 2).
@group(0) @binding(4) var<storage, read> w: array<u32>;

fn w1(r: u32, k: u32) -> f32 { return unpack2x16float(w[r * p.wStride + k / 2u])[k % 2u]; }
// k % 4 == 0, k + 3 < K.
fn w4(r: u32, k: u32) -> vec4<f32> {
  let i = r * p.wStride + k / 2u;
  return vec4<f32>(unpack2x16float(w[i]), unpack2x16float(w[i + 1u]));
}
