// The TypeScript Tensor: one owned libtorch tensor. Method names follow PyTorch in camelCase.
import { N } from './ops-native.js';
import type { NativeHandle } from './native.js';
import { track, untrack, registerTensorClass } from './scope.js';
import { type DType, type TypedArray, viewAs } from './dtype.js';
import { UserError } from './errors.js';

export type Scalar = number | boolean;
export type TensorOrScalar = Tensor | number;
export type MemoryFormat = 'contiguous' | 'channels_last';
export interface ToOptions {
  /** Copy to CUDA without waiting (torch's non_blocking): asynchronous from pinned host memory. */
  nonBlocking?: boolean;
}

const h = (x: TensorOrScalar): unknown => (x instanceof Tensor ? x.handle : x);

export class Tensor {
  /** The native handle (kept after dispose, so an op on a disposed tensor names itself). */
  #h: NativeHandle;
  #disposed = false;
  #shape: number[] | null = null;

  constructor(handle: NativeHandle) {
    this.#h = handle;
    track(this);
  }

  /** Wraps a native result (null stays null). */
  static wrap(handle: NativeHandle | null): Tensor {
    if (handle === null) throw new Error('native op returned no tensor');
    return new Tensor(handle);
  }

  get handle(): NativeHandle {
    return this.#h;
  }

  // ---------------------------------------------------------------- lifetime
  /** Frees the native memory now. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    N.dispose(this.#h);
    this.#disposed = true;
    untrack(this);
  }
  get isDisposed(): boolean {
    return this.#disposed;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---------------------------------------------------------------- metadata
  get shape(): number[] {
    if (this.#shape === null) this.#shape = N.shape(this.handle) as number[];
    return this.#shape.slice();
  }
  get ndim(): number {
    return (this.#shape ?? this.shape).length;
  }
  size(dim: number): number {
    const s = this.#shape ?? this.shape;
    return s[dim < 0 ? s.length + dim : dim]!;
  }
  get strides(): number[] {
    return N.strides(this.handle);
  }
  get dtype(): DType {
    return N.dtype(this.handle);
  }
  get device(): string {
    return N.device(this.handle);
  }
  get numel(): number {
    return N.numel(this.handle);
  }
  item(): number {
    return Number(N.item(this.handle));
  }
  /** A copy of the data as a typed array of the tensor's dtype, in C order. */
  toArray(): TypedArray {
    return viewAs(N.toBuffer(this.handle) as ArrayBuffer, this.dtype);
  }
  /** The data as plain numbers (int64 converted with Number()). */
  toNumbers(): number[] {
    const a = this.toArray();
    return a instanceof BigInt64Array ? Array.from(a, Number) : Array.from(a as ArrayLike<number>);
  }
  /** Raw bytes in C order (for safetensors). */
  toBytes(): Uint8Array {
    return new Uint8Array(N.toBuffer(this.handle) as ArrayBuffer);
  }
  toString(): string {
    return `Tensor(${this.dtype}[${this.shape.join(', ')}])`;
  }

  // ---------------------------------------------------------------- conversion
  /** A dtype ('float32', ...) or a device ('cpu', 'cuda', 'cuda:1'); a new handle (sharing storage when nothing changes). */
  to(target: DType | string, o: ToOptions = {}): Tensor {
    if (target === 'cpu' || target.startsWith('cuda')) return Tensor.wrap(N.toDevice(this.handle, target, !!o.nonBlocking));
    return Tensor.wrap(N.toDtype(this.handle, target));
  }
  /**
   * Gives this tensor src's data in place (device, dtype, storage), as PyTorch's `t.data = src`:
   * the handle, its requires_grad and everything that holds it (optimisers, modules) stay.
   */
  setData_(src: Tensor): this {
    N.setData(this.handle, src.handle);
    this.#shape = null;
    return this;
  }
  /** A copy in page-locked host memory, for fast and non-blocking copies to CUDA (needs CUDA). */
  pinMemory(): Tensor {
    if (!(N.cudaIsAvailable() as boolean)) throw new UserError('pinMemory() needs CUDA (pinned host memory only speeds up copies to a GPU)');
    return Tensor.wrap(N.pinMemory(this.handle));
  }
  get isPinned(): boolean {
    return N.isPinned(this.handle) as boolean;
  }
  float(): Tensor { return this.to('float32'); }
  double(): Tensor { return this.to('float64'); }
  long(): Tensor { return this.to('int64'); }
  /** A copy; `'channels_last'` strides it as channels_last even where both layouts are contiguous (1x1 maps). */
  clone(format?: MemoryFormat): Tensor { return Tensor.wrap(N.clone(this.handle, format)); }
  /** The layout ATen reads from the strides (convolutions pick theirs from it): 'channels_last' or 'contiguous'. */
  suggestMemoryFormat(): MemoryFormat { return N.suggestMemoryFormat(this.handle) as MemoryFormat; }
  contiguous(format: MemoryFormat = 'contiguous'): Tensor { return Tensor.wrap(N.contiguous(this.handle, format)); }
  isContiguous(format: MemoryFormat = 'contiguous'): boolean { return N.isContiguous(this.handle, format); }

