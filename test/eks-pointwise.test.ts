// The EKS pass of a folded 1x1 expert convolution (native/src/eks-pointwise.cc): tasks with many
// pixel rows through their merged weight W0 + s B_t A_t, the others through W0 and the
// row-by-row low-rank paths, in one output. Checked against per-task conv2d with the merged
// weight (an independent computation), for all-merged, mixed and (null) none-merged batches, on
// channels_last input and a channel slice, ranks 3 and 8 (the AVX2 path), 1 and 2 threads; and
// eksConvInfer's GEMM route with the row factors against its sgemm route.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, tidy, conv2d, cat, inferenceMode, manualSeed, memory, Tensor } from '../src/tensor/index.js';
import { N } from '../src/tensor/ops-native.js';
import { withThreads } from './helpers/threads.js';

const maxDiff = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().amax().item());
const wrapOrNull = (h: unknown): Tensor | null => (h === null ? null : Tensor.wrap(h as never));
// lowRankRowFactors' tensors: [At, Bt] and, at ranks 4, 8 and 16, Ap.
const rowFactors = (A: Tensor, B: Tensor): Tensor[] => (N.lowRankRowFactors(A.handle, B.handle) as unknown[]).map((h) => Tensor.wrap(h as never));

// relu?(conv2d(x_t, W0 + s B_t A_t) + b) per task's images, concatenated.
function reference(x: Tensor, w0: Tensor, bias: Tensor, A: Tensor, B: Tensor, counts: number[], s: number, relu: boolean): Tensor {
  const parts: Tensor[] = [];
  let off = 0;
  counts.forEach((n, t) => {
    if (n === 0) return;
    const wt = w0.add(B.select(0, t).matmul(A.select(0, t)).mul(s).view(w0.shape));
    const y = conv2d(x.narrow(0, off, n).contiguous(), wt, bias);
    parts.push(relu ? y.relu() : y);
    off += n;
  });
  return cat(parts, 0);
}

// 64 channels in and out at 8x8: a task is merged from 3 images (192 rows) at rank 3 and 8, not at 1 (64 rows).
const C = 64;
const CASES: Array<{ name: string; counts: number[]; merged: boolean }> = [
  { name: 'all merged', counts: [3, 0, 4], merged: true },
  { name: 'mixed (merged, row path, merged, row path)', counts: [3, 1, 4, 1], merged: true },
  { name: 'none merged', counts: [1, 1, 0, 1], merged: false },
];

test('EKS 1x1 kernel: merged and row-path tasks in one output equal per-task conv2d with W0 + s B_t A_t; null where no task is merged', () => {
  manualSeed(21);
  const live = memory().liveTensors;
  for (const rank of [3, 8])
    for (const threads of [1, 2])
      withThreads(threads, () =>
        tidy(() => {
          for (const { name, counts, merged } of CASES) {
            const T = counts.length;
            const n = counts.reduce((a, b) => a + b, 0);
            const w0 = randn([C, C, 1, 1]).mul(0.1);
            const bias = randn([C]);
            const A = randn([T, rank, C]).mul(0.2);
            const B = randn([T, C, rank]).mul(0.2);
            const [At, Bt] = rowFactors(A, B);
            const full = randn([n, 2 * C, 8, 8]).contiguous('channels_last');
            for (const [layout, x] of [['channels_last', full.narrow(1, 0, C).contiguous('channels_last')], ['channel slice', full.narrow(1, C, C)]] as const) {
              for (const relu of [false, true]) {
                const got = inferenceMode(() => wrapOrNull(N.eksPointwiseInfer(x.handle, w0.handle, bias.handle, At!.handle, Bt!.handle, counts, 0.5, relu)));
                const what = `${name}, r ${rank}, ${threads}t, ${layout}, relu ${relu}`;
                if (!merged) {
                  assert.equal(got, null, what);
                  continue;
                }
                assert.ok(got !== null, what);
                assert.ok(got.isContiguous('channels_last'), what);
                const ref = reference(x, w0, bias, A, B, counts, 0.5, relu);
                assert.ok(maxDiff(got, ref) <= 1e-4, `${what}: ${maxDiff(got, ref)}`);
              }
            }
          }
        }),
      );
  assert.equal(memory().liveTensors, live, 'no tensor leaked');
});

test('EKS 1x1 kernel: null for shapes that do not fit (one-line errors are the caller\'s), NCHW input and negative counts', () => {
  manualSeed(22);
  tidy(() => {
    const w0 = randn([C, C, 1, 1]);
    const A = randn([2, 4, C]);
    const B = randn([2, C, 4]);
    const [At, Bt] = rowFactors(A, B);
    const x = randn([6, C, 8, 8]).contiguous('channels_last');
    const call = (xx: Tensor, counts: number[]) => inferenceMode(() => N.eksPointwiseInfer(xx.handle, w0.handle, null, At!.handle, Bt!.handle, counts, 1, false));
    assert.notEqual(call(x, [3, 3]), null);
    assert.equal(call(x, [3, 2]), null, 'counts short of the batch');
    assert.equal(call(x, [3, 3, 0]), null, 'a count per task');
    assert.equal(call(x, [7, -1]), null, 'negative count');
    assert.equal(call(randn([6, C, 8, 8]), [3, 3]), null, 'NCHW');
    assert.equal(call(randn([6, C + 1, 8, 8]).contiguous('channels_last'), [3, 3]), null, 'Cin');
  });
});

