// The GPU check's benchmark (bench/gpu-check.sh: benchDecompose on cuda, bf16) at a tiny size on
// the CPU, so its device and precision path runs in CI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchDecompose } from '../bench/decompose.js';
import { UserError, cudaAvailable } from '../src/tensor/index.js';

test('benchDecompose trains under bf16 autocast on the given device and reports it', () => {
  const r = benchDecompose({ device: 'cpu', precision: 'bf16', batch: 4, input: 8, steps: 1, repeats: 1, noTorch: true, noMtl: true, strategy: 'fused', threads: 2 });
  assert.equal(r.device, 'cpu');
  assert.equal(r.precision, 'bf16');
  assert.equal(r.lorkd_strategy, 'fused');
  assert.ok(Number.isFinite(r.lorkd_img_per_s) && r.lorkd_img_per_s > 0);
  assert.equal(r.mtl_img_per_s, null);
});

test('benchDecompose refuses a device it cannot run and fp16 (no GradScaler in a Method)', { skip: cudaAvailable() ? 'CUDA is available here' : false }, () => {
  assert.throws(() => benchDecompose({ device: 'cuda', noTorch: true }), UserError);
  assert.throws(() => benchDecompose({ device: 'cpu', precision: 'fp16', noTorch: true }), UserError);
});
