// Class activation maps (paper Figure 3). For class c and the last conv block's maps A_k:
// - Grad-CAM (Selvaraju et al. 2017): a_k = spatial mean of d y_c / d A_k (autograd),
//   map = ReLU(sum_k a_k A_k);
// - CAM (Zhou et al. 2016): map = ReLU(sum_k w_ck A_k), with w the head's weights.
// Every lorkd CNN ends in global average pooling and one linear layer, so a_k = w_ck / (h w)
// and the two maps agree up to that constant factor (equal after normalising to [0, 1]).
// A ViT pools its class token instead, so CAM does not apply to it. Its Grad-CAM reads the
// residual stream entering the last encoder block (the tokens the last attention mixes into the
// class token; after that block a patch token no longer reaches the head): A_k is channel k of
// the patch tokens laid out on their g x g grid, as pytorch-grad-cam's reshape transform does.
import { PNG } from 'pngjs';
import { type Tensor, interpolate, tensor, tidy, noGrad } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { ImageClassifier } from '../models/classifier.js';
import { ShuffleNetV2 } from '../models/shufflenetv2.js';
import { ResNet } from '../models/resnet.js';
import { VisionTransformer } from '../models/vit.js';

/** The modules, in order, from the input to the last conv block (the maps CAM reads). */
function blocksOf(model: ImageClassifier): string[] {
  if (model instanceof ShuffleNetV2) return ['conv1', 'maxpool', 'stage2', 'stage3', 'stage4', 'conv5'];
  if (model instanceof ResNet) return ['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4'];
  throw new UserError(`class activation maps: unsupported network ${model.constructor.name} (ShuffleNetV2, ResNet and ViT are supported)`);
}

/** The last conv block's feature maps A (N, C, h, w) of images x; pooling them gives forwardFeatures(x). */
export function featureMaps(model: ImageClassifier, x: Tensor): Tensor {
  return tidy(() => {
    let y = x;
    for (const b of blocksOf(model)) y = model.getModule(b).forward(y);
    return y.contiguous();
  });
}

const classIndex = (classes: readonly number[], n: number, k: number): Tensor => {
  if (classes.length !== n) throw new UserError(`class activation maps: ${classes.length} classes for ${n} images`);
  for (const c of classes) if (!(Number.isInteger(c) && c >= 0 && c < k)) throw new UserError(`class activation maps: class ${c} is out of range for ${k} classes`);
  return tensor(Int32Array.from(classes), [n], { dtype: 'int64' });
};

/** Whether CAM applies: the network pools its last conv maps (a CNN), not a class token (a ViT). */
export const hasCam = (model: ImageClassifier): boolean => !(model instanceof VisionTransformer);

/** CAM maps (N, h, w) of images x for one class per image, from the head's weights (no backward). */
export function cam(model: ImageClassifier, x: Tensor, classes: readonly number[]): Tensor {
  if (!hasCam(model)) throw new UserError('CAM needs a network that pools its last conv maps; a ViT pools its class token: use Grad-CAM');
  return noGrad(() =>
    tidy(() => {
      const a = featureMaps(model, x);
      const w = model.fc.weight.indexSelect(0, classIndex(classes, a.shape[0]!, model.numClasses)); // (N, C)
      return a.mul(w.unsqueeze(2).unsqueeze(3)).sum(1).relu();
    }),
  );
}

/**
 * Grad-CAM maps (N, h, w) of images x for one class per image: the gradient of each image's
 * class logit with respect to the last conv block's maps, by autograd through the pooling and
 * the head. The model's parameter gradients are left as they were.
 */
export function gradCam(model: ImageClassifier, x: Tensor, classes: readonly number[]): Tensor {
  if (model instanceof VisionTransformer) return vitGradCam(model, x, classes);
  return tidy(() => {
    const a = noGrad(() => featureMaps(model, x)).detach().requiresGrad_(true);
    classGradient(model, model.forwardHead(a.mean([2, 3])), classes);
    const g = a.grad!;
    const weights = g.mean([2, 3]); // a_k per image
    return noGrad(() => a.detach().mul(weights.unsqueeze(2).unsqueeze(3)).sum(1).relu());
  });
}

