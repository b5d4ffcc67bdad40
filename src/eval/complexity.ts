// Params and FLOPs, counted the paper's way (Table 1, Table 4).
// - Params(training): backbone + all experts, without heads.
// - Params(deployment): one fused expert = a plain backbone, without head.
// - FLOPs are multiply-accumulates for one image, counted as ptflops does (the usual "0.15 G" of
//   ShuffleNetV2 1.0x at 224): convolutions and linear layers, plus BatchNorm (2 per output
//   element), ReLU (1 per element) and max-pooling (1 per input element); for transformers,
//   LayerNorm (2 per element), GELU (1 per element) and self-attention: the input projection
//   (3 D^2 per token) and the two attention matmuls (Q K^T and A V: 2 L^2 D per image), the output
//   projection being a Linear. A Linear counts once per token. FLOPs(training) adds each sample's own low-rank
//   path: r (Cin + Cout) per output pixel for a 1x1 expert, the full-kernel delta
//   (Cout Cin k k per output pixel) for the k > 1 stem.
import { Conv2d } from '../nn/conv.js';
import { Linear } from '../nn/linear.js';
import { BatchNorm2d, ReLU, MaxPool2d, LayerNorm, GELU, MultiheadAttention } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { createModel } from '../models/registry.js';
import { backboneShape, decompositionParams, expertParams, taskRanks } from './param-count.js';
import { type Tensor, zeros, noGrad, tidy } from '../tensor/index.js';

export interface LayerCall {
  name: string;
  kind: 'conv' | 'linear' | 'attention' | 'elementwise';
  macs: number;
  /** For convs: output pixels, channels, kernel, groups. */
  outPixels: number;
  inChannels: number;
  outChannels: number;
  kernel: number;
  groups: number;
}

/** Runs one image through `model` and records every Conv2d and Linear call with its MACs (forward hooks on the model's layers). */
export function traceLayers(model: Module, input: number[]): LayerCall[] {
  const calls: LayerCall[] = [];
  const handles: { remove(): void }[] = [];
  const costs: [abstract new (...a: never[]) => Module, (m: Module, x: Tensor, y: Tensor) => Omit<LayerCall, 'name'>][] = [];
  // cost(module, input, output) gives a layer kind's entry.
  function record<M extends Module>(C: abstract new (...a: never[]) => M, cost: (m: M, x: Tensor, y: Tensor) => Omit<LayerCall, 'name'>): void {
    costs.push([C, cost as (m: Module, x: Tensor, y: Tensor) => Omit<LayerCall, 'name'>]);
  }
  const elementwise = (macs: number): Omit<LayerCall, 'name'> => ({ kind: 'elementwise', macs, outPixels: 0, inChannels: 0, outChannels: 0, kernel: 0, groups: 1 });
  record(Conv2d, (c, _x, y) => {
    const outPixels = y.size(2) * y.size(3);
    const macs = outPixels * c.outChannels * (c.inChannels / c.groups) * c.kernelSize[0] * c.kernelSize[1];
    return { kind: 'conv', macs, outPixels, inChannels: c.inChannels, outChannels: c.outChannels, kernel: c.kernelSize[0], groups: c.groups };
  });
  // A Linear over tokens [N, L, in] runs once per token (outPixels = L).
  record(Linear, (l, _x, y) => {
    const outPixels = y.numel / (y.size(0) * l.outFeatures);
    return { kind: 'linear', macs: outPixels * l.inFeatures * l.outFeatures, outPixels, inChannels: l.inFeatures, outChannels: l.outFeatures, kernel: 1, groups: 1 };
  });
  record(BatchNorm2d, (_m, _x, y) => elementwise(2 * y.numel));
  record(ReLU, (_m, _x, y) => elementwise(y.numel));
  record(MaxPool2d, (_m, x) => elementwise(x.numel));
  record(LayerNorm, (_m, _x, y) => elementwise(2 * y.numel));
  record(GELU, (_m, _x, y) => elementwise(y.numel));
  // The input projection and Q K^T, A V (its out_proj is a Linear, counted by its own hook).
  record(MultiheadAttention, (a, x) => {
    const l = x.size(1);
    return { kind: 'attention', macs: 3 * l * a.dim * a.dim + 2 * l * l * a.dim, outPixels: l, inChannels: a.dim, outChannels: a.dim, kernel: 1, groups: 1 };
  });
  for (const [name, m] of model.namedModules()) {
    const cost = costs.find(([C]) => m instanceof C)?.[1];
    if (cost) handles.push(m.registerForwardHook((mod, inputs, y) => calls.push({ name, ...cost(mod, inputs[0] as Tensor, y) })));
  }
  const wasTraining = model.training;
  try {
    model.eval();
    noGrad(() => tidy(() => void model.forward(zeros([1, ...input]))));
  } finally {
    handles.forEach((h) => h.remove());
    model.train(wasTraining);
  }
  return calls;
}

