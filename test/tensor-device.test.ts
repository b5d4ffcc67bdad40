// Devices: parsing, the one-line CUDA-missing error, in-place moves (Module.to keeps every
// Parameter object), task ids made on the device they meet, and each rank's device.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseDevice, deviceType, checkDevice, cudaAvailable, cudaDeviceCount, tensor, zeros, randn, noGrad, tidy, memory, UserError, Tensor,
} from '../src/tensor/index.js';
import { Linear } from '../src/nn/linear.js';
import { SGD } from '../src/optim/index.js';
import { Routing } from '../src/data/routing.js';
import { rankDevice, distBackend, distEnv } from '../src/dist/env.js';

describe('parseDevice', () => {
  test('accepts cpu, cuda and cuda:N (any case, padded); undefined and empty are cpu', () => {
    assert.equal(parseDevice(undefined), 'cpu');
    assert.equal(parseDevice(''), 'cpu');
    assert.equal(parseDevice('cpu'), 'cpu');
    assert.equal(parseDevice(' CUDA '), 'cuda');
    assert.equal(parseDevice('cuda:3'), 'cuda:3');
    assert.equal(deviceType('cuda:3'), 'cuda');
    assert.equal(deviceType('cpu'), 'cpu');
  });
  for (const bad of ['gpu', 'cuda:', 'cuda:x', 'cpu:0', 'cuda:-1', 'mps']) {
    test(`refuses "${bad}" with one line that lists the forms`, () => {
      assert.throws(() => parseDevice(bad), (e: Error) => e instanceof UserError && !e.message.includes('\n') && /cpu, cuda or cuda:N/.test(e.message));
    });
  }
});

describe('checkDevice', () => {
  test('cpu always runs', () => assert.equal(checkDevice('cpu'), 'cpu'));
  test('CUDA without a CUDA build is one UserError line that says how to build one', { skip: cudaAvailable() ? 'CUDA is available here' : false }, () => {
    assert.equal(cudaDeviceCount(), 0);
    for (const d of ['cuda', 'cuda:1']) {
      assert.throws(() => checkDevice(d), (e: Error) => e instanceof UserError && !e.message.includes('\n') && e.message.includes('LIBTORCH=') && e.message.includes('./bootstrap.sh'));
    }
  });
  test('a GPU index beyond those visible is refused', { skip: cudaAvailable() ? false : 'no CUDA' }, () => {
    assert.throws(() => checkDevice(`cuda:${cudaDeviceCount()}`), UserError);
  });
  test('pinMemory without CUDA is refused in one line', { skip: cudaAvailable() ? 'CUDA is available here' : false }, () => {
    const t = zeros([2]);
    assert.throws(() => t.pinMemory(), (e: Error) => e instanceof UserError && /needs CUDA/.test(e.message));
    t.dispose();
  });
});

