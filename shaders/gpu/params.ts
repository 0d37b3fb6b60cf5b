// Uniform ("params") structs: one source of truth for WGSL and TypeScript.
// A kernel declares its fields once; the WGSL struct text, the byte size and the packing
// all come from that declaration, so the two sides cannot drift apart.
// Only 4-byte scalars (u32, i32, f32) are allowed: every field sits at offset 4*i, which is
// exactly WGSL's layout for a struct of scalars (its size rounds up to 16 for uniforms).

export type ScalarType = 'u32' | 'i32' | 'f32';

export interface ParamsLayout<F extends string = string> {
  readonly structName: string;
  readonly fields: ReadonlyArray<readonly [F, ScalarType]>;
  /** Byte size as WGSL computes it for a uniform buffer (multiple of 16). */
  readonly byteSize: number;
  /** The WGSL declaration `struct Name { a: u32, ... }`. */
  readonly wgsl: string;
  /** Writes values into `view` at `offset`; every field must be given. */
  write(view: DataView, offset: number, values: Record<F, number>): void;
}

export function defineParams<F extends string>(
  structName: string,
  fields: Record<F, ScalarType>,
): ParamsLayout<F> {
  const entries = Object.entries(fields) as Array<[F, ScalarType]>;
  if (entries.length === 0) throw new Error(`params struct ${structName} needs at least one field`);
  const byteSize = Math.ceil((entries.length * 4) / 16) * 16;
  const wgsl = `struct ${structName} {\n${entries.map(([n, t]) => `  ${n}: ${t},`).join('\n')}\n}\n`;
  return {
    structName,
    fields: entries,
    byteSize,
    wgsl,
    write(view, offset, values) {
      for (let i = 0; i < entries.length; i++) {
        const [name, type] = entries[i];
        const v = values[name];
        if (typeof v !== 'number' || Number.isNaN(v)) throw new Error(`${structName}.${name}: expected a number, got ${v}`);
        const o = offset + 4 * i;
        if (type === 'f32') view.setFloat32(o, v, true);
        else if (type === 'u32') view.setUint32(o, v >>> 0, true);
        else view.setInt32(o, v | 0, true);
      }
    },
  };
}