/** The gradient of each image's class logit through `logits`, with the model's parameter gradients left as they were. */
function classGradient(model: ImageClassifier, logits: Tensor, classes: readonly number[]): void {
  const idx = classIndex(classes, logits.shape[0]!, model.numClasses);
  const before = model.parameters().map((p) => p.grad);
  logits.gather(1, idx.unsqueeze(1)).sum().backward();
  model.parameters().forEach((p, i) => (p.grad = before[i]!));
}

/** Grad-CAM of a ViT (N, g, g): A = the patch tokens entering the last block, on their grid. */
function vitGradCam(model: VisionTransformer, x: Tensor, classes: readonly number[]): Tensor {
  return tidy(() => {
    const k = model.config.depth - 1;
    const t = noGrad(() => model.tokensAt(x, k)).detach().requiresGrad_(true);
    classGradient(model, model.forwardHead(model.featuresFrom(t, k)), classes);
    const [n, s, d] = t.shape as [number, number, number];
    const g = Math.round(Math.sqrt(s - 1));
    const grid = (u: Tensor) => u.narrow(1, 1, g * g).transpose(1, 2).reshape([n, d, g, g]);
    const weights = grid(t.grad!).mean([2, 3]); // a_k per image
    return noGrad(() => grid(t.detach()).mul(weights.unsqueeze(2).unsqueeze(3)).sum(1).relu());
  });
}

/**
 * Maps (N, h, w) upsampled bilinearly to height x width and scaled to [0, 1] per image
 * (divided by each map's maximum; an all-zero map stays zero). Returns N Float32Arrays.
 */
export function normaliseMaps(maps: Tensor, height: number, width: number): Float32Array[] {
  const n = maps.shape[0]!;
  const flat = tidy(() => {
    const up = interpolate(maps.unsqueeze(1).float(), [height, width], 'bilinear', false).squeeze(1).relu();
    const mx = up.amax([1, 2], true).clamp(1e-12, null);
    return up.div(mx).toArray() as Float32Array;
  });
  const hw = height * width;
  return Array.from({ length: n }, (_, i) => flat.slice(i * hw, (i + 1) * hw));
}

/** The jet colour map at t in [0, 1]: [r, g, b] in 0..255. */
export function jet(t: number): [number, number, number] {
  const c = (x: number) => Math.round(255 * Math.min(1, Math.max(0, x)));
  const v = Math.min(1, Math.max(0, t));
  return [c(1.5 - Math.abs(4 * v - 3)), c(1.5 - Math.abs(4 * v - 2)), c(1.5 - Math.abs(4 * v - 1))];
}

/** RGBA pixels (height x width x 4) of a uint8 CHW RGB image with a heat map blended over it (alpha of the heat). */
export function overlay(image: Uint8Array, map: Float32Array | null, height: number, width: number, alpha = 0.45): Uint8Array {
  const hw = height * width;
  if (image.length !== 3 * hw) throw new UserError(`overlay: image has ${image.length} bytes, expected ${3 * hw}`);
  if (map && map.length !== hw) throw new UserError(`overlay: map has ${map.length} values, expected ${hw}`);
  const out = new Uint8Array(4 * hw);
  for (let p = 0; p < hw; p++) {
    const heat = map ? jet(map[p]!) : null;
    for (let ch = 0; ch < 3; ch++) {
      const v = image[ch * hw + p]!;
      out[4 * p + ch] = heat ? Math.round((1 - alpha) * v + alpha * heat[ch]!) : v;
    }
    out[4 * p + 3] = 255;
  }
  return out;
}

/** Panels (RGBA, each height x width) side by side with a gap, as PNG bytes. */
export function panelsPng(panels: readonly Uint8Array[], height: number, width: number, gap = 4): Buffer {
  if (panels.length === 0) throw new UserError('panelsPng: no panels');
  const W = panels.length * width + (panels.length - 1) * gap;
  const png = new PNG({ width: W, height });
  png.data.fill(255);
  panels.forEach((p, i) => {
    const x0 = i * (width + gap);
    for (let y = 0; y < height; y++) png.data.set(p.subarray(y * width * 4, (y + 1) * width * 4), (y * W + x0) * 4);
  });
  return PNG.sync.write(png);
}