  // ---------------------------------------------------------------- autograd
  get requiresGrad(): boolean {
    return N.requiresGrad(this.handle);
  }
  /** Sets requires_grad in place (leaf tensors) and returns this. */
  requiresGrad_(on = true): this {
    N.setRequiresGrad(this.handle, on);
    return this;
  }
  get isLeaf(): boolean {
    return N.isLeaf(this.handle);
  }
  /** The accumulated gradient, or null. Each read returns a new handle that shares the storage. */
  get grad(): Tensor | null {
    const g = N.grad(this.handle);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    N.setGrad(this.handle, g === null ? null : g.handle);
  }
  backward(gradient?: Tensor, retainGraph = false): void {
    N.backward(this.handle, gradient?.handle ?? null, retainGraph);
  }
  detach(): Tensor { return Tensor.wrap(N.detach(this.handle)); }

  // ---------------------------------------------------------------- arithmetic
  add(o: TensorOrScalar, alpha = 1): Tensor { return Tensor.wrap(N.add(this.handle, h(o), alpha)); }
  sub(o: TensorOrScalar, alpha = 1): Tensor { return Tensor.wrap(N.sub(this.handle, h(o), alpha)); }
  mul(o: TensorOrScalar): Tensor { return Tensor.wrap(N.mul(this.handle, h(o))); }
  div(o: TensorOrScalar): Tensor { return Tensor.wrap(N.div(this.handle, h(o))); }
  pow(o: TensorOrScalar): Tensor { return Tensor.wrap(N.pow(this.handle, h(o))); }
  maximum(o: Tensor): Tensor { return Tensor.wrap(N.maximum(this.handle, o.handle)); }
  minimum(o: Tensor): Tensor { return Tensor.wrap(N.minimum(this.handle, o.handle)); }
  eq(o: TensorOrScalar): Tensor { return Tensor.wrap(N.eq(this.handle, h(o))); }
  ne(o: TensorOrScalar): Tensor { return Tensor.wrap(N.ne(this.handle, h(o))); }
  lt(o: TensorOrScalar): Tensor { return Tensor.wrap(N.lt(this.handle, h(o))); }
  le(o: TensorOrScalar): Tensor { return Tensor.wrap(N.le(this.handle, h(o))); }
  gt(o: TensorOrScalar): Tensor { return Tensor.wrap(N.gt(this.handle, h(o))); }
  ge(o: TensorOrScalar): Tensor { return Tensor.wrap(N.ge(this.handle, h(o))); }
  neg(): Tensor { return Tensor.wrap(N.neg(this.handle)); }
  exp(): Tensor { return Tensor.wrap(N.exp(this.handle)); }
  log(): Tensor { return Tensor.wrap(N.log(this.handle)); }
  sqrt(): Tensor { return Tensor.wrap(N.sqrt(this.handle)); }
  rsqrt(): Tensor { return Tensor.wrap(N.rsqrt(this.handle)); }
  abs(): Tensor { return Tensor.wrap(N.abs(this.handle)); }
  sign(): Tensor { return Tensor.wrap(N.sign(this.handle)); }
  floor(): Tensor { return Tensor.wrap(N.floor(this.handle)); }
  round(): Tensor { return Tensor.wrap(N.round(this.handle)); }
  sigmoid(): Tensor { return Tensor.wrap(N.sigmoid(this.handle)); }
  tanh(): Tensor { return Tensor.wrap(N.tanh(this.handle)); }
  relu(): Tensor { return Tensor.wrap(N.relu(this.handle)); }
  relu_(): this { N.relu_(this.handle); return this; }
  clamp(min: number | null, max: number | null = null): Tensor { return Tensor.wrap(N.clamp(this.handle, min, max)); }
  isfinite(): Tensor { return Tensor.wrap(N.isfinite(this.handle)); }
  isnan(): Tensor { return Tensor.wrap(N.isnan(this.handle)); }
  logicalNot(): Tensor { return Tensor.wrap(N.logicalNot(this.handle)); }

