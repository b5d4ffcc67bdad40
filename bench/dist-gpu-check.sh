#!/usr/bin/env bash
# The GPU check of lorkd's data parallelism (NCCL), for a machine with NVIDIA GPUs and a CUDA
# build of libtorch 1.13 (LIBTORCH=/path/to/libtorch, the libtorch-cxx11-abi zip of pytorch.org
# with CUDA; nccl.h from the CUDA toolkit or NCCL's headers). One process per GPU:
#   1. the addon is built against that libtorch (NCCL enabled when libtorch_cuda and nccl.h exist);
#   2. 1 GPU vs N GPUs train the test's tiny network to the same weights (DDP's Reducer over NCCL,
#      SyncBatchNorm too);
#   3. the all-reduce bandwidth over the expert factors' and backbone's gradient size.
# Usage: LIBTORCH=/opt/libtorch bash bench/dist-gpu-check.sh      (about 3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LIBTORCH:?set LIBTORCH to a CUDA libtorch distribution}"
LIBTORCH="$LIBTORCH" ./bootstrap.sh
ngpu=$(nvidia-smi -L | wc -l)
[ "$ngpu" -ge 1 ] || { echo "no GPU visible"; exit 1; }
n=$(( ngpu < 2 ? 1 : 2 ))
out=$(mktemp -d)
export LORKD_DEVICE=cuda LORKD_DIST_BACKEND=nccl LORKD_DIST_TIMEOUT=60
w=dist/test/helpers/dist-worker.js
for mode in plain syncbn; do
  node $w "$out/one-$mode.safetensors" $mode
  port=$(( 29700 + RANDOM % 200 ))
  pids=()
  for r in $(seq 0 $((n - 1))); do
    RANK=$r LOCAL_RANK=$r WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 MASTER_PORT=$port node $w "$out/n-$mode.safetensors" $mode & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  node --input-type=module -e "
    import { loadSafetensors } from './dist/src/io/safetensors.js';
    const a = loadSafetensors('$out/one-$mode.safetensors').tensors, b = loadSafetensors('$out/n-$mode.safetensors').tensors;
    let m = 0; for (const [k, t] of a) { const x = t.toArray(), y = b.get(k).toArray(); for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i])); }
    console.log(JSON.stringify({ check: 'nccl-ddp-equality', mode: '$mode', gpus: $n, max_weight_diff: m, ok: m < 1e-4 }));"
done
LORKD_DEVICE=cuda node dist/bench/dist-allreduce.js --nproc "$n" --backend nccl
rm -rf "$out"
