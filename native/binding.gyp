{
  "targets": [
    {
      "target_name": "lorkd_native",
      "sources": [
        "src/registry.cc",
        "src/tensor.cc",
        "src/ops_math.cc",
        "src/ops_nn.cc",
        "src/eks.cc",
        "src/allocator.cc",
        "src/dist.cc",
        "src/autocast.cc",
        "src/amp.cc",
        "src/infer.cc",
        "src/optim.cc",
        "src/handoff.cc",
        "src/lowrank-blas.cc",
        "src/infer-kernels.cc",
        "src/eks-pointwise.cc",
        "src/shuffle-unit.cc",
        "src/shuffle-grad.cc",
        "src/resnet-trunk.cc",
        "src/few-rows-conv.cc", "src/low-rank-pairs.cc", "src/routed-heads.cc", "src/direct-conv.cc", "src/onednn-chain.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node torch-config.cjs include)",
        "shim"
      ],
      "libraries": ["<!@(node torch-config.cjs libs)", "<!@(node torch-config.cjs openmp)"],
      "defines": ["NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "NAPI_VERSION=8", "<!@(node torch-config.cjs defines)"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++1y", "-std=gnu++17"],
      "cflags_cc": ["<!@(node torch-config.cjs cflags)", "-std=c++17", "-O2", "-fopenmp", "-fexceptions", "-frtti", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "conditions": [
        ["<!(test -f /usr/include/oneapi/dnnl/dnnl.hpp && echo 1 || echo 0)==1", {
          "defines": ["LORKD_DNNL"],
          "libraries": ["-ldnnl"]
        }]
      ]
    }
  ],
  "conditions": [
    ["<!(test -f /usr/include/jpeglib.h && echo 1 || echo 0)==1", {
      "targets": [
        {
          "target_name": "lorkd_jpeg",
          "sources": ["jpeg/crop.cc"],
          "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
          "libraries": ["-ljpeg"],
          "defines": ["NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "NAPI_VERSION=8"],
          "cflags_cc!": ["-fno-exceptions", "-std=gnu++1y", "-std=gnu++17"],
          "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wno-unused-parameter", "-Wno-clobbered"]
        }
      ]
    }]
  ]
}
