// Global gradient norm for torch.nn.utils.clip_grad_norm_ (norm_type 2), deterministic, no atomics.
//   main:     partial[outBase + c] = Σ g[off + c*CHUNK .. off + (c+1)*CHUNK)²   (one invocation per chunk)
//   finalize: total = sqrt(Σ partial[0..count)); clip_coef = max_norm / (total + 1e-6), clamped to 1
//             (max_norm = 0: no clipping, coef 1); out[0] = total (the logged grad_norm, before
//             clipping), out[1] = the clamped coefficient adamw.wgsl multiplies the gradient by.
@group(0) @binding(0) var<uniform> p: GradNormParams;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

const CHUNK: u32 = 256u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = gid.x + gid.y * nwg.x * 64u;
  let nChunks = (p.n + CHUNK - 1u) / CHUNK;
  if (c >= nChunks) { return; }
  let start = c * CHUNK;
  let end = min(start + CHUNK, p.n);
  var s = vec4<f32>(0.0);
  var i = start;
  for (; i + 4u <= end; i += 4u) {
    let v = vec4<f32>(g[p.offset + i], g[p.offset + i + 1u], g[p.offset + i + 2u], g[p.offset + i + 3u]);
    s += v * v;
  }
  for (; i < end; i++) { let v = g[p.offset + i]; s.x += v * v; }
  partial[p.outBase + c] = (s.x + s.y) + (s.z + s.w);
}

// Bindings for finalize: 1 = partials (read), 2 = out [2] (written).
@compute @workgroup_size(1)
fn finalize() {
  var s = 0.0;
  for (var i = 0u; i < p.n; i++) { s += g[i]; }
  let total = sqrt(s);
  var coef = 1.0;
  if (p.max_norm > 0.0) { coef = min(p.max_norm / (total + 1e-6), 1.0); }
  partial[0] = total;
  partial[1] = coef;
}
