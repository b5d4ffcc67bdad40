// A prepared ShuffleNetV2 unit (native/src/shuffle-unit.cc) small enough to check by hand: stride
// 1, its branch one 1x1 convolution on 4 channels with the ReLU; an expert one holds 2 tasks at
// rank 2 with scale 0.5. Its tensors live in the caller's tidy scope.
import { randn } from '../../src/tensor/index.js';
import { N } from '../../src/tensor/ops-native.js';

export function preparedUnit(expert: boolean) {
  const w = randn([4, 4, 1, 1]);
  const b = randn([4]);
  const A = randn([2, 2, 4]);
  const B = randn([2, 4, 2]);
  const step: unknown[] = [w.handle, b.handle, 1, [1, 1], [0, 0], true];
  if (expert) step.push(A.handle, B.handle, 0.5);
  return { w, b, A, B, unit: N.shuffleUnitPrepare(1, [], [step]) as unknown };
}
