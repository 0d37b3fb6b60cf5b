// AdamW step over a flat f32 parameter buffer, exactly torch.optim.AdamW (torch 1.13
// _single_tensor_adamw, the CPU path), one invocation per element:
//   g      = grad · clip[1]                    (clip_grad_norm_'s in-place g.mul_(clip_coef_clamped); flag bit 0)
//   p      = p · (1 − lr·wd)                   param.mul_(1 - lr * weight_decay)
//   m      = m·β1 + (1 − β1)·g                 exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
//   v      = v·β2 + (1 − β2)·g·g               exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
//   denom  = sqrt(v) / sqrt(1 − β2^t) + ε      (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
//   p      = p − (lr / (1 − β1^t)) · m / denom param.addcdiv_(exp_avg, denom, value=-step_size)
// The host computes the step-dependent scalars in float64 (python floats) and passes them as f32.
@group(0) @binding(0) var<uniform> p: AdamWParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> clip: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) { return; }
  let j = p.offset + i;
  var g = grad[p.gradOffset + i];
  if ((p.flags & 1u) != 0u) { g = g * clip[1]; }
  var w = param[j] * p.decay;
  let mi = m[j] * p.beta1 + p.one_minus_beta1 * g;
  let vi = v[j] * p.beta2 + p.one_minus_beta2 * (g * g);
  m[j] = mi;
  v[j] = vi;
  let denom = sqrt(vi) / p.bc2_sqrt + p.eps;
  param[j] = w - p.step_size * (mi / denom);
}
