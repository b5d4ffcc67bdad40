// Walks lorkd's module tree (src/nn, src/models) and emits the same computation as ONNX nodes, in
// eval mode: every BatchNorm2d that follows a Conv2d is folded into it, ShuffleNetV2's split /
// concat / channel shuffle become Split / Concat / Reshape-Transpose-Reshape, ResNet's residual
// adds become Add. The spatial size is static (the input is S x S); only the batch is dynamic.
import { UserError } from '../../tensor/errors.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Module } from '../../nn/module.js';
import { Conv2d } from '../../nn/conv.js';
import { BatchNorm2d } from '../../nn/batchnorm.js';
import { ReLU, MaxPool2d, AdaptiveAvgPool2d, Identity, Dropout, Flatten } from '../../nn/basic.js';
import { Sequential } from '../../nn/sequential.js';
import { InvertedResidual, ShuffleNetV2 } from '../../models/shufflenetv2.js';
import { BasicBlock, Bottleneck, ResNet } from '../../models/resnet.js';
import type { ImageClassifier } from '../../models/classifier.js';
import type { GraphBuilder, Value } from './graph.js';

const f32 = (t: Tensor): Float32Array => Float32Array.from(t.toArray() as ArrayLike<number>);
const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);
const outSize = (n: number, k: number, s: number, p: number, d: number): number => Math.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1;

/** BatchNorm2d in eval mode as y = x * scale + shift (float64). */
function bnAffine(bn: BatchNorm2d): { scale: Float64Array; shift: Float64Array } {
  const c = bn.numFeatures;
  const mean = bn.runningMean ? f32(bn.runningMean) : new Float32Array(c);
  const v = bn.runningVar ? f32(bn.runningVar) : new Float32Array(c).fill(1);
  const w = bn.weight ? f32(bn.weight) : new Float32Array(c).fill(1);
  const b = bn.bias ? f32(bn.bias) : new Float32Array(c);
  if (!bn.trackRunningStats) throw new UserError('ONNX export: BatchNorm2d without running statistics cannot be exported (it normalises with batch statistics)');
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  for (let i = 0; i < c; i++) {
    scale[i] = w[i]! / Math.sqrt(v[i]! + bn.eps);
    shift[i] = b[i]! - mean[i]! * scale[i]!;
  }
  return { scale, shift };
}

/** Conv2d (optionally followed by a BatchNorm2d, folded in: W' = W * s, b' = b * s + t) as one Conv node. */
function conv(g: GraphBuilder, c: Conv2d, bn: BatchNorm2d | null, x: Value, name: string): Value {
  if (x.shape[0] !== c.inChannels) throw new UserError(`ONNX export: ${name} expects ${c.inChannels} channels, gets ${x.shape[0]}`);
  const w = f32(c.weight);
  const b = c.bias ? f32(c.bias) : new Float32Array(c.outChannels);
  if (bn) {
    const { scale, shift } = bnAffine(bn);
    const per = w.length / c.outChannels;
    for (let o = 0; o < c.outChannels; o++) {
      for (let j = 0; j < per; j++) w[o * per + j] = w[o * per + j]! * scale[o]!;
      b[o] = b[o]! * scale[o]! + shift[o]!;
    }
  }
  const [kh, kw] = c.kernelSize;
  const wName = g.float(`${name}.weight`, w, [c.outChannels, c.inChannels / c.groups, kh, kw]);
  const bName = g.float(`${name}.bias`, b, [c.outChannels]);
  const [, h, wd] = x.shape as [number, number, number];
  const out = g.op('Conv', [x.name, wName, bName], name, {
    kernel_shape: [kh, kw],
    strides: c.stride,
    pads: [c.padding[0], c.padding[1], c.padding[0], c.padding[1]],
    dilations: c.dilation,
    group: c.groups,
  });
  return {
    name: out,
    shape: [c.outChannels, outSize(h, kh, c.stride[0], c.padding[0], c.dilation[0]), outSize(wd, kw, c.stride[1], c.padding[1], c.dilation[1])],
  };
}

/** A BatchNorm2d on its own (not after a conv): Mul and Add by per-channel constants. */
function batchNorm(g: GraphBuilder, bn: BatchNorm2d, x: Value, name: string): Value {
  const { scale, shift } = bnAffine(bn);
  const dims = [bn.numFeatures, 1, 1];
  const y = g.op('Mul', [x.name, g.float(`${name}.scale`, Float32Array.from(scale), dims)], name);
  return { name: g.op('Add', [y, g.float(`${name}.shift`, Float32Array.from(shift), dims)], name), shape: x.shape };
}

function maxPool(g: GraphBuilder, m: MaxPool2d, x: Value, name: string): Value {
  const [kh, kw] = pair(m.kernelSize);
  const [sh, sw] = pair(m.options.stride ?? m.kernelSize);
  const [ph, pw] = pair(m.options.padding ?? 0);
  const [dh, dw] = pair(m.options.dilation ?? 1);
  if (m.options.ceilMode) throw new UserError(`ONNX export: ${name}: MaxPool2d with ceilMode is not supported`);
  const [c, h, w] = x.shape as [number, number, number];
  const out = g.op('MaxPool', [x.name], name, { kernel_shape: [kh, kw], strides: [sh, sw], pads: [ph, pw, ph, pw], dilations: [dh, dw] });
  return { name: out, shape: [c, outSize(h, kh, sh, ph, dh), outSize(w, kw, sw, pw, dw)] };
}

