// Sequential: children named "0", "1", ... run in order (torch.nn.Sequential).
import type { Tensor } from '../tensor/tensor.js';
import { isInferenceMode } from '../tensor/inference-mode.js';
import { Module, anyForwardHooks } from './module.js';

/**
 * x through `layers` in order, each by `run`. Where no forward hook exists anywhere (a hook may
 * keep an output):
 * - A layer that can work in place (ReLU) overwrites the output of the layer before it where that
 *   is a fresh tensor nothing keeps (`freshOutput`: BatchNorm2d, Conv2d), as torchvision's
 *   ReLU(inplace=True) after a BatchNorm: no new tensor, one pass less over memory. Autograd is
 *   unchanged (their backward keeps their input, not their output) and would refuse, not
 *   mis-compute, if it were not.
 * - In libtorch's inference mode (the inference path: src/infer) each intermediate result is freed
 *   as soon as the next layer has made its own, so that the next layer's output reuses memory
 *   still in cache, as PyTorch's eager frees a temporary when Python drops it (ShuffleNetV2 at
 *   224 px, batch 32: 11-15% more images per second, 1 and 2 threads). Not the input or a result
 *   a layer passed through unchanged. Elsewhere (training, no-grad) intermediates belong to the
 *   caller's tidy scope: autograd needs them.
 */
export function layerChain(layers: Iterable<Module>, x: Tensor, run: (layer: Module, y: Tensor) => Tensor): Tensor {
  const hooks = anyForwardHooks();
  const free = isInferenceMode() && !hooks;
  let y = x;
  let fresh = false;
  for (const layer of layers) {
    const next: Tensor = fresh && layer.forwardInPlace ? layer.forwardInPlace(y) : run(layer, y);
    if (free && y !== x && next !== y) y.dispose();
    fresh = !hooks && next !== y && next !== x && layer.freshOutput;
    y = next;
  }
  return y;
}

/** Runs its children in order (intermediate results belong to the caller's tidy scope; see layerChain). */
export class Sequential extends Module {
  #length = 0;

  constructor(...layers: Module[]) {
    super();
    for (const m of layers) this.append(m);
  }

  /** Adds a layer under the next index and returns this. */
  append(m: Module): this {
    this.registerModule(String(this.#length++), m);
    return this;
  }

  get length(): number {
    return this.#length;
  }

  /** The layer at index i (negative counts from the end). */
  at<M extends Module = Module>(i: number): M {
    return this.getModule<M>(String(i < 0 ? this.#length + i : i));
  }

  *[Symbol.iterator](): IterableIterator<Module> {
    for (let i = 0; i < this.#length; i++) yield this.getModule(String(i));
  }

  override forward(x: Tensor): Tensor {
    return layerChain(this, x, (m, y) => m.forward(y));
  }
}
