// Bad calls throw catchable errors that name the op and the input shapes; nothing leaks and the
// process keeps working afterwards.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Tensor, tensor, zeros, ones, cat, stack, matmul, mm, bmm, conv2d, crossEntropy, linear, batchNorm, maxPool2d, memory, tidy,
  TorchError, type DType,
} from '../src/tensor/index.js';
import { assertClose } from './helpers/assert.js';
import { ttest } from './helpers/tidy-test.js';

const i64 = (data: number[], shape?: number[]) => tensor(data, shape, { dtype: 'int64' });

/** Asserts fn throws an instance of cls whose message matches every pattern, and leaks no tensor. */
function fails(fn: () => unknown, cls: new (...a: never[]) => Error, patterns: RegExp[]): void {
  const before = memory().liveTensors;
  let caught: unknown = null;
  try {
    tidy(() => {
      fn(); // inputs made inside fn are disposed by the scope, whatever happens
    });
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof cls, `expected ${cls.name}, got ${caught === null ? 'no error' : String(caught)}`);
  for (const p of patterns) assert.match((caught as Error).message, p);
  assert.equal(memory().liveTensors, before, `a failed call left tensors behind: ${(caught as Error).message}`);
}

describe('libtorch errors become TorchError naming the op and the input shapes', () => {
  ttest('conv2d channel mismatch', () => {
    const x = zeros([1, 3, 5, 5]);
    const w = zeros([4, 2, 3, 3]);
    fails(() => conv2d(x, w), TorchError, [/^conv2d\(/, /float32\[1, 3, 5, 5\]/, /float32\[4, 2, 3, 3\]/, /expected input\[1, 3, 5, 5\] to have 2 channels, but got 3/]);
    fails(() => conv2d(zeros([1, 4, 5, 5]), zeros([4, 3, 3, 3]), null, { groups: 2 }), TorchError, [/^conv2d\(/, /float32\[4, 3, 3, 3\]/]);
  });
  ttest('matrix product shape mismatches', () => {
    fails(() => matmul(zeros([2, 3]), zeros([4, 5])), TorchError, [/^matmul\(float32\[2, 3\], float32\[4, 5\]\)/, /cannot be multiplied \(2x3 and 4x5\)/]);
    fails(() => zeros([2, 3]).matmul(zeros([2])), TorchError, [/^matmul\(float32\[2, 3\], float32\[2\]\)/]);
    fails(() => mm(zeros([2, 3]), zeros([2, 3])), TorchError, [/^mm\(float32\[2, 3\], float32\[2, 3\]\)/]);
    fails(() => bmm(zeros([2, 2, 3]), zeros([3, 3, 2])), TorchError, [/^bmm\(float32\[2, 2, 3\], float32\[3, 3, 2\]\)/]);
    fails(() => linear(zeros([4, 3]), zeros([2, 5])), TorchError, [/^linear\(float32\[4, 3\], float32\[2, 5\]/]);
    fails(() => zeros([2, 3]).add(zeros([4])), TorchError, [/^add\(float32\[2, 3\], float32\[4\]/, /must match/]);
  });
  ttest('reshape and view to a wrong size', () => {
    fails(() => zeros([2, 3]).reshape([4]), TorchError, [/^reshape\(float32\[2, 3\], \[4\]\)/, /shape '\[4\]' is invalid for input of size 6/]);
    fails(() => zeros([2, 3]).reshape([-1, -1]), TorchError, [/^reshape\(float32\[2, 3\]/]);
    fails(() => zeros([2, 3]).t().view([6]), TorchError, [/^view\(float32\[3, 2\], \[6\]\)/]);
    fails(() => zeros([2, 3]).expand([4, 3]), TorchError, [/^expand\(float32\[2, 3\], \[4, 3\]\)/]);
  });
  ttest('cat and stack of an empty list or mismatched shapes', () => {
    fails(() => cat([]), TorchError, [/^cat\(\[\], 0\)/, /non-empty/]);
    fails(() => stack([]), TorchError, [/^stack\(\[\], 0\)/]);
    fails(() => cat([zeros([2, 3]), zeros([2, 4])]), TorchError, [/^cat\(\[float32\[2, 3\], float32\[2, 4\]\], 0\)/]);
    fails(() => stack([zeros([2]), zeros([3])]), TorchError, [/^stack\(\[float32\[2\], float32\[3\]\], 0\)/]);
  });
  ttest('indices out of range', () => {
    const x = tensor([1, 2, 3]);
    fails(() => x.indexSelect(0, i64([5])), TorchError, [/^indexSelect\(float32\[3\], 0, int64\[1\]\)/, /out of range/]);
    fails(() => zeros([2, 3]).gather(1, i64([5], [1, 1])), TorchError, [/^gather\(float32\[2, 3\], 1, int64\[1, 1\]\)/, /index 5 is out of bounds/]);
    fails(() => zeros([2, 3]).select(0, 7), TorchError, [/^select\(float32\[2, 3\], 0, 7\)/, /out of range/]);
    fails(() => zeros([2, 3]).narrow(1, 2, 4), TorchError, [/^narrow\(float32\[2, 3\], 1, 2, 4\)/]);
    fails(() => zeros([2, 3]).sum(5), TorchError, [/^sum\(float32\[2, 3\], 5/, /out of range/]);
    fails(() => zeros([2, 3]).permute([0, 0]), TorchError, [/^permute\(float32\[2, 3\]/]);
    fails(() => zeros([2, 3]).indexAdd(0, i64([3]), zeros([1, 3])), TorchError, [/^indexAdd\(float32\[2, 3\]/]);
    fails(() => crossEntropy(zeros([2, 3]), i64([0, 5])), TorchError, [/^crossEntropy\(float32\[2, 3\], int64\[2\]/, /Target 5 is out of bounds/]);
    fails(() => crossEntropy(zeros([2, 3]), tensor([0, 1])), TorchError, [/^crossEntropy\(float32\[2, 3\], float32\[2\]/]);
  });
  ttest('nn ops with bad shapes', () => {
    fails(() => batchNorm(zeros([2, 3, 4, 4]), { runningMean: zeros([2]), runningVar: ones([2]) }), TorchError, [/^batchNorm\(float32\[2, 3, 4, 4\]/]);
    fails(() => maxPool2d(zeros([1, 1, 2, 2]), 3), TorchError, [/^maxPool2d\(float32\[1, 1, 2, 2\]/]);
  });
  ttest('backward misuse', () => {
    const x = tensor([1, 2], [2], { dtype: 'float64', requiresGrad: true });
    fails(() => x.mul(2).backward(), TorchError, [/^backward\(float64\[2\]/, /only for scalar outputs/]);
    fails(() => tensor([1]).sum().backward(), TorchError, [/^backward\(float32\[\]/, /does not require grad/]);
  });
});

describe('bad arguments from JS', () => {
  ttest('unknown dtypes', () => {
    fails(() => zeros([2], { dtype: 'float128' as DType }), TorchError, [/^zeros\(.*\): unknown dtype 'float128'/]);
    fails(() => zeros([2]).to('complex64'), TorchError, [/unknown dtype 'complex64'/]);
  });
  ttest('wrong argument types name the op and the argument', () => {
    fails(() => zeros([2, 3]).reshape('ab' as unknown as number[]), TorchError, [/^reshape\(.*\): argument 1 must be an array of integers/]);
    fails(() => zeros([2, 3]).reshape([1.5, 4]), TorchError, [/^reshape\(.*\): argument 1 must be an array of integers/]);
    fails(() => zeros([2, 3]).add('x' as unknown as number), TorchError, [/^add\(.*\): argument 1 must be a number/]);
    fails(() => zeros([2, 3]).narrow(1, 'a' as unknown as number, 1), TorchError, [/^narrow\(.*\): argument 2 must be an integer/]);
    fails(() => conv2d(zeros([1, 1, 3, 3]), zeros([1, 1, 1, 1]), null, { stride: 1.5 }), TorchError, [/^conv2d\(.*\): argument 3 must be an array of integers/]);
    fails(() => cat([zeros([1]), 3 as unknown as Tensor]), TorchError, [/^cat\(.*\): argument 0 must be an array of tensors/]);
  });
  test('wrong argument types also name the input shapes', () =>
    tidy(() => fails(() => zeros([2, 3]).reshape([1.5, 4]), TorchError, [/float32\[2, 3\]/])));
  ttest('tensor() with data that does not fit the shape', () => {
    fails(() => tensor([1, 2, 3], [2]), RangeError, [/^tensor\(\): 3 values do not fit shape \[2\]/]);
  });
  ttest('using a disposed tensor', () => {
    const d = zeros([2]);
    d.dispose();
    assert.equal(d.isDisposed, true);
    fails(() => d.add(1), Error, [/disposed/]);
    fails(() => zeros([2]).add(d), Error, [/disposed/]);
    fails(() => cat([zeros([2]), d]), Error, [/disposed/]);
    fails(() => d.shape, Error, [/disposed/]);
  });
  test('using a disposed tensor names the op', () =>
    tidy(() => {
      const d = zeros([2]);
      d.dispose();
      fails(() => d.add(1), Error, [/add/]);
    }));
});

// libtorch builds a C++ backtrace for every error (about 10 ms each here), so the loop is short.
describe('the process keeps working', () => {
  test('a hundred failing calls leak nothing and later ops are correct', () =>
    tidy(() => {
      const x = tensor([1, 2, 3, 4, 5, 6], [1, 1, 2, 3]);
      const w = tensor([1, -1], [1, 1, 1, 2]);
      const before = memory().liveTensors;
      let caught = 0;
      for (let i = 0; i < 100; i++) {
        try {
          tidy(() => conv2d(x.add(i), zeros([1, 2, 1, 1])));
        } catch (e) {
          if (e instanceof TorchError) caught++;
        }
      }
      assert.equal(caught, 100);
      assert.equal(memory().liveTensors, before);
      assertClose(conv2d(x, w), [-1, -1, -1, -1]);
    }));
  test('an exception inside tidy disposes what the scope created and propagates', () => {
    const before = memory().liveTensors;
    assert.throws(
      () =>
        tidy(() => {
          zeros([10]);
          ones([10]).mul(2);
          matmul(zeros([2, 3]), zeros([2, 3]));
        }),
      TorchError,
    );
    assert.equal(memory().liveTensors, before);
  });
});
