// A VisionTransformer (src/models/vit.ts) as ONNX opset-13 nodes, up to its pooled feature (the
// class token's row after the final LayerNorm). Opset 13 has neither LayerNormalization nor Gelu,
// so they are spelled out: LayerNorm as ReduceMean / Sub / Mul / ReduceMean / Add / Sqrt / Div and
// the affine Mul / Add; GELU as 0.5 x (1 + Erf(x / sqrt 2)), the exact form. The position embedding
// is resized to the input's grid here, once (the input side is static; the batch is dynamic).
import type { Tensor } from '../../tensor/tensor.js';
import { UserError } from '../../tensor/errors.js';
import type { Linear } from '../../nn/linear.js';
import type { LayerNorm } from '../../nn/layernorm.js';
import type { MultiheadAttention } from '../../nn/attention.js';
import type { MLPBlock } from '../../nn/mlp.js';
import { resizePositionEmbedding } from '../../nn/position-embedding.js';
import type { VisionTransformer, EncoderBlock } from '../../models/vit.js';
import type { GraphBuilder, Value } from './graph.js';
import { emitModule } from './emit.js';

const f32 = (t: Tensor): Float32Array => Float32Array.from(t.toArray() as ArrayLike<number>);
const scalar = (g: GraphBuilder, name: string, v: number): string => g.float(name, Float32Array.of(v), []);

/** x W^T + b over the last axis, W given transposed as an initializer [in, out]. */
function linear(g: GraphBuilder, weight: Tensor, bias: Tensor | null, x: string, name: string): string {
  const [out, inF] = weight.shape as [number, number];
  const w = g.float(`${name}.weight`, f32(weight.t().contiguous()), [inF, out]);
  const y = g.op('MatMul', [x, w], name);
  return bias ? g.op('Add', [y, g.float(`${name}.bias`, f32(bias), [out])], name) : y;
}
const linearModule = (g: GraphBuilder, l: Linear, x: string, name: string): string => linear(g, l.weight, l.bias, x, name);

function layerNorm(g: GraphBuilder, ln: LayerNorm, x: string, name: string): string {
  if (ln.normalizedShape.length !== 1) throw new UserError(`ONNX export: ${name}: only a LayerNorm over the last axis is supported`);
  const d = ln.normalizedShape[0]!;
  const centred = g.op('Sub', [x, g.op('ReduceMean', [x], name, { axes: [-1], keepdims: 1 })], name);
  const variance = g.op('ReduceMean', [g.op('Mul', [centred, centred], name)], name, { axes: [-1], keepdims: 1 });
  const std = g.op('Sqrt', [g.op('Add', [variance, scalar(g, `${name}.eps`, ln.eps)], name)], name);
  let y = g.op('Div', [centred, std], name);
  if (ln.weight) y = g.op('Mul', [y, g.float(`${name}.weight`, f32(ln.weight), [d])], name);
  if (ln.bias) y = g.op('Add', [y, g.float(`${name}.bias`, f32(ln.bias), [d])], name);
  return y;
}

/** Self-attention of tokens [N, L, D]: in-projection, per-head softmax(Q K^T / sqrt d) V, out-projection. */
function attention(g: GraphBuilder, a: MultiheadAttention, x: string, l: number, name: string): string {
  const { dim, numHeads: h, headDim: d } = a;
  const qkv = linear(g, a.inProjWeight, a.inProjBias, x, `${name}.in_proj`);
  const [q, k, v] = g.node('Split', [qkv, g.ints([dim, dim, dim])], name, { axis: -1 }, 3).map((t) => g.op('Reshape', [t, g.ints([-1, l, h, d])], name)) as [string, string, string];
  const qh = g.op('Mul', [g.op('Transpose', [q], name, { perm: [0, 2, 1, 3] }), scalar(g, `${name}.scale`, 1 / Math.sqrt(d))], name);
  const kt = g.op('Transpose', [k], name, { perm: [0, 2, 3, 1] });
  const vh = g.op('Transpose', [v], name, { perm: [0, 2, 1, 3] });
  const attn = g.op('Softmax', [g.op('MatMul', [qh, kt], name)], name, { axis: -1 });
  const y = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [attn, vh], name)], name, { perm: [0, 2, 1, 3] }), g.ints([-1, l, dim])], name);
  return linearModule(g, a.outProj, y, `${name}.out_proj`);
}

