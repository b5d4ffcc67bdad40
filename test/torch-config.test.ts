// native/torch-config.cjs on fake folder layouts: Debian's default, a libtorch zip, a pip torch/
// folder with its nvidia-* neighbours, the C++ ABI flag from TorchConfig.cmake or from libc10.so.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.resolve(here, '../../native/torch-config.cjs');
const require = createRequire(import.meta.url);
const { config } = require(script) as {
  config: (root: string, env?: Record<string, string | undefined>) => { include: string[]; libs: string[]; defines: string[]; cflags: string[]; openmp: string[] };
};

const tmp = mkdtempSync(path.join(os.tmpdir(), 'lorkd-torch-config-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Makes files (with optional content) under a fresh folder; returns its path. */
function layout(name: string, files: Record<string, string>): string {
  const root = path.join(tmp, name);
  for (const [f, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    writeFileSync(path.join(root, f), content);
  }
  return root;
}

const noCuda = { CUDA_HOME: path.join(tmp, 'no-cuda') };

describe('torch-config', () => {
  test("without LIBTORCH: Debian's flags, exactly as before", () => {
    const c = config('', noCuda);
    assert.deepEqual(c.include, ['/usr/include/torch/csrc/api/include']);
    assert.deepEqual(c.libs, ['-ltorch', '-ltorch_cpu', '-lc10']);
    assert.deepEqual(c.cflags, []);
    assert.deepEqual(c.openmp, ['-lgomp'], "the system's GNU OpenMP, the one Debian's libtorch uses");
  });

  test("a pip torch/ folder's bundled OpenMP runtime is linked by path (one runtime in the process); a zip without one links -lgomp", () => {
    const pip = layout('pip-gomp', { 'include/torch/torch.h': '', 'lib/libtorch.so': '', 'lib/libgomp-a34b3233.so.1': '' });
    assert.deepEqual(config(pip, noCuda).openmp, [path.join(pip, 'lib', 'libgomp-a34b3233.so.1')]);
    const zip = layout('zip-no-gomp', { 'include/torch/torch.h': '', 'lib/libtorch.so': '' });
    assert.deepEqual(config(zip, noCuda).openmp, ['-lgomp']);
  });

  test('a CPU libtorch zip: its include and lib folders, rpath, no CUDA libraries', () => {
    const root = layout('zip-cpu', { 'include/torch/torch.h': '', 'lib/libtorch.so': '', 'share/cmake/Torch/TorchConfig.cmake': 'set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=1")\n' });
    const c = config(root, noCuda);
    assert.deepEqual(c.include, [path.join(root, 'include'), path.join(root, 'include/torch/csrc/api/include')]);
    assert.ok(c.libs.includes(`-L${path.join(root, 'lib')}`) && c.libs.includes(`-Wl,-rpath,${path.join(root, 'lib')}`));
    assert.ok(!c.libs.some((l) => l.includes('cuda')));
    assert.deepEqual(c.cflags, ['-D_GLIBCXX_USE_CXX11_ABI=1']);
    assert.ok(!c.defines.includes('USE_C10D_NCCL'));
  });

  test('a pip torch/ folder with CUDA: old ABI from TorchConfig.cmake, CUDA libs, nvidia-* headers, NCCL', () => {
    const site = layout('site-packages', {
      'torch/include/torch/torch.h': '',
      'torch/include/gloo/config.h': '',
      'torch/lib/libtorch_cuda.so': '',
      'torch/lib/libc10_cuda.so': '',
      'torch/share/cmake/Torch/TorchConfig.cmake': 'if(CMAKE_SYSTEM_NAME STREQUAL "Linux")\n  set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=0")\nendif()\n',
      'nvidia/nccl/include/nccl.h': '',
      'nvidia/cuda_runtime/include/cuda_runtime_api.h': '',
    });
    const root = path.join(site, 'torch');
    const c = config(root, noCuda);
    assert.deepEqual(c.cflags, ['-D_GLIBCXX_USE_CXX11_ABI=0']);
    const i = c.libs.indexOf('-Wl,--no-as-needed');
    assert.deepEqual(c.libs.slice(i), ['-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed']);
    assert.ok(c.include.includes(path.join(site, 'nvidia/nccl/include')));
    assert.ok(c.include.includes(path.join(site, 'nvidia/cuda_runtime/include')));
    assert.ok(c.defines.includes('USE_C10D_NCCL') && c.defines.includes('USE_C10D_GLOO'));
  });

  test('without TorchConfig.cmake the ABI is read from the symbols of libc10.so', () => {
    const newAbi = layout('abi-new', { 'include/torch/x.h': '', 'lib/libc10.so': '\u0000_ZN3c106detail19torchCheckFailERKNSt7__cxx1112basic_stringB5cxx11\u0000' });
    const oldAbi = layout('abi-old', { 'include/torch/x.h': '', 'lib/libc10.so': '\u0000_ZN3c106detail19torchCheckFailERKSs\u0000' });
    const neither = layout('abi-unknown', { 'include/torch/x.h': '' });
    assert.deepEqual(config(newAbi, noCuda).cflags, ['-D_GLIBCXX_USE_CXX11_ABI=1']);
    assert.deepEqual(config(oldAbi, noCuda).cflags, ['-D_GLIBCXX_USE_CXX11_ABI=0']);
    assert.deepEqual(config(neither, noCuda).cflags, []);
  });

  test('a folder without include/torch is refused in one line by the command', () => {
    const r = spawnSync(process.execPath, [script, 'include'], { env: { ...process.env, LIBTORCH: path.join(tmp, 'nothing') }, encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr.trim(), /^LIBTORCH=.* has no include\/torch: not a libtorch distribution or a pip torch\/ folder$/);
  });

  test('the command prints each list on one line', () => {
    const root = layout('cli', { 'include/torch/t.h': '', 'share/cmake/Torch/TorchConfig.cmake': '-D_GLIBCXX_USE_CXX11_ABI=0' });
    const run = (q: string) => spawnSync(process.execPath, [script, q], { env: { ...process.env, ...noCuda, LIBTORCH: root }, encoding: 'utf8' });
    assert.equal(run('cflags').stdout.trim(), '-D_GLIBCXX_USE_CXX11_ABI=0');
    assert.equal(run('include').stdout.trim(), `${path.join(root, 'include')} ${path.join(root, 'include/torch/csrc/api/include')}`);
    assert.equal(run('bogus').status, 1);
  });
});
