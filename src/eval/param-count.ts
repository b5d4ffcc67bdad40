// Parameter counts without building the model: a decomposition model's size follows from its
// plain backbone's non-depthwise convolutions (each carries T rank-r experts) and its heads, so
// `lorkd params` and the memory estimate of a run never allocate T experts to count them.
import { Conv2d } from '../nn/conv.js';
import { createModel } from '../models/registry.js';
import { traceLayers } from './complexity.js';

export interface BackboneShape {
  /** Parameters of the plain model (with a head of 2 classes). */
  params: number;
  numFeatures: number;
  /** Non-depthwise (groups 1) convolutions: the ones that carry experts. */
  convs: { inChannels: number; outChannels: number; kernel: number }[];
  /** Convolution output elements of one image at 32x32. */
  convOutputs32: number;
}

const shapes = new Map<string, BackboneShape>();

/** The shape of a registered backbone (built once at its own small size, then cached). */
export function backboneShape(model: string): BackboneShape {
  let s = shapes.get(model);
  if (!s) {
    const m = createModel(model, { numClasses: 2 });
    try {
      const convs = m
        .namedModules()
        .map(([, c]) => c)
        .filter((c): c is Conv2d => c instanceof Conv2d && c.groups === 1)
        .map((c) => ({ inChannels: c.inChannels, outChannels: c.outChannels, kernel: c.kernelSize[0] }));
      const convOutputs32 = traceLayers(m, [3, 32, 32]).filter((c) => c.kind === 'conv').reduce((a, c) => a + c.outPixels * c.outChannels, 0);
      s = { params: m.numParameters(), numFeatures: m.numFeatures, convs, convOutputs32 };
    } finally {
      m.dispose();
    }
    shapes.set(model, s);
  }
  return s;
}

/** Parameters of T rank-r experts on every non-depthwise conv: A (r k x Cin k) and B (Cout k x r k) per task. */
export function expertParams(shape: BackboneShape, tasks: number, rank: number): number {
  return tasks * shape.convs.reduce((a, c) => a + rank * c.kernel * c.kernel * (c.inChannels + c.outChannels), 0);
}

/** The ranks of `tasks` tasks: one rank for all, or one per task. */
export const taskRanks = (tasks: number, rank: number | readonly number[]): number[] => (typeof rank === 'number' ? new Array<number>(tasks).fill(rank) : rank.slice());

/** Parameters of a decomposition model: backbone without its head, the experts, one head per task. */
export function decompositionParams(shape: BackboneShape, classes: readonly number[], rank: number | readonly number[]): number {
  const head = (n: number) => n * (shape.numFeatures + 1);
  const experts = taskRanks(classes.length, rank).reduce((a, r) => a + expertParams(shape, 1, r), 0);
  return shape.params - head(2) + experts + classes.reduce((a, n) => a + head(n), 0);
}