describe('in-place moves', () => {
  test('setData_ swaps the data under the same Tensor: identity, requiresGrad and leafness stay', () => {
    const p = randn([3, 2]).requiresGrad_();
    const values = Array.from(p.toArray() as Float32Array);
    const d = p.to('float64');
    p.setData_(d);
    d.dispose();
    assert.equal(p.dtype, 'float64');
    assert.ok(p.requiresGrad && p.isLeaf);
    const got = Array.from(p.toArray() as Float64Array);
    got.forEach((v, i) => assert.equal(v, values[i]));
    // autograd still works on the same object
    tidy(() => p.mul(p).sum().backward());
    const g = p.grad!;
    (g.toArray() as Float64Array).forEach((v, i) => assert.ok(Math.abs(v - 2 * values[i]!) < 1e-6));
    g.dispose();
    p.dispose();
  });

  test("Module.to('cpu') on a CPU module is a no-op that keeps every Parameter object", () => {
    const m = new Linear(4, 3);
    const before = m.parameters();
    const live = memory().liveTensors;
    assert.equal(m.to('cpu'), m);
    assert.equal(m.device, 'cpu');
    assert.deepEqual(m.parameters(), before);
    assert.equal(memory().liveTensors, live);
    m.dispose();
  });

  test('an optimiser built before the move steps the same parameters after it', () => {
    const m = new Linear(2, 1);
    noGrad(() => {
      m.getParameter('weight').copy_(tensor([1, 2], [1, 2]));
      m.getParameter('bias').fill_(0);
    });
    const opt = new SGD(m.parameters(), { lr: 0.5 });
    m.to('cpu');
    tidy(() => m.forward(tensor([1, 1], [1, 2])).sum().backward());
    opt.step();
    // d(sum)/dw = x = [1, 1], d/db = 1: w = [1, 2] - 0.5 [1, 1], b = -0.5
    assert.deepEqual(Array.from(m.getParameter('weight').toArray() as Float32Array), [0.5, 1.5]);
    assert.deepEqual(Array.from(m.getParameter('bias').toArray() as Float32Array), [-0.5]);
    opt.dispose();
    m.dispose();
  });

  test('Module.to(cuda) without CUDA is refused before anything moves', { skip: cudaAvailable() ? 'CUDA is available here' : false }, () => {
    const m = new Linear(2, 2);
    const w = m.getParameter('weight');
    assert.throws(() => m.to('cuda'), UserError);
    assert.equal(m.getParameter('weight'), w);
    assert.equal(w.device, 'cpu');
    m.dispose();
  });

  test('creation functions take a device', () => {
    const a = zeros([2], { device: 'cpu' });
    const b = tensor([1, 2], [2], { device: 'cpu', dtype: 'float64' });
    assert.equal(a.device, 'cpu');
    assert.equal(b.device, 'cpu');
    assert.ok(b instanceof Tensor);
    a.dispose();
    b.dispose();
  });
});

describe('routing on the device it meets', () => {
  test('taskIdsFor makes the ids on the tensor\'s device once, and dispose frees them', () => {
    const r = new Routing([2, 0, 3]);
    const like = zeros([1], { dtype: 'float64' });
    const live = memory().liveTensors;
    const ids = r.taskIdsFor(like);
    assert.equal(ids.device, like.device);
    assert.equal(ids.dtype, 'int64');
    assert.deepEqual(ids.toNumbers(), [0, 0, 2, 2, 2]);
    assert.equal(r.taskIdsFor(like), ids);
    assert.equal(r.taskIds, ids); // the CPU ids are the same cached tensor here
    assert.equal(memory().liveTensors, live + 1);
    r.dispose();
    assert.equal(memory().liveTensors, live);
    like.dispose();
  });
});

describe('rank devices', () => {
  test("'cuda' becomes the rank's own GPU, cpu stays cpu", () => {
    assert.equal(rankDevice('cpu', 3, 4), 'cpu');
    assert.equal(rankDevice('cuda', 3, 4), 'cuda:3');
    assert.equal(rankDevice('cuda:2', 0, 1), 'cuda:2');
    assert.throws(() => rankDevice('cuda:2', 1, 2), UserError);
  });
  test('NCCL for CUDA, Gloo for the CPU; distEnv gives each rank its device', () => {
    assert.equal(distBackend('cuda:1'), 'nccl');
    assert.equal(distBackend('cpu'), 'gloo');
    const env = { WORLD_SIZE: '4', RANK: '3', LOCAL_WORLD_SIZE: '2', LOCAL_RANK: '1' };
    const cuda = distEnv(env, 'cuda')!;
    assert.equal(cuda.backend, 'nccl');
    assert.equal(cuda.device, 'cuda:1');
    const cpu = distEnv(env)!;
    assert.equal(cpu.backend, 'gloo');
    assert.equal(cpu.device, 'cpu');
    assert.throws(() => distEnv({ ...env, LORKD_DIST_BACKEND: 'nccl' }, 'cpu'), UserError);
  });
});
