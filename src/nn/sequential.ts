// Sequential: children named "0", "1", ... run in order (torch.nn.Sequential).
import type { Tensor } from '../tensor/tensor.js';
import { Module } from './module.js';

/** Runs its children in order (intermediate results belong to the caller's tidy scope). */
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
    let y = x;
    for (const m of this) y = m.forward(y);
    return y;
  }
}
