// ShuffleNetV2 (Ma et al., 2018) with torchvision's structure, so its state dict and its outputs
// match torchvision.models.shufflenet_v2_x*_* key for key.
import { Tensor as TensorClass, type Tensor } from '../tensor/tensor.js';
import { N } from '../tensor/ops-native.js';
import { cat } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import { UserError } from '../tensor/errors.js';
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { BatchNorm2d } from '../nn/batchnorm.js';
import { Linear } from '../nn/linear.js';
import { ReLU, MaxPool2d } from '../nn/basic.js';
import { Sequential } from '../nn/sequential.js';
import { ImageClassifier, runWith, type ModelOptions } from './classifier.js';

/**
 * Interleaves the channels of `groups` groups: view, transpose, contiguous, view. A channels_last
 * input stays channels_last (the shuffle is done on the N,H,W,C view of its memory).
 */
export function channelShuffle(x: Tensor, groups: number): Tensor {
  return tidy(() => {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    if (h * w > 1 && !x.isContiguous() && x.isContiguous('channels_last')) {
      return x
        .permute([0, 2, 3, 1])
        .view([n, h, w, groups, c / groups])
        .transpose(3, 4)
        .contiguous()
        .view([n, h, w, c])
        .permute([0, 3, 1, 2]);
    }
    return x
      .view([n, groups, c / groups, h, w])
      .transpose(1, 2)
      .contiguous()
      .view([n, c, h, w]);
  });
}

/**
 * channelShuffle(cat([a, b], 1), 2): the end of every unit. On channels_last float32 CPU inputs
 * this is one native copy into the interleaved output (the concatenation and the shuffle each
 * made a full copy): where neither input needs a gradient, the inference kernel; otherwise one
 * autograd function whose backward is the inverse copy (native/src/shuffle-grad.cc). Elsewhere
 * (NCHW, float64, bf16 under autocast, CUDA) the two ops.
 */
export function catShuffle(a: Tensor, b: Tensor): Tensor {
  const out = !a.requiresGrad && !b.requiresGrad ? N.catShuffle(a.handle, b.handle) : N.catShuffleGrad(a.handle, b.handle);
  if (out !== null) return TensorClass.wrap(out);
  return tidy(() => channelShuffle(cat([a, b], 1), 2));
}

const depthwise = (channels: number, stride: number): Conv2d =>
  new Conv2d(channels, channels, 3, { stride, padding: 1, groups: channels, bias: false });
const pointwise = (cin: number, cout: number): Conv2d => new Conv2d(cin, cout, 1, { bias: false });

/**
 * The ShuffleNetV2 unit. Stride 1: split the channels in two, transform one half (branch2) and
 * concatenate. Stride > 1: both branches see the whole input and halve the resolution. Either way,
 * a channel shuffle follows. branch1/branch2 keep torchvision's layer indices.
 */
export class InvertedResidual extends Module {
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly stride: number,
  ) {
    super();
    if (!(stride >= 1 && stride <= 3)) throw new UserError(`InvertedResidual: illegal stride ${stride}`);
    const f = outChannels / 2;
    if (!Number.isInteger(f)) throw new UserError(`InvertedResidual: outChannels must be even, got ${outChannels}`);
    if (stride === 1 && inChannels !== 2 * f) {
      throw new UserError(`InvertedResidual: with stride 1, inChannels (${inChannels}) must equal outChannels (${outChannels})`);
    }
    this.registerModule(
      'branch1',
      stride > 1
        ? new Sequential(depthwise(inChannels, stride), new BatchNorm2d(inChannels), pointwise(inChannels, f), new BatchNorm2d(f), new ReLU())
        : new Sequential(),
    );
    this.registerModule(
      'branch2',
      new Sequential(
        pointwise(stride > 1 ? inChannels : f, f),
        new BatchNorm2d(f),
        new ReLU(),
        depthwise(f, stride),
        new BatchNorm2d(f),
        pointwise(f, f),
        new BatchNorm2d(f),
        new ReLU(),
      ),
    );
  }

  get branch1(): Sequential {
    return this.getModule<Sequential>('branch1');
  }
  get branch2(): Sequential {
    return this.getModule<Sequential>('branch2');
  }

  /** `call`: per-call arguments for every layer (see ImageClassifier.forwardFeatures). */
  override forward(x: Tensor, ...call: unknown[]): Tensor {
    return tidy(() => {
      if (this.stride === 1) {
        const [x1, x2] = x.chunk(2, 1) as [Tensor, Tensor];
        return catShuffle(x1, runWith(this.branch2, x2, call));
      }
      return catShuffle(runWith(this.branch1, x, call), runWith(this.branch2, x, call));
    });
  }
}

/** Widths per variant: conv1, stage2, stage3, stage4, conv5 (torchvision's stages_out_channels). */
export const SHUFFLENET_V2_WIDTHS = {
  x0_5: [24, 48, 96, 192, 1024],
  x1_0: [24, 116, 232, 464, 1024],
  x1_5: [24, 176, 352, 704, 1024],
  x2_0: [24, 244, 488, 976, 2048],
} as const;
export type ShuffleNetV2Variant = keyof typeof SHUFFLENET_V2_WIDTHS;
/** Units per stage (stage2, stage3, stage4). */
export const SHUFFLENET_V2_REPEATS = [4, 8, 4] as const;

/**
 * ShuffleNetV2: conv1 (3x3 stride 2, BN, ReLU), maxpool, stage2..4, conv5 (1x1, BN, ReLU),
 * global average pooling, fc. Initialised with the layer defaults, as torchvision.
 */
export class ShuffleNetV2 extends ImageClassifier {
  readonly numFeatures: number;
  readonly widths: readonly number[];

  constructor(
    readonly variant: ShuffleNetV2Variant = 'x1_0',
    o: ModelOptions = {},
  ) {
    super();
    const widths = SHUFFLENET_V2_WIDTHS[variant];
    if (!widths) throw new UserError(`ShuffleNetV2: unknown variant "${variant}" (known: ${Object.keys(SHUFFLENET_V2_WIDTHS).join(', ')})`);
    this.widths = widths;
    let cin = o.inChannels ?? 3;
    this.registerModule('conv1', new Sequential(new Conv2d(cin, widths[0], 3, { stride: 2, padding: 1, bias: false }), new BatchNorm2d(widths[0]), new ReLU()));
    cin = widths[0];
    this.registerModule('maxpool', new MaxPool2d(3, { stride: 2, padding: 1 }));
    SHUFFLENET_V2_REPEATS.forEach((repeats, i) => {
      const cout = widths[i + 1]!;
      const stage = new Sequential(new InvertedResidual(cin, cout, 2));
      for (let r = 1; r < repeats; r++) stage.append(new InvertedResidual(cout, cout, 1));
      this.registerModule(`stage${i + 2}`, stage);
      cin = cout;
    });
    this.numFeatures = widths[4];
    this.registerModule('conv5', new Sequential(pointwise(cin, this.numFeatures), new BatchNorm2d(this.numFeatures), new ReLU()));
    this.registerModule('fc', new Linear(this.numFeatures, o.numClasses ?? 1000));
  }

  override forwardFeatures(x: Tensor, ...call: unknown[]): Tensor {
    return tidy(() => {
      let y = runWith(this.getModule('conv1'), x, call);
      y = this.getModule('maxpool').forward(y);
      for (const s of ['stage2', 'stage3', 'stage4', 'conv5']) y = runWith(this.getModule(s), y, call);
      return y.mean([2, 3]);
    });
  }
}
