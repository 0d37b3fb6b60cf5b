// Row softmax (host side). WGSL: shaders/softmax.wgsl · reference: shaders/softmax.ref.ts · check: shaders/softmax.check.ts
import { WGSL } from '../lib/wgsl.gen.ts';
import { defineParams } from '../gpu/params.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { reductionKernels, resolveVariant, type ReductionVariant } from '../lib/reduce.ts';

export const SoftmaxParams = defineParams('SoftmaxParams', { rows: 'u32', cols: 'u32', causal: 'u32', query_offset: 'u32', query_rows: 'u32' });
const kernels = reductionKernels('softmax', SoftmaxParams, WGSL.softmax, 64);

/** Columns at or below this use one invocation per row (no barriers) unless `mode` says otherwise. */
export const SOFTMAX_ROWS_MAX_COLS = 256;

export interface SoftmaxOptions {
  /**
   * Causal mask: in row r, query q = r % queryRows (default queryRows = rows) sees columns
   * c <= q + queryOffset; the others become 0. A row with no visible column becomes all 0.
   */
  causal?: { queryOffset: number; queryRows?: number };
  mode?: 'row' | 'workgroup';
  variant?: ReductionVariant;
}

/** In-place, max-subtracted softmax over each of `rows` rows of `cols` f32. */
export function softmax(rt: Runtime, x: GPUBuffer, rows: number, cols: number, opts: SoftmaxOptions = {}): void {
  if (cols <= 0 || rows < 0) throw new Error(`softmax: bad shape ${rows}x${cols}`);
  if (rows === 0) return;
  if (x.size < rows * cols * 4) throw new Error('softmax: buffer too small');
  const c = opts.causal;
  const queryRows = c?.queryRows ?? rows;
  if (c && (queryRows <= 0 || c.queryOffset < 0)) throw new Error('softmax: bad causal options');
  const params = { rows, cols, causal: c ? 1 : 0, query_offset: c?.queryOffset ?? 0, query_rows: queryRows };
  // Same trade-off as rmsnormMode(): barriers make workgroup-per-row slow on CPU adapters.
  const mode = opts.mode ?? (cols <= SOFTMAX_ROWS_MAX_COLS || (rt.info.isCpu && rows >= 4) ? 'row' : 'workgroup');
  const variant = resolveVariant(rt, opts.variant);
  if (mode === 'row') rt.dispatch(kernels(variant, 'main_rows'), { params, buffers: [x], workgroups: rt.grid(Math.ceil(rows / 64)) });
  else rt.dispatch(kernels(variant), { params, buffers: [x], workgroups: rt.grid(rows) });
}