/** Channel shuffle of `groups` groups: Reshape [N, g, C/g, H, W], Transpose(0, 2, 1, 3, 4), Reshape back. */
function channelShuffle(g: GraphBuilder, x: Value, groups: number, name: string): Value {
  const [c, h, w] = x.shape as [number, number, number];
  const a = g.op('Reshape', [x.name, g.ints([-1, groups, c / groups, h, w])], `${name}.shuffle`);
  const t = g.op('Transpose', [a], `${name}.shuffle`, { perm: [0, 2, 1, 3, 4] });
  return { name: g.op('Reshape', [t, g.ints([-1, c, h, w])], `${name}.shuffle`), shape: x.shape };
}

const concat = (g: GraphBuilder, a: Value, b: Value, name: string): Value => ({
  name: g.op('Concat', [a.name, b.name], name, { axis: 1 }),
  shape: [a.shape[0]! + b.shape[0]!, ...a.shape.slice(1)],
});

function invertedResidual(g: GraphBuilder, m: InvertedResidual, x: Value, name: string): Value {
  let out: Value;
  if (m.stride === 1) {
    const half = x.shape[0]! / 2;
    const [x1, x2] = g.node('Split', [x.name, g.ints([half, half])], name, { axis: 1 }, 2) as [string, string];
    const shape = [half, ...x.shape.slice(1)];
    out = concat(g, { name: x1, shape }, emitModule(g, m.branch2, { name: x2, shape }, `${name}.branch2`), name);
  } else {
    out = concat(g, emitModule(g, m.branch1, x, `${name}.branch1`), emitModule(g, m.branch2, x, `${name}.branch2`), name);
  }
  return channelShuffle(g, out, 2, name);
}

/** The order in which a residual block applies its children (the block's `residual`). */
const RESIDUAL_ORDER = new Map<Function, string[]>([
  [BasicBlock, ['conv1', 'bn1', 'relu', 'conv2', 'bn2']],
  [Bottleneck, ['conv1', 'bn1', 'relu', 'conv2', 'bn2', 'relu', 'conv3', 'bn3']],
]);

function residualBlock(g: GraphBuilder, m: BasicBlock | Bottleneck, x: Value, name: string): Value {
  const order = RESIDUAL_ORDER.get(m.constructor)!;
  const y = chain(g, order.map((k) => [`${name}.${k}`, m.getModule(k)]), x);
  const identity = m.hasModule('downsample') ? emitModule(g, m.getModule('downsample'), x, `${name}.downsample`) : x;
  if (identity.shape.join() !== y.shape.join()) throw new UserError(`ONNX export: ${name}: residual shapes differ`);
  const sum = g.op('Add', [y.name, identity.name], name);
  return { name: g.op('Relu', [sum], name), shape: y.shape };
}

/** Runs modules in order, folding each BatchNorm2d that directly follows a Conv2d into it. */
export function chain(g: GraphBuilder, mods: [string, Module][], x: Value): Value {
  let y = x;
  for (let i = 0; i < mods.length; i++) {
    const [name, m] = mods[i]!;
    const next = mods[i + 1]?.[1];
    if (m instanceof Conv2d && next instanceof BatchNorm2d) {
      y = conv(g, m, next, y, name);
      i++;
    } else {
      y = emitModule(g, m, y, name);
    }
  }
  return y;
}

/** Emits module `m` (at dotted path `name`) applied to `x`. Unknown module kinds are a UserError naming them. */
export function emitModule(g: GraphBuilder, m: Module, x: Value, name: string): Value {
  if (m instanceof Sequential) return chain(g, m.namedChildren().map(([k, c]) => [name ? `${name}.${k}` : k, c]), x);
  if (m instanceof Conv2d) return conv(g, m, null, x, name);
  if (m instanceof BatchNorm2d) return batchNorm(g, m, x, name);
  if (m instanceof ReLU) return { name: g.op('Relu', [x.name], name), shape: x.shape };
  if (m instanceof MaxPool2d) return maxPool(g, m, x, name);
  if (m instanceof Identity || m instanceof Dropout) return x;
  if (m instanceof InvertedResidual) return invertedResidual(g, m, x, name);
  if (m instanceof BasicBlock || m instanceof Bottleneck) return residualBlock(g, m, x, name);
  if (m instanceof AdaptiveAvgPool2d || m instanceof Flatten) {
    throw new UserError(`ONNX export: ${name}: ${m.constructor.name} is only supported as the global pooling before the head`);
  }
  throw new UserError(`ONNX export: ${name || 'the model'}: ${m.constructor.name} has no ONNX form in lorkd`);
}

/** Children that compute the last conv block's feature map, in order, for each architecture family. */
export function featureModules(model: ImageClassifier, prefix = ''): [string, Module][] {
  let names: string[];
  if (model instanceof ShuffleNetV2) names = ['conv1', 'maxpool', 'stage2', 'stage3', 'stage4', 'conv5'];
  else if (model instanceof ResNet) names = ['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4'];
  else throw new UserError(`ONNX export: ${model.constructor.name} is not supported (ShuffleNetV2 and ResNet are)`);
  return names.map((k) => [prefix ? `${prefix}.${k}` : k, model.getModule(k)]);
}

/** The feature map [K, h, w] of the last conv block of `model` (a ShuffleNetV2 or a ResNet) on `x`; node names start with `prefix`. */
export function emitFeatureMap(g: GraphBuilder, model: ImageClassifier, x: Value, prefix = ''): Value {
  return chain(g, featureModules(model, prefix), x);
}
