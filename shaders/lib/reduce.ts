// Builds row-reduction kernels in two variants from one WGSL body: 'plain' (shared memory,
// one barrier per reduction) and 'subgroups' (subgroupAdd/Max/Min first; needs the device
// feature). The body uses `red_init(li, RED_SGS)` as its first statement, `RED_ARGS` at the end
// of the entry point's parameter list, `RED_WG` as its workgroup size, and the library
// functions red_sum / red_sum_u / red_max / red_argmax (shaders/reduce.wgsl, reduce_subgroups.wgsl).
import { WGSL } from './wgsl.gen.ts';
import type { ParamsLayout } from '../gpu/params.ts';
import type { Kernel, Runtime } from '../gpu/runtime.ts';

export type ReductionVariant = 'plain' | 'subgroups';

/** The variant a kernel uses on this runtime unless a caller forces one. */
export function defaultVariant(rt: Runtime): ReductionVariant {
  return rt.info.features.subgroups ? 'subgroups' : 'plain';
}

export function resolveVariant(rt: Runtime, v?: ReductionVariant): ReductionVariant {
  const out = v ?? defaultVariant(rt);
  if (out === 'subgroups' && !rt.info.features.subgroups) throw new Error("reduction variant 'subgroups' needs the 'subgroups' device feature");
  return out;
}

export function reductionSource(body: string, variant: ReductionVariant, wg: number, paramsWgsl = ''): string {
  const sg = variant === 'subgroups';
  const lib = sg ? WGSL.reduce_subgroups : WGSL.reduce;
  const src = body
    .replace(/RED_ARGS/g, sg ? ', @builtin(subgroup_size) red_sgs_in: u32' : '')
    .replace(/RED_SGS/g, sg ? 'red_sgs_in' : '1u');
  return `${sg ? 'enable subgroups;\n' : ''}${paramsWgsl}const RED_WG: u32 = ${wg}u;\n${lib}\n${src}`;
}

/** Lazily creates (and memoizes) one Kernel per variant / entry point. */
export function reductionKernels<F extends string>(
  name: string,
  params: ParamsLayout<F>,
  body: string,
  wg: number,
): (variant: ReductionVariant, entryPoint?: string) => Kernel<F> {
  const cache = new Map<string, Kernel<F>>();
  return (variant, entryPoint = 'main') => {
    const key = `${variant}:${entryPoint}`;
    let k = cache.get(key);
    if (!k) {
      k = { name: `${name}_${entryPoint === 'main' ? '' : entryPoint + '_'}${variant}`, code: reductionSource(body, variant, wg, params.wgsl), entryPoint, params };
      cache.set(key, k);
    }
    return k;
  };
}
