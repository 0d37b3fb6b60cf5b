/**
 * model "auto": from the router's decision to the model that serves the request. A router names an
 * adapter; when that adapter is not loaded (never registered, unloaded since the router was built, a
 * router file for another fleet), the request is served by the router's fallback adapter when that
 * one is loaded, else by the base model — and the returned route info says so (`not_loaded`) instead
 * of the request failing with model_not_found. Used by the library (openai.ts) and the server.
 */
import type { RouteDecision, RouteInfo } from './types.ts';

const isBase = (a: string | null | undefined, baseName: string) => a == null || a === '' || a === 'base' || a === baseName;

/**
 * The decision as served. `isLoaded(name)`: whether the adapter `name` can serve now.
 * `adapter` of the result: the adapter that serves (null or a base name as the router gave it: the base model).
 */
export function resolveRoute(d: RouteDecision, baseName: string, isLoaded: (adapter: string) => boolean): RouteInfo {
  if (isBase(d.adapter, baseName)) return d;
  if (isLoaded(d.adapter!)) return d;
  const fb = d.fallback;
  const adapter = !isBase(fb, baseName) && fb !== d.adapter && isLoaded(fb!) ? fb! : null;
  return { ...d, adapter, not_loaded: d.adapter! };
}