/** Linear, exact GELU, Linear (the dropouts are identities in eval mode). */
function mlp(g: GraphBuilder, m: MLPBlock, x: string, name: string): string {
  const y = linearModule(g, m.at<Linear>(0), x, `${name}.0`);
  const erf = g.op('Erf', [g.op('Mul', [y, scalar(g, `${name}.1.rsqrt2`, Math.SQRT1_2)], `${name}.1`)], `${name}.1`);
  const gelu = g.op('Mul', [g.op('Mul', [y, scalar(g, `${name}.1.half`, 0.5)], `${name}.1`), g.op('Add', [erf, scalar(g, `${name}.1.one`, 1)], `${name}.1`)], `${name}.1`);
  return linearModule(g, m.at<Linear>(3), gelu, `${name}.3`);
}

function block(g: GraphBuilder, b: EncoderBlock, x: string, l: number, name: string): string {
  const y = g.op('Add', [attention(g, b.getModule('self_attention'), layerNorm(g, b.getModule('ln_1'), x, `${name}.ln_1`), l, `${name}.self_attention`), x], name);
  return g.op('Add', [mlp(g, b.getModule('mlp'), layerNorm(g, b.getModule('ln_2'), y, `${name}.ln_2`), `${name}.mlp`), y], name);
}

/** The pooled feature [D] of a VisionTransformer on the image `x` [C, S, S]: patch embedding, class token, encoder, final LayerNorm, row 0. */
export function emitViTFeatures(g: GraphBuilder, model: VisionTransformer, x: Value): Value {
  const { patch, dim } = model.config;
  const side = x.shape[1]!;
  if (x.shape[2] !== side || side % patch !== 0) throw new UserError(`ONNX export: a ViT needs a square input whose side is a multiple of the patch ${patch}, got ${x.shape.slice(1).join('x')}`);
  const grid = side / patch;
  const l = 1 + grid * grid;
  const map = emitModule(g, model.getModule('conv_proj'), x, 'conv_proj');
  const tokens = g.op('Transpose', [g.op('Reshape', [map.name, g.ints([-1, dim, grid * grid])], 'tokens')], 'tokens', { perm: [0, 2, 1] });
  // The class token expanded to [N, 1, D]: N read from the input's shape.
  const n = g.op('Slice', [g.op('Shape', [x.name], 'class_token'), g.ints([0]), g.ints([1])], 'class_token');
  const cls = g.op('Expand', [g.float('class_token', f32(model.classToken), [1, 1, dim]), g.op('Concat', [n, g.ints([1, dim])], 'class_token', { axis: 0 })], 'class_token');
  const encoder = model.getModule('encoder');
  const pos = resizePositionEmbedding(encoder.getParameter('pos_embedding'), grid);
  let y = g.op('Add', [g.op('Concat', [cls, tokens], 'tokens', { axis: 1 }), g.float('encoder.pos_embedding', f32(pos), [1, l, dim])], 'encoder');
  for (const [k, b] of encoder.getModule('layers').namedChildren()) y = block(g, b as EncoderBlock, y, l, `encoder.layers.${k}`);
  y = layerNorm(g, encoder.getModule('ln'), y, 'encoder.ln');
  return { name: g.op('Reshape', [g.op('Gather', [y, g.ints([0])], 'pool', { axis: 1 }), g.ints([-1, dim])], 'pool'), shape: [dim] };
}
