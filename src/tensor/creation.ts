// Tensor creation, random numbers and global state (seed, threads, devices, memory).
import { N } from './ops-native.js';
import { Tensor } from './tensor.js';
import { type DType, type TypedArray, dtypeOfArray, numelOf } from './dtype.js';

export interface Options {
  dtype?: DType;
  device?: string;
  requiresGrad?: boolean;
}

function finish(t: Tensor, o: Options | undefined): Tensor {
  return o?.requiresGrad ? t.requiresGrad_(true) : t;
}

/**
 * A tensor from data: a typed array (its dtype unless options say otherwise) or nested/flat
 * numbers. `shape` defaults to the flat length.
 */
export function tensor(data: TypedArray | number[] | number, shape?: number[], o?: Options): Tensor {
  let arr: TypedArray;
  const dtype: DType = o?.dtype ?? (ArrayBuffer.isView(data) ? dtypeOfArray(data as TypedArray) : 'float32');
  if (typeof data === 'number') {
    shape ??= [];
    data = [data];
  }
  if (Array.isArray(data)) {
    arr = fromNumbers(data, dtype);
  } else {
    arr = data;
    // Half-precision bits in a Uint16Array are taken as bits of the requested half type.
    const halfBits = arr instanceof Uint16Array && (o?.dtype === 'float16' || o?.dtype === 'bfloat16');
    if (o?.dtype && !halfBits && dtypeOfArray(arr) !== o.dtype) {
      const t = Tensor.wrap(N.fromBuffer(arr, shape ?? [arr.length], dtypeOfArray(arr)));
      const c = t.to(o.dtype);
      t.dispose();
      return finish(o.device && o.device !== 'cpu' ? c.to(o.device) : c, o);
    }
  }
  const s = shape ?? [arr.length];
  if (numelOf(s) !== arr.length) throw new RangeError(`tensor(): ${arr.length} values do not fit shape [${s.join(', ')}]`);
  let t = Tensor.wrap(N.fromBuffer(arr, s, dtype));
  if (o?.device && o.device !== 'cpu') {
    const d = t.to(o.device);
    t.dispose();
    t = d;
  }
  return finish(t, o);
}

/**
 * Moves a freshly made host tensor to `device`, consuming it: on the CPU it is returned as is;
 * on CUDA it is copied into pinned (page-locked) memory and sent with a non-blocking copy, so the
 * transfer overlaps the host's next work (the loader's batches). libtorch's caching host
 * allocator keeps the pinned block until the copy has finished, so it is freed here at once.
 */
export function hostToDevice(host: Tensor, device: string): Tensor {
  if (!device.startsWith('cuda')) return host;
  const pinned = host.pinMemory();
  host.dispose();
  const out = pinned.to(device, { nonBlocking: true });
  pinned.dispose();
  return out;
}

function fromNumbers(data: number[], dtype: DType): TypedArray {
  switch (dtype) {
    case 'float32': return Float32Array.from(data);
    case 'float64': return Float64Array.from(data);
    case 'int32': return Int32Array.from(data);
    case 'int64': return BigInt64Array.from(data, (x) => BigInt(Math.trunc(x)));
    case 'uint8': return Uint8Array.from(data);
    case 'bool': return Uint8Array.from(data, (x) => (x ? 1 : 0));
    case 'int8': return Int8Array.from(data);
    case 'int16': return Int16Array.from(data);
    default: throw new TypeError(`tensor(): cannot build ${dtype} from numbers`);
  }
}

export const zeros = (shape: number[], o?: Options): Tensor => finish(Tensor.wrap(N.zeros(shape, o?.dtype, o?.device)), o);
export const ones = (shape: number[], o?: Options): Tensor => finish(Tensor.wrap(N.ones(shape, o?.dtype, o?.device)), o);
export const empty = (shape: number[], o?: Options): Tensor => finish(Tensor.wrap(N.empty(shape, o?.dtype, o?.device)), o);
export const full = (shape: number[], value: number, o?: Options): Tensor =>
  finish(Tensor.wrap(N.full(shape, value, o?.dtype, o?.device)), o);
export const arange = (start: number, end?: number, step = 1, o?: Options): Tensor =>
  end === undefined
    ? Tensor.wrap(N.arange(0, start, step, o?.dtype ?? 'int64', o?.device))
    : Tensor.wrap(N.arange(start, end, step, o?.dtype ?? 'int64', o?.device));
export const rand = (shape: number[], o?: Options): Tensor => finish(Tensor.wrap(N.rand(shape, o?.dtype, o?.device)), o);
export const randn = (shape: number[], o?: Options): Tensor => finish(Tensor.wrap(N.randn(shape, o?.dtype, o?.device)), o);
export const randint = (low: number, high: number, shape: number[], o?: Options): Tensor =>
  Tensor.wrap(N.randint(low, high, shape, o?.dtype ?? 'int64', o?.device));
export const randperm = (n: number): Tensor => Tensor.wrap(N.randperm(n));
export const zerosLike = (t: Tensor): Tensor => Tensor.wrap(N.zerosLike(t.handle));
export const onesLike = (t: Tensor): Tensor => Tensor.wrap(N.onesLike(t.handle));
export const fullLike = (t: Tensor, v: number): Tensor => Tensor.wrap(N.fullLike(t.handle, v));
export const randLike = (t: Tensor): Tensor => Tensor.wrap(N.randLike(t.handle));
export const randnLike = (t: Tensor): Tensor => Tensor.wrap(N.randnLike(t.handle));
export const bernoulli = (p: Tensor): Tensor => Tensor.wrap(N.bernoulli(p.handle));

/** Seeds libtorch's global CPU generator (and thereby every random op). */
export function manualSeed(seed: number): void {
  N.manualSeed(seed);
}
/** The CPU generator state, for checkpoints. */
export const getRngState = (): Tensor => Tensor.wrap(N.getRngState());
export function setRngState(state: Tensor): void {
  N.setRngState(state.handle);
}

export function setNumThreads(n: number): void {
  N.setNumThreads(n);
}
export const getNumThreads = (): number => N.getNumThreads();
export const libtorchVersion = (): string => N.version();

export interface MemoryReport {
  /** Native tensor handles alive now. */
  liveTensors: number;
  /** Bytes of tensor data those handles account for (views count their own extent). */
  externalBytes: number;
  /** Freed tensor memory kept by lorkd's caching CPU allocator for reuse (see emptyCache). */
  cachedBytes: number;
}
export const memory = (): MemoryReport => ({ ...N.memory(), cachedBytes: N.cachingAllocator().cachedBytes });
/** Returns the caching allocator's free blocks to the system. */
export function emptyCache(): void {
  N.emptyCache();
}

/** Runs fn with autograd recording off (torch.no_grad). */
export function noGrad<R>(fn: () => R): R {
  const prev = N.isGradEnabled() as boolean;
  N.setGradEnabled(false);
  try {
    return fn();
  } finally {
    N.setGradEnabled(prev);
  }
}
export const isGradEnabled = (): boolean => N.isGradEnabled();
export function setGradEnabled(on: boolean): void {
  N.setGradEnabled(on);
}
