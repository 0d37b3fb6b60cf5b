/**
 * Builds ONNX models with protobufjs from the official schema (`router/onnx.proto`, verbatim from
 * onnx/onnx, Apache-2.0). Node only (reads the schema from disk); the runtime side never needs it —
 * onnxruntime-web reads the bytes this writes.
 *
 *   const g = new GraphBuilder('encoder');
 *   const ids = g.input('ids', 'int64', ['batch', 'len']);
 *   const w = g.init('W', Float32Array, [B, D]);
 *   g.output(g.node('Gather', [w, ids]), 'float', ['batch', 'len', D]);
 *   const bytes = g.toModel({ opset: 17 });
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

let root: protobuf.Root | undefined;
function schema(): protobuf.Root {
  if (!root) {
    const text = readFileSync(fileURLToPath(new URL('./onnx.proto', import.meta.url)), 'utf8');
    root = protobuf.parse(text, { keepCase: true }).root;
  }
  return root;
}

/** TensorProto.DataType values used here. */
export const DT = { float: 1, int32: 6, int64: 7, bool: 9 } as const;
export type ElemType = keyof typeof DT;
export type Dim = number | string;

type Attr = number | number[] | string | { tensor: Record<string, unknown> };

export class GraphBuilder {
  private nodes: Record<string, unknown>[] = [];
  private inits: Record<string, unknown>[] = [];
  private inputs: Record<string, unknown>[] = [];
  private outputs: Record<string, unknown>[] = [];
  private n = 0;
  constructor(readonly name: string) {}

  private valueInfo(name: string, elem: ElemType, shape: Dim[]) {
    return {
      name,
      type: { tensor_type: { elem_type: DT[elem], shape: { dim: shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } },
    };
  }

  input(name: string, elem: ElemType, shape: Dim[]): string {
    this.inputs.push(this.valueInfo(name, elem, shape));
    return name;
  }

  output(value: string, elem: ElemType, shape: Dim[], name = value): string {
    if (name !== value) this.nodes.push({ op_type: 'Identity', input: [value], output: [name], name: `n${this.n++}` });
    this.outputs.push(this.valueInfo(name, elem, shape));
    return name;
  }

  /** An initializer (weight). float32/int32 as raw little-endian bytes; int64 as int64_data. */
  init(name: string, data: Float32Array | Int32Array | number[], dims: number[], elem: ElemType = 'float'): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (data.length !== count) throw new Error(`initializer ${name}: ${data.length} values for shape [${dims}]`);
    const t: Record<string, unknown> = { name, dims, data_type: DT[elem] };
    if (elem === 'float') {
      const f = data instanceof Float32Array ? data : Float32Array.from(data);
      t.raw_data = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
    } else if (elem === 'int64') t.int64_data = Array.from(data, (v) => v);
    else if (elem === 'int32') {
      const a = data instanceof Int32Array ? data : Int32Array.from(data);
      t.raw_data = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    }
    else throw new Error(`initializer ${name}: unsupported type ${elem}`);
    this.inits.push(t);
    return name;
  }

  /** Adds a node; returns its first output's name (more with `outputs`). */
  node(op: string, inputs: string[], attrs: Record<string, Attr> = {}, outputs = 1): string {
    const id = `n${this.n++}`;
    const outs = Array.from({ length: outputs }, (_, i) => `${id}_${op}_${i}`);
    const attribute = Object.entries(attrs).map(([name, v]) => {
      if (typeof v === 'string') return { name, type: 3, s: new TextEncoder().encode(v) };
      if (Array.isArray(v)) return { name, type: 7, ints: v.map((x) => x) };
      if (typeof v === 'number')
        return Number.isInteger(v) && !Object.is(v, -0) && !attrFloat.has(name)
          ? { name, type: 2, i: v }
          : { name, type: 1, f: v };
      return { name, type: 4, t: v.tensor };
    });
    this.nodes.push({ op_type: op, input: inputs, output: outs, name: id, attribute });
    return outs[0];
  }

  nodeOutputs(op: string, inputs: string[], attrs: Record<string, Attr>, outputs: number): string[] {
    const first = this.node(op, inputs, attrs, outputs);
    const base = first.slice(0, -2);
    return Array.from({ length: outputs }, (_, i) => `${base}_${i}`);
  }

  /** A constant int64 vector as an initializer (shapes, axes). */
  ints(values: number[]): string {
    return this.init(`c${this.n++}`, values, [values.length], 'int64');
  }

  /** A scalar float constant. */
  scalar(v: number): string {
    return this.init(`c${this.n++}`, [v], [], 'float');
  }

  toModel(opts: { opset?: number; producer?: string; docString?: string; metadata?: Record<string, string> } = {}): Uint8Array {
    const Model = schema().lookupType('onnx.ModelProto');
    const msg = {
      ir_version: 8,
      producer_name: opts.producer ?? 'lorafleet',
      doc_string: opts.docString,
      opset_import: [{ domain: '', version: opts.opset ?? 17 }],
      metadata_props: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: { name: this.name, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs },
    };
    const err = Model.verify(msg);
    if (err) throw new Error(`ONNX model ${this.name}: ${err}`);
    return Model.encode(Model.fromObject(msg)).finish();
  }
}

/** Attributes that ONNX defines as float even when given an integral value. */
const attrFloat = new Set(['epsilon', 'alpha', 'beta', 'gamma']);

/** Reads metadata_props of an ONNX model (used to find an embedded encoder's feature spec). */
export function readOnnxMetadata(bytes: Uint8Array): Record<string, string> {
  const Model = schema().lookupType('onnx.ModelProto');
  const m = Model.toObject(Model.decode(bytes)) as { metadata_props?: { key: string; value: string }[] };
  return Object.fromEntries((m.metadata_props ?? []).map((p) => [p.key, p.value]));
}
