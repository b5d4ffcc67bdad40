// ResNet (He et al., 2016) with torchvision's structure and names: resnet18/34 use BasicBlock,
// resnet50 uses Bottleneck with the stride on the 3x3 conv (torchvision's "ResNet v1.5").
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { UserError } from '../tensor/errors.js';
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { BatchNorm2d } from '../nn/batchnorm.js';
import { Linear } from '../nn/linear.js';
import { ReLU, MaxPool2d, AdaptiveAvgPool2d } from '../nn/basic.js';
import { Sequential } from '../nn/sequential.js';
import { kaimingNormal } from '../nn/init.js';
import { ImageClassifier, runWith, type ModelOptions } from './classifier.js';

const conv3x3 = (cin: number, cout: number, stride = 1): Conv2d => new Conv2d(cin, cout, 3, { stride, padding: 1, bias: false });
const conv1x1 = (cin: number, cout: number, stride = 1): Conv2d => new Conv2d(cin, cout, 1, { stride, bias: false });

/** A residual block: children conv1, bn1, ..., relu and optional `downsample` (1x1 conv, BN). */
abstract class ResidualBlock extends Module {
  protected abstract residual(x: Tensor, call: unknown[]): Tensor;
  /** `call`: per-call arguments for every layer (see ImageClassifier.forwardFeatures). */
  override forward(x: Tensor, ...call: unknown[]): Tensor {
    return tidy(() => {
      const identity = this.hasModule('downsample') ? runWith(this.getModule('downsample'), x, call) : x;
      return this.residual(x, call).add(identity).relu();
    });
  }
  protected run(name: string, x: Tensor, call: unknown[]): Tensor {
    return runWith(this.getModule(name), x, call);
  }
}

/** Two 3x3 convs (resnet18/34). */
export class BasicBlock extends ResidualBlock {
  static readonly expansion = 1;
  constructor(cin: number, planes: number, stride = 1, downsample: Module | null = null) {
    super();
    this.registerModule('conv1', conv3x3(cin, planes, stride));
    this.registerModule('bn1', new BatchNorm2d(planes));
    this.registerModule('relu', new ReLU());
    this.registerModule('conv2', conv3x3(planes, planes));
    this.registerModule('bn2', new BatchNorm2d(planes));
    if (downsample) this.registerModule('downsample', downsample);
  }
  protected residual(x: Tensor, c: unknown[]): Tensor {
    const y = this.run('relu', this.run('bn1', this.run('conv1', x, c), c), c);
    return this.run('bn2', this.run('conv2', y, c), c);
  }
}

/** 1x1 reduce, 3x3 (with the stride), 1x1 expand by 4 (resnet50). */
export class Bottleneck extends ResidualBlock {
  static readonly expansion = 4;
  constructor(cin: number, planes: number, stride = 1, downsample: Module | null = null) {
    super();
    this.registerModule('conv1', conv1x1(cin, planes));
    this.registerModule('bn1', new BatchNorm2d(planes));
    this.registerModule('conv2', conv3x3(planes, planes, stride));
    this.registerModule('bn2', new BatchNorm2d(planes));
    this.registerModule('conv3', conv1x1(planes, planes * Bottleneck.expansion));
    this.registerModule('bn3', new BatchNorm2d(planes * Bottleneck.expansion));
    this.registerModule('relu', new ReLU());
    if (downsample) this.registerModule('downsample', downsample);
  }
  protected residual(x: Tensor, c: unknown[]): Tensor {
    let y = this.run('relu', this.run('bn1', this.run('conv1', x, c), c), c);
    y = this.run('relu', this.run('bn2', this.run('conv2', y, c), c), c);
    return this.run('bn3', this.run('conv3', y, c), c);
  }
}

export type ResNetBlock = 'basic' | 'bottleneck';
/** Blocks per stage (layer1..layer4) of each depth. */
export const RESNET_CONFIGS = {
  resnet18: { block: 'basic', layers: [2, 2, 2, 2] },
  resnet34: { block: 'basic', layers: [3, 4, 6, 3] },
  resnet50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
} as const satisfies Record<string, { block: ResNetBlock; layers: readonly number[] }>;
export type ResNetDepth = keyof typeof RESNET_CONFIGS;

/**
 * ResNet: conv1 (7x7 stride 2), bn1, relu, maxpool, layer1..layer4, avgpool, fc. Conv weights get
 * kaiming_normal(fan_out, relu) and BN weight 1 / bias 0, as torchvision.
 */
export class ResNet extends ImageClassifier {
  readonly numFeatures: number;

  constructor(
    readonly depth: ResNetDepth = 'resnet18',
    o: ModelOptions = {},
  ) {
    super();
    const cfg = RESNET_CONFIGS[depth];
    if (!cfg) throw new UserError(`ResNet: unknown depth "${depth}" (known: ${Object.keys(RESNET_CONFIGS).join(', ')})`);
    const Block = cfg.block === 'basic' ? BasicBlock : Bottleneck;
    this.registerModule('conv1', new Conv2d(o.inChannels ?? 3, 64, 7, { stride: 2, padding: 3, bias: false }));
    this.registerModule('bn1', new BatchNorm2d(64));
    this.registerModule('relu', new ReLU());
    this.registerModule('maxpool', new MaxPool2d(3, { stride: 2, padding: 1 }));
    let cin = 64;
    cfg.layers.forEach((blocks, i) => {
      const planes = 64 << i;
      const stride = i === 0 ? 1 : 2;
      const cout = planes * Block.expansion;
      const down = stride !== 1 || cin !== cout ? new Sequential(conv1x1(cin, cout, stride), new BatchNorm2d(cout)) : null;
      const layer = new Sequential(new Block(cin, planes, stride, down));
      for (let b = 1; b < blocks; b++) layer.append(new Block(cout, planes));
      this.registerModule(`layer${i + 1}`, layer);
      cin = cout;
    });
    this.registerModule('avgpool', new AdaptiveAvgPool2d(1));
    this.numFeatures = cin;
    this.registerModule('fc', new Linear(cin, o.numClasses ?? 1000));
    for (const m of this.modules()) if (m instanceof Conv2d) kaimingNormal(m.weight, { mode: 'fan_out', nonlinearity: 'relu' });
  }

  override forwardFeatures(x: Tensor, ...call: unknown[]): Tensor {
    return tidy(() => {
      let y = x;
      for (const s of ['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4', 'avgpool']) y = runWith(this.getModule(s), y, call);
      return y.flatten(1);
    });
  }
}
