// Prints compiler/linker flags for libtorch. LIBTORCH=/path selects a libtorch distribution
// (e.g. a CUDA build); otherwise Debian's libtorch-dev under /usr is used.
const path = require('node:path');
const fs = require('node:fs');
const root = process.env.LIBTORCH;
const what = process.argv[2];
if (root) {
  if (!fs.existsSync(path.join(root, 'include', 'torch'))) {
    console.error(`LIBTORCH=${root} has no include/torch: not a libtorch distribution`);
    process.exit(1);
  }
  if (what === 'include') {
    console.log([path.join(root, 'include'), path.join(root, 'include/torch/csrc/api/include')].join(' '));
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
