// A small ONNX graph builder: nodes, initializers and value shapes, turned into a ModelProto object
// for proto.ts. Values carry their shape without the batch dimension (the batch is dynamic, "N").
import { AttributeType, DataType } from './proto.js';

/** A value of the graph: its name and its shape after the batch dimension (e.g. [C, H, W]). */
export interface Value {
  name: string;
  shape: number[];
}

/** An attribute value: integers and integer lists are INT/INTS, `{ f }` a FLOAT, a string a STRING. */
export type Attr = number | number[] | string | { f: number };

type Obj = Record<string, unknown>;

function attribute(name: string, v: Attr): Obj {
  if (typeof v === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: AttributeType.INTS, ints: v };
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`ONNX attribute ${name}: ${v} is not an integer (use { f })`);
    return { name, type: AttributeType.INT, i: v };
  }
  return { name, type: AttributeType.FLOAT, f: v.f };
}

const bytesOf = (a: Float32Array | BigInt64Array): Uint8Array => new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));

/** Builds one graph; names are unique (a suffix is added to a repeated name). */
export class GraphBuilder {
  readonly #nodes: Obj[] = [];
  readonly #initializers: Obj[] = [];
  readonly #names = new Set<string>();
  readonly #ints = new Map<string, string>();

  /** A fresh value name derived from `base`. */
  fresh(base: string): string {
    let name = base;
    for (let k = 1; this.#names.has(name); k++) name = `${base}_${k}`;
    this.#names.add(name);
    return name;
  }

  /** A float32 initializer of shape `dims`; returns its name. */
  float(base: string, data: Float32Array, dims: number[]): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`ONNX initializer ${base}: ${data.length} values for shape [${dims.join(', ')}]`);
    const name = this.fresh(base);
    this.#initializers.push({ name, data_type: DataType.FLOAT, dims, raw_data: bytesOf(data) });
    return name;
  }

  /** A 1-D int64 initializer (shapes, axes, split sizes), shared between nodes that use the same values. */
  ints(values: number[]): string {
    const key = values.join(',');
    const have = this.#ints.get(key);
    if (have) return have;
    const name = this.fresh(`const_i64_${values.map((v) => (v < 0 ? `m${-v}` : v)).join('_') || 'empty'}`);
    this.#initializers.push({ name, data_type: DataType.INT64, dims: [values.length], raw_data: bytesOf(BigInt64Array.from(values, BigInt)) });
    this.#ints.set(key, name);
    return name;
  }

  /** Adds a node; returns the names of its `outputs` fresh outputs (derived from `name`). */
  node(op: string, inputs: string[], name: string, attrs: Record<string, Attr> = {}, outputs = 1): string[] {
    const node = this.fresh(`${name}/${op}`);
    const outs = Array.from({ length: outputs }, (_, k) => this.fresh(outputs === 1 ? `${name}/${op}_out` : `${name}/${op}_out${k}`));
    this.#nodes.push({ op_type: op, name: node, input: inputs, output: outs, attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) });
    return outs;
  }

  /** node() with a single output. */
  op(op: string, inputs: string[], name: string, attrs: Record<string, Attr> = {}): string {
    return this.node(op, inputs, name, attrs)[0]!;
  }

  /**
   * Renames the output `from` of the last node that produced it to `to` (the graph's declared
   * output names).
   */
  rename(from: string, to: string): void {
    if (this.#names.has(to)) throw new Error(`ONNX value name ${to} is taken`);
    this.#names.add(to);
    for (const n of this.#nodes) {
      n.input = (n.input as string[]).map((s) => (s === from ? to : s));
      n.output = (n.output as string[]).map((s) => (s === from ? to : s));
    }
  }

  /** The GraphProto object: `inputs`/`outputs` are float32 values with a dynamic batch "N" first. */
  graph(name: string, inputs: Value[], outputs: Value[]): Obj {
    const info = (v: Value): Obj => ({
      name: v.name,
      type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_param: 'N' }, ...v.shape.map((d) => ({ dim_value: d }))] } } },
    });
    return { name, node: this.#nodes, initializer: this.#initializers, input: inputs.map(info), output: outputs.map(info) };
  }
}
