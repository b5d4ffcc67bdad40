// A small seeded PRNG for data order and augmentation: xoshiro128** seeded through splitmix32.
// Independent of libtorch's generator, so batch order depends only on (seed, epoch, stream).

const MASK = 0xffffffff;

/** murmur3's 32-bit finaliser: a bijective avalanche mix. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hashKey(k: number | string): number {
  if (typeof k === 'string') {
    let h = 0x811c9dc5; // FNV-1a
    for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k.charCodeAt(i), 0x01000193);
    return fmix32(h ^ 0x5bd1e995);
  }
  if (!Number.isSafeInteger(k)) throw new RangeError(`Rng: seed/key must be a safe integer, got ${k}`);
  const lo = k >>> 0;
  const hi = Math.floor(k / 0x100000000) >>> 0; // negative values fold into the high word
  return fmix32(fmix32(lo) ^ Math.imul(hi + 0x9e3779b9, 0x27d4eb2f));
}

/**
 * xoshiro128** (Blackman & Vigna). `Rng.from(seed, ...keys)` derives an independent stream for
 * each key tuple, e.g. `Rng.from(seed, 'order', epoch)`.
 */
export class Rng {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  private constructor(x: number) {
    // splitmix32 fills the state from one 32-bit word.
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#s0 = next();
    this.#s1 = next();
    this.#s2 = next();
    this.#s3 = next();
    if ((this.#s0 | this.#s1 | this.#s2 | this.#s3) === 0) this.#s0 = 1;
  }

  /** A generator determined by seed and any number of stream keys (integers or strings). */
  static from(seed: number, ...keys: (number | string)[]): Rng {
    let x = hashKey(seed);
    for (const k of keys) x = fmix32((x ^ hashKey(k)) + 0x6a09e667);
    return new Rng(x);
  }

  /** A generator with this exact xoshiro128** state (four 32-bit words, not all zero). */
  static fromState(state: readonly [number, number, number, number]): Rng {
    if (state.every((w) => (w >>> 0) === 0)) throw new RangeError('Rng.fromState: the state must not be all zero');
    const r = new Rng(0);
    [r.#s0, r.#s1, r.#s2, r.#s3] = state.map((w) => w >>> 0) as [number, number, number, number];
    return r;
  }

  /** The current state (for checkpoints; see fromState). */
  state(): [number, number, number, number] {
    return [this.#s0 >>> 0, this.#s1 >>> 0, this.#s2 >>> 0, this.#s3 >>> 0];
  }

  /** Next uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s1 = this.#s1;
    const r = Math.imul(((Math.imul(s1, 5) << 7) | (Math.imul(s1, 5) >>> 25)), 9) >>> 0;
    const t = (s1 << 9) & MASK;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = (this.#s3 << 11) | (this.#s3 >>> 21);
    return r;
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), without modulo bias; 1 <= n <= 2^32. */
  int(n: number): number {
    if (!(n >= 1 && n <= 0x100000000 && Number.isInteger(n))) throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    const limit = 0x100000000 - (0x100000000 % n);
    let r = this.nextU32();
    while (r >= limit) r = this.nextU32();
    return r % n;
  }

  /** Shuffles a in place (Fisher-Yates) and returns it. */
  shuffle<A extends { length: number; [i: number]: number }>(a: A): A {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return a;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }
}
