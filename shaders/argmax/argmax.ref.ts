// CPU reference for shaders/argmax.wgsl: first index of the maximum (NaNs ignored; all-NaN → 0).
// masks[r] (optional): row r's grammar bitmask; tokens whose bit is 0 are skipped.
import { maskAllows } from '../lib/token-mask.ts';

export function argmaxRef(x: ArrayLike<number>, rows: number, vocab: number, rowStride = vocab, masks?: ReadonlyArray<Uint32Array | null>): Uint32Array {
  const out = new Uint32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = -Infinity, bi = -1;
    for (let i = 0; i < vocab; i++) {
      if (!maskAllows(masks?.[r], i)) continue;
      const v = x[r * rowStride + i];
      if (v > best || (v === best && bi < 0)) { best = v; bi = i; }
    }
    out[r] = bi < 0 ? 0 : bi;
  }
  return out;
}
