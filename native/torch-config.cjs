// Prints compiler/linker flags for libtorch. LIBTORCH=/path selects a libtorch distribution
// (e.g. a CUDA build); otherwise Debian's libtorch-dev under /usr is used.
const path = require('node:path');
const fs = require('node:fs');
const root = process.env.LIBTORCH;
const what = process.argv[2];
// c10d: Gloo needs gloo's headers (Debian: libgloo-dev; libtorch distributions ship them);
// NCCL needs a CUDA libtorch and nccl.h (CUDA toolkit / NCCL headers).
if (what === 'defines') {
  const inc = root ? [path.join(root, 'include'), '/usr/include'] : ['/usr/include'];
  const has = (f) => inc.some((d) => fs.existsSync(path.join(d, f)));
  const out = [];
  if (has('gloo/config.h')) out.push('USE_C10D_GLOO');
  const cudaInc = [process.env.CUDA_HOME && path.join(process.env.CUDA_HOME, 'include'), '/usr/local/cuda/include'].filter(Boolean);
  if (root && fs.existsSync(path.join(root, 'lib', 'libtorch_cuda.so')) && [...inc, ...cudaInc].some((d) => fs.existsSync(path.join(d, 'nccl.h')))) out.push('USE_C10D_NCCL', 'USE_C10D_GLOO');
  console.log([...new Set(out)].join(' '));
  process.exit(0);
}
if (root) {
  if (!fs.existsSync(path.join(root, 'include', 'torch'))) {
    console.error(`LIBTORCH=${root} has no include/torch: not a libtorch distribution`);
    process.exit(1);
  }
  if (what === 'include') {
    // A CUDA libtorch: the CUDA toolkit's headers (cuda_runtime.h, nccl.h) for ProcessGroupNCCL.
    const cuda = [process.env.CUDA_HOME && path.join(process.env.CUDA_HOME, 'include'), '/usr/local/cuda/include'].filter((d) => d && fs.existsSync(d));
    const withCuda = fs.existsSync(path.join(root, 'lib', 'libtorch_cuda.so')) ? cuda.slice(0, 1) : [];
    console.log([path.join(root, 'include'), path.join(root, 'include/torch/csrc/api/include'), ...withCuda].join(' '));
  } else {
    const lib = path.join(root, 'lib');
    const cuda = fs.existsSync(path.join(lib, 'libtorch_cuda.so')) ? ' -Wl,--no-as-needed -ltorch_cuda -Wl,--as-needed' : '';
    console.log(`-L${lib} -Wl,-rpath,${lib} -ltorch -ltorch_cpu -lc10${cuda}`);
  }
} else if (what === 'include') {
  console.log('/usr/include/torch/csrc/api/include');
} else {
  console.log('-ltorch -ltorch_cpu -lc10');
}