  // ---------------------------------------------------------------- reductions
  sum(dims: number | number[] | null = null, keepdim = false): Tensor { return Tensor.wrap(N.sum(this.handle, dims, keepdim)); }
  mean(dims: number | number[] | null = null, keepdim = false): Tensor { return Tensor.wrap(N.mean(this.handle, dims, keepdim)); }
  /** Variance with Bessel's correction by default (correction = 1), as torch.var. */
  var(dims: number | number[] | null = null, correction = 1, keepdim = false): Tensor {
    return Tensor.wrap(N.var(this.handle, dims, correction, keepdim));
  }
  logsumexp(dims: number | number[], keepdim = false): Tensor { return Tensor.wrap(N.logsumexp(this.handle, dims, keepdim)); }
  amax(dims: number | number[] | null = null, keepdim = false): Tensor { return Tensor.wrap(N.amax(this.handle, dims, keepdim)); }
  amin(dims: number | number[] | null = null, keepdim = false): Tensor { return Tensor.wrap(N.amin(this.handle, dims, keepdim)); }
  /** max over one dim: values and indices (torch.max(t, dim)). */
  max(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [v, i] = N.maxDim(this.handle, dim, keepdim);
    return { values: Tensor.wrap(v), indices: Tensor.wrap(i) };
  }
  min(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [v, i] = N.minDim(this.handle, dim, keepdim);
    return { values: Tensor.wrap(v), indices: Tensor.wrap(i) };
  }
  argmax(dim: number | null = null, keepdim = false): Tensor { return Tensor.wrap(N.argmax(this.handle, dim, keepdim)); }
  argmin(dim: number | null = null, keepdim = false): Tensor { return Tensor.wrap(N.argmin(this.handle, dim, keepdim)); }
  all(): Tensor { return Tensor.wrap(N.all(this.handle)); }
  any(): Tensor { return Tensor.wrap(N.any(this.handle)); }
  cumsum(dim: number): Tensor { return Tensor.wrap(N.cumsum(this.handle, dim)); }
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [v, i] = N.sort(this.handle, dim, descending);
    return { values: Tensor.wrap(v), indices: Tensor.wrap(i) };
  }
  topk(k: number, dim = -1): { values: Tensor; indices: Tensor } {
    const [v, i] = N.topk(this.handle, k, dim);
    return { values: Tensor.wrap(v), indices: Tensor.wrap(i) };
  }

  // ---------------------------------------------------------------- shape
  reshape(shape: number[]): Tensor { return Tensor.wrap(N.reshape(this.handle, shape)); }
  view(shape: number[]): Tensor { return Tensor.wrap(N.view(this.handle, shape)); }
  permute(dims: number[]): Tensor { return Tensor.wrap(N.permute(this.handle, dims)); }
  transpose(d0: number, d1: number): Tensor { return Tensor.wrap(N.transpose(this.handle, d0, d1)); }
  /** Transpose of a 2-D tensor. */
  t(): Tensor { return this.transpose(0, 1); }
  flatten(start = 0, end = -1): Tensor { return Tensor.wrap(N.flatten(this.handle, start, end)); }
  squeeze(dim: number | null = null): Tensor { return Tensor.wrap(N.squeeze(this.handle, dim)); }
  unsqueeze(dim: number): Tensor { return Tensor.wrap(N.unsqueeze(this.handle, dim)); }
  expand(shape: number[]): Tensor { return Tensor.wrap(N.expand(this.handle, shape)); }
  repeat(reps: number[]): Tensor { return Tensor.wrap(N.repeat(this.handle, reps)); }
  split(sizes: number | number[], dim = 0): Tensor[] { return (N.split(this.handle, sizes, dim) as NativeHandle[]).map(Tensor.wrap); }
  chunk(n: number, dim = 0): Tensor[] { return (N.chunk(this.handle, n, dim) as NativeHandle[]).map(Tensor.wrap); }
  narrow(dim: number, start: number, length: number): Tensor { return Tensor.wrap(N.narrow(this.handle, dim, start, length)); }
  select(dim: number, index: number): Tensor { return Tensor.wrap(N.select(this.handle, dim, index)); }
  indexSelect(dim: number, index: Tensor): Tensor { return Tensor.wrap(N.indexSelect(this.handle, dim, index.handle)); }
  indexAdd(dim: number, index: Tensor, source: Tensor, alpha = 1): Tensor {
    return Tensor.wrap(N.indexAdd(this.handle, dim, index.handle, source.handle, alpha));
  }
  gather(dim: number, index: Tensor): Tensor { return Tensor.wrap(N.gather(this.handle, dim, index.handle)); }
  scatter(dim: number, index: Tensor, src: Tensor): Tensor { return Tensor.wrap(N.scatter(this.handle, dim, index.handle, src.handle)); }
  maskedFill(mask: Tensor, value: number): Tensor { return Tensor.wrap(N.maskedFill(this.handle, mask.handle, value)); }
  flip(dims: number[]): Tensor { return Tensor.wrap(N.flip(this.handle, dims)); }
  matmul(o: Tensor): Tensor { return Tensor.wrap(N.matmul(this.handle, o.handle)); }

  // ---------------------------------------------------------------- in place (use under noGrad)
  add_(o: TensorOrScalar, alpha = 1): this { N.add_(this.handle, h(o), alpha); return this; }
  mul_(o: TensorOrScalar): this { N.mul_(this.handle, h(o)); return this; }
  div_(o: TensorOrScalar): this { N.div_(this.handle, h(o)); return this; }
  addcmul_(a: Tensor, b: Tensor, value = 1): this { N.addcmul_(this.handle, a.handle, b.handle, value); return this; }
  addcdiv_(a: Tensor, b: Tensor, value = 1): this { N.addcdiv_(this.handle, a.handle, b.handle, value); return this; }
  copy_(src: Tensor): this { N.copy_(this.handle, src.handle); return this; }
  zero_(): this { N.zero_(this.handle); return this; }
  fill_(v: number): this { N.fill_(this.handle, v); return this; }
  uniform_(lo: number, hi: number): this { N.uniform_(this.handle, lo, hi); return this; }
  normal_(mean: number, std: number): this { N.normal_(this.handle, mean, std); return this; }
}

registerTensorClass(Tensor);
