// float64 reference for shaders/silu_mul.wgsl
const silu = (g: number) => g / (1 + Math.exp(-g));

export function siluMulRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  const out = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) out[i] = silu(gate[i]) * up[i];
  return out;
}

/** Fused layout: gu is [rows, 2*inter] = gate | up per row. */
export function siluMulFusedRef(gu: ArrayLike<number>, rows: number, inter: number): Float64Array {
  const out = new Float64Array(rows * inter);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < inter; j++) out[r * inter + j] = silu(gu[r * 2 * inter + j]) * gu[r * 2 * inter + inter + j];
  return out;
}

/** float64 backward of silu(g)·u: dg, du for upstream dout (all [n]). */
export function siluMulBackwardRef(gate: ArrayLike<number>, up: ArrayLike<number>, dout: ArrayLike<number>): { dg: Float64Array; du: Float64Array } {
  const n = gate.length, dg = new Float64Array(n), du = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i], sig = 1 / (1 + Math.exp(-g));
    du[i] = dout[i] * g * sig;
    dg[i] = dout[i] * up[i] * sig * (1 + g * (1 - sig));
  }
  return { dg, du };
}