test("eksConvInfer on the GEMM route: with the row factors (merged tasks, row paths) equals its sgemm route, with and without the ReLU", () => {
  manualSeed(23);
  for (const threads of [1, 2])
    withThreads(threads, () =>
      tidy(() => {
        // conv5-like: 96 -> 160 channels at 4x4, rank 8; task 0 with 20 images is merged, task 1 with 1 is not.
        const [cin, cout, r] = [96, 160, 8];
        const counts = [20, 1, 0];
        const w0 = randn([cout, cin, 1, 1]).mul(0.1);
        const bias = randn([cout]);
        const A = randn([3, r, cin]).mul(0.2);
        const B = randn([3, cout, r]).mul(0.2);
        const [At, Bt] = rowFactors(A, B);
        const x = randn([21, cin, 4, 4]).contiguous('channels_last');
        for (const relu of [false, true]) {
          const run = (rows: boolean) =>
            inferenceMode(() => Tensor.wrap(N.eksConvInfer(x.handle, w0.handle, A.handle, B.handle, counts, 0.7, [1, 1], [0, 0], [1, 1], bias.handle, relu, null, rows ? At!.handle : null, rows ? Bt!.handle : null)));
          const withRows = run(true);
          const plain = run(false);
          const ref = reference(x, w0, bias, A, B, counts, 0.7, relu);
          assert.ok(maxDiff(withRows, ref) <= 1e-4, `${threads}t relu ${relu}: ${maxDiff(withRows, ref)}`);
          assert.ok(maxDiff(plain, ref) <= 1e-4, `${threads}t relu ${relu} (sgemm route): ${maxDiff(plain, ref)}`);
        }
      }),
    );
});

test('EKS row path at rank 4, 8 and 16 in groups of input channels (AVX-512, lowRankRowFactors\' third factor): equals per-task conv2d for Cin off the group size, Cout off 16, runs of 1-27 rows, with and without the ReLU, on a channel slice', () => {
  manualSeed(24);
  const live = memory().liveTensors;
  for (const threads of [1, 2])
    withThreads(threads, () =>
      tidy(() => {
        for (const [rank, cin, cout] of [[8, 58, 58], [8, 57, 10], [8, 3, 40], [8, 1, 17], [4, 58, 30], [4, 57, 17], [4, 3, 16], [16, 58, 58], [16, 5, 33]] as const) {
          // 3x3 maps: 9 pixel rows per image; runs of 18, 9, 27 and 1 rows exercise the 16-row blocks and the 1-3 row tails.
          const counts = [2, 1, 0, 3];
          const T = counts.length;
          const n = counts.reduce((a, b) => a + b, 0);
          const w0 = randn([cout, cin, 1, 1]).mul(0.1);
          const bias = randn([cout]);
          const A = randn([T, rank, cin]).mul(0.2);
          const B = randn([T, cout, rank]).mul(0.2);
          const factors = rowFactors(A, B);
          assert.equal(factors.length, 3, `rank ${rank} gives the groups`);
          const [At, Bt, Ap] = factors;
          const g = 16 / rank;
          assert.deepEqual(Ap!.shape, [T, Math.ceil(cin / g), rank, g]);
          const w0T = Tensor.wrap(N.pointwiseTransposed(w0.handle) as never);
          const full = randn([n, cin + 5, 3, 3]).contiguous('channels_last');
          const x = full.narrow(1, 2, cin);
          for (const relu of [false, true]) {
            const got = inferenceMode(() =>
              Tensor.wrap(N.eksConvInfer(x.handle, w0.handle, A.handle, B.handle, counts, 0.7, [1, 1], [0, 0], [1, 1], bias.handle, relu, null, At!.handle, Bt!.handle, Ap!.handle, w0T.handle)),
            );
            const ref = reference(x, w0, bias, A, B, counts, 0.7, relu);
            assert.ok(maxDiff(got, ref) <= 1e-4, `r ${rank}, ${cin} -> ${cout}, ${threads}t, relu ${relu}: ${maxDiff(got, ref)}`);
          }
          // A single row of one task (1x1 map), the shortest run.
          const one = randn([1, cin, 1, 1]).contiguous('channels_last');
          const single = [0, 0, 1, 0];
          const got = inferenceMode(() =>
            Tensor.wrap(N.eksConvInfer(one.handle, w0.handle, A.handle, B.handle, single, 0.7, [1, 1], [0, 0], [1, 1], bias.handle, true, null, At!.handle, Bt!.handle, Ap!.handle, null)),
          );
          assert.ok(maxDiff(got, reference(one, w0, bias, A, B, single, 0.7, true)) <= 1e-4, `r ${rank}, ${cin} -> ${cout}, one row`);
        }
        // A merged task and a row-path task in one call of the unit kernel, the latter in pairs.
        {
          const counts = [20, 1];
          const w0 = randn([C, C, 1, 1]).mul(0.1);
          const bias = randn([C]);
          const A = randn([2, 8, C]).mul(0.2);
          const B = randn([2, C, 8]).mul(0.2);
          const [At, Bt, Ap] = rowFactors(A, B);
          const x = randn([21, C, 8, 8]).contiguous('channels_last');
          const got = inferenceMode(() => wrapOrNull(N.eksPointwiseInfer(x.handle, w0.handle, bias.handle, At!.handle, Bt!.handle, counts, 0.5, true, Ap!.handle)));
          assert.ok(got !== null, 'task 0 is merged');
          assert.ok(maxDiff(got, reference(x, w0, bias, A, B, counts, 0.5, true)) <= 1e-4, `merged and paired: ${maxDiff(got, reference(x, w0, bias, A, B, counts, 0.5, true))}`);
        }
        // Other ranks have no groups.
        const A3 = randn([2, 3, 8]);
        assert.equal(rowFactors(A3, randn([2, 8, 3])).length, 2);
      }),
    );
  assert.equal(memory().liveTensors, live, 'no tensor leaked');
});
