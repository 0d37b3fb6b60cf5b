// LoRA gradients from the merged weight's gradient dW [N, K] (see lora_train.wgsl):
//   dB[n, ρ] = s · Σ_k dW[n, k]·A[ρ, k]      (workgroup y = 2e: N x r outputs of entry e)
//   dA[ρ, k] = s · Σ_n B[n, ρ]·dW[n, k]      (workgroup y = 2e + 1: r x K outputs)
// written (overwritten) into grads at the entry's bOff / aOff. One invocation per 4x4 block.
@group(0) @binding(2) var<storage, read> dw: array<f32>;
@group(0) @binding(3) var<storage, read> lora: array<f32>;
@group(0) @binding(4) var<storage, read_write> grads: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.y >= 2u * p.nEntries) { return; }
  let e = entry(gid.y / 2u);
  let isA = (gid.y & 1u) == 1u;
  // output block (i0 rows, j0 columns) of dB [N, r] or dA [r, K]
  let rows = select(e.N, p.r, isA);
  let cols = select(p.r, e.K, isA);
  let cb = (cols + 3u) / 4u;
  if (gid.x >= ((rows + 3u) / 4u) * cb) { return; }
  let i0 = (gid.x / cb) * 4u;
  let j0 = (gid.x % cb) * 4u;
  let i = vec4<u32>(min(i0, rows - 1u), min(i0 + 1u, rows - 1u), min(i0 + 2u, rows - 1u), min(i0 + 3u, rows - 1u));
  let j = vec4<u32>(min(j0, cols - 1u), min(j0 + 1u, cols - 1u), min(j0 + 2u, cols - 1u), min(j0 + 3u, cols - 1u));
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  if (isA) {
    // rows ρ = i, columns k = j: Σ_n B[n, ρ_i] · dW[n, k_j]
    for (var n = 0u; n < e.N; n++) {
      let d = e.wOff + n * e.K;
      let w = vec4<f32>(dw[d + j.x], dw[d + j.y], dw[d + j.z], dw[d + j.w]);
      let bo = e.bOff + n * p.r;
      c0 = fma(vec4<f32>(lora[bo + i.x]), w, c0);
      c1 = fma(vec4<f32>(lora[bo + i.y]), w, c1);
      c2 = fma(vec4<f32>(lora[bo + i.z]), w, c2);
      c3 = fma(vec4<f32>(lora[bo + i.w]), w, c3);
    }
  } else {
    // rows n = i, columns ρ = j: Σ_k dW[n_i, k] · A[ρ_j, k]
    for (var k = 0u; k < e.K; k++) {
      let ao = e.aOff + k;
      let a = vec4<f32>(lora[ao + j.x * e.K], lora[ao + j.y * e.K], lora[ao + j.z * e.K], lora[ao + j.w * e.K]);
      let d = e.wOff + k;
      c0 = fma(vec4<f32>(dw[d + i.x * e.K]), a, c0);
      c1 = fma(vec4<f32>(dw[d + i.y * e.K]), a, c1);
      c2 = fma(vec4<f32>(dw[d + i.z * e.K]), a, c2);
      c3 = fma(vec4<f32>(dw[d + i.w * e.K]), a, c3);
    }
  }
  let out = select(e.bOff, e.aOff, isA);
  put(out, rows, cols, i0, j0, c0);
  put(out, rows, cols, i0 + 1u, j0, c1);
  put(out, rows, cols, i0 + 2u, j0, c2);
  put(out, rows, cols, i0 + 3u, j0, c3);
}

// grads[out + i*cols + j0..j0+3] = s·c where i < rows, j < cols.
fn put(out: u32, rows: u32, cols: u32, i: u32, j0: u32, c: vec4<f32>) {
  if (i >= rows) { return; }
  let o = out + i * cols + j0;
  grads[o] = p.scale * c.x;
  if (j0 + 1u < cols) { grads[o + 1u] = p.scale * c.y; }
  if (j0 + 2u < cols) { grads[o + 2u] = p.scale * c.z; }
  if (j0 + 3u < cols) { grads[o + 3u] = p.scale * c.w; }
}