/** One task's share: its rank, its experts' parameters and the FLOPs of one of its images in training. */
export interface TaskComplexity {
  name: string;
  rank: number;
  params_experts: number;
  flops_training: number;
}

export interface ComplexityReport {
  model: string;
  tasks: number;
  /** The largest rank (every task's when they are equal). */
  rank: number;
  /** Per task, when the ranks are given per task (names task0, task1, ... unless given); empty for one rank. */
  per_task: TaskComplexity[];
  input: number;
  params_training: number;
  params_training_with_heads: number;
  params_deployment: number;
  params_deployment_with_head: number;
  flops_training: number;
  flops_deployment: number;
}

/** Counts a decomposition model with `tasks` tasks of `classes` classes each, at rank r (or a rank per task, named by `names`). */
export function complexity(o: { model?: string; tasks: number; rank: number | readonly number[]; names?: readonly string[]; input?: number; classes?: number[] }): ComplexityReport {
  const model = o.model ?? 'shufflenet_v2_x1_0';
  const input = o.input ?? 224;
  const classes = o.classes ?? new Array<number>(o.tasks).fill(2);
  // Counted arithmetically (param-count.ts): T experts are never allocated to be counted.
  const shape = backboneShape(model);
  const all = decompositionParams(shape, classes, o.rank);
  const heads = classes.reduce((a, n) => a + n * (shape.numFeatures + 1), 0);
  const plain = createModel(model, { numClasses: classes[0] ?? 2 });
  try {
    const count = (ps: [string, Tensor][]) => ps.reduce((s, [, p]) => s + p.numel, 0);
    const fc = count(plain.namedParameters().filter(([n]) => n.startsWith('fc.')));
    const calls = traceLayers(plain, [3, input, input]);
    const deployMacs = calls.reduce((s, c) => s + c.macs, 0);
    const expertMacs = (r: number) => calls
      .filter((c) => c.kind === 'conv' && c.groups === 1)
      .reduce((s, c) => s + (c.kernel === 1 ? r * (c.inChannels + c.outChannels) : c.outChannels * c.inChannels * c.kernel * c.kernel) * c.outPixels, 0);
    const ranks = taskRanks(o.tasks, o.rank);
    const rank = ranks.reduce((a, r) => Math.max(a, r), 0);
    // Per task only where ranks are per task: a uniform rank over a million tasks lists nothing.
    const per_task = typeof o.rank === 'number' ? [] : ranks.map((r, t) => ({ name: o.names?.[t] ?? `task${t}`, rank: r, params_experts: expertParams(shape, 1, r), flops_training: deployMacs + expertMacs(r) }));
    return {
      model, tasks: o.tasks, rank, per_task, input,
      params_training: all - heads,
      params_training_with_heads: all,
      params_deployment: plain.numParameters() - fc,
      params_deployment_with_head: plain.numParameters(),
      flops_training: deployMacs + expertMacs(rank),
      flops_deployment: deployMacs,
    };
  } finally {
    plain.dispose();
  }
}
