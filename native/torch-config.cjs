// Prints compiler/linker flags for libtorch: `node torch-config.cjs include|libs|defines|cflags|openmp`.
// LIBTORCH=/path selects a libtorch: a libtorch distribution (the zip of pytorch.org) or a pip
// PyTorch's torch/ folder (python3 -c 'import torch; print(torch.__path__[0])'), CPU or CUDA.
// Otherwise Debian's libtorch-dev under /usr is used, and nothing here changes its flags.
// Also a module: config(root, env) returns every list, so the layouts are unit-tested.
const path = require('node:path');
const fs = require('node:fs');

const exists = (p) => fs.existsSync(p);

/** The C++ ABI libtorch was built with (0 or 1), or null when it cannot be told. */
function cxxAbi(root) {
  // TorchConfig.cmake: set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=0") on Linux.
  const cmake = path.join(root, 'share', 'cmake', 'Torch', 'TorchConfig.cmake');
  if (exists(cmake)) {
    const m = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(fs.readFileSync(cmake, 'utf8'));
    if (m) return Number(m[1]);
  }
  // Otherwise the symbols of libc10.so: the new ABI mangles std::string as std::__cxx11::basic_string.
  const c10 = path.join(root, 'lib', 'libc10.so');
  if (exists(c10)) return fs.readFileSync(c10).includes('__cxx11') ? 1 : 0;
  return null;
}

/** CUDA's headers: CUDA_HOME, /usr/local/cuda, or the nvidia-* pip packages beside a pip torch/. */
function cudaIncludes(root, env) {
  const dirs = [env.CUDA_HOME && path.join(env.CUDA_HOME, 'include'), '/usr/local/cuda/include'].filter((d) => d && exists(d));
  const nvidia = path.join(root, '..', 'nvidia');
  if (exists(nvidia)) {
    for (const pkg of fs.readdirSync(nvidia).sort()) {
      const inc = path.join(nvidia, pkg, 'include');
      if (exists(inc)) dirs.push(inc);
    }
  }
  return dirs;
}

/**
 * The OpenMP runtime lorkd's kernels link (they are compiled with -fopenmp: ATen's parallel_for
 * is an OpenMP pragma in a header). It must be libtorch's own, or the process holds two runtimes
 * and at::set_num_threads would not reach lorkd's kernels: a pip PyTorch ships its GNU OpenMP
 * renamed in lib/ (libgomp-<hash>.so.1), linked here by path; otherwise the system's libgomp
 * (Debian's libtorch uses it).
 */
function openmp(lib) {
  const bundled = lib && exists(lib) ? fs.readdirSync(lib).filter((f) => /^libgomp.*\.so(\.\d+)*$/.test(f)).sort() : [];
  return bundled.length ? [path.join(lib, bundled[0])] : ['-lgomp'];
}

function config(root, env = process.env) {
  if (!root) {
    return {
      include: ['/usr/include/torch/csrc/api/include'],
      libs: ['-ltorch', '-ltorch_cpu', '-lc10'],
      defines: exists('/usr/include/gloo/config.h') ? ['USE_C10D_GLOO'] : [],
      cflags: [],
      openmp: openmp(''),
    };
  }
  if (!exists(path.join(root, 'include', 'torch'))) {
    throw new Error(`LIBTORCH=${root} has no include/torch: not a libtorch distribution or a pip torch/ folder`);
  }
  const lib = path.join(root, 'lib');
  const cuda = exists(path.join(lib, 'libtorch_cuda.so'));
  const cudaInc = cuda ? cudaIncludes(root, env) : [];
  const include = [path.join(root, 'include'), path.join(root, 'include/torch/csrc/api/include'), ...cudaInc];
  const has = (f) => [path.join(root, 'include'), '/usr/include', ...cudaInc].some((d) => exists(path.join(d, f)));
  const defines = [];
  // c10d: Gloo needs gloo's headers; NCCL needs a CUDA libtorch and nccl.h (either one builds c10d).
  if (has('gloo/config.h')) defines.push('USE_C10D_GLOO');
  if (cuda && has('nccl.h')) defines.push('USE_C10D_NCCL');
  const cudaLibs = [];
  if (cuda) cudaLibs.push('-ltorch_cuda');
  if (exists(path.join(lib, 'libc10_cuda.so'))) cudaLibs.push('-lc10_cuda');
  const libs = [`-L${lib}`, `-Wl,-rpath,${lib}`, '-ltorch', '-ltorch_cpu', '-lc10'];
  // --no-as-needed: nothing in lorkd names a libtorch_cuda symbol, but loading it registers CUDA.
  if (cudaLibs.length) libs.push('-Wl,--no-as-needed', ...cudaLibs, '-Wl,--as-needed');
  const abi = cxxAbi(root);
  return { include, libs, defines: [...new Set(defines)], cflags: abi === null ? [] : [`-D_GLIBCXX_USE_CXX11_ABI=${abi}`], openmp: openmp(lib) };
}

module.exports = { config, cxxAbi };

if (require.main === module) {
  const what = process.argv[2];
  try {
    const c = config(process.env.LIBTORCH || '', process.env);
    if (!(what in c)) throw new Error(`torch-config: unknown query ${what} (include, libs, defines, cflags, openmp)`);
    console.log(c[what].join(' '));
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
