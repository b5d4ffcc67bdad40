// The end of every ShuffleNetV2 unit in training: channel_shuffle(cat([a, b], 1), 2) as one
// autograd function on channels_last float32 CPU tensors. Forward: one interleaving copy,
// out[..., 2i] = a[..., i], out[..., 2i + 1] = b[..., i] (the inference kernel, catShuffle in
// infer-kernels.cc). Backward: the inverse copy, ga[..., i] = g[..., 2i], gb[..., i] = g[..., 2i + 1],
// each channels_last and dense.
// Through ATen the same end is a cat, a strided copy in a transposed view (the shuffle), and in
// backward a chain of views whose strided gradients the next layers copy again; at 224 px batch
// 32 on two threads that copy took 6.4 ms per stage-2 unit (PyTorch's own 3.9 ms).
#include "common.h"
#include "infer-kernels.h"

#include <ATen/Parallel.h>

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#if defined(__GNUC__) && defined(__x86_64__)
#define LORKD_COPY __attribute__((target_clones("avx2", "default"), optimize("O3")))
#else
#define LORKD_COPY
#endif

LORKD_COPY void deinterleave(const float* __restrict__ g, int64_t ldg, float* __restrict__ a, float* __restrict__ b, int64_t rows,
                             int64_t C) {
  for (int64_t i = 0; i < rows; i++, g += ldg, a += C, b += C)
    for (int64_t c = 0; c < C; c++) {
      a[c] = g[2 * c];
      b[c] = g[2 * c + 1];
    }
}

struct CatShuffle : public torch::autograd::Function<CatShuffle> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& a, const at::Tensor& b) {
    lorkd::PixelRows ra, rb;
    TORCH_CHECK(lorkd::pixelLayout(a, ra) && lorkd::pixelLayout(b, rb), "catShuffle: inputs are not channels_last float32");
    return lorkd::interleaveRows(ra, rb);
  }

  static variable_list backward(AutogradContext*, variable_list grads) {
    at::Tensor g = grads[0];
    lorkd::PixelRows rg;
    if (!lorkd::pixelLayout(g, rg)) {
      g = g.contiguous(at::MemoryFormat::ChannelsLast);
      TORCH_CHECK(lorkd::pixelLayout(g, rg), "catShuffle: gradient is not float32");
    }
    const int64_t C = rg.c / 2;
    auto opts = at::TensorOptions().dtype(at::kFloat).memory_format(at::MemoryFormat::ChannelsLast);
    at::Tensor ga = at::empty({rg.n, C, rg.h, rg.w}, opts), gb = at::empty({rg.n, C, rg.h, rg.w}, opts);
    float *pa = ga.data_ptr<float>(), *pb = gb.data_ptr<float>();
    const float* pg = rg.data;
    const int64_t ld = rg.ld;
    at::parallel_for(0, rg.rows(), lorkd::grainRows(rg.c), [&](int64_t i0, int64_t i1) {
      deinterleave(pg + i0 * ld, ld, pa + i0 * C, pb + i0 * C, i1 - i0, C);
    });
    return {ga, gb};
  }
};
}  // namespace

// catShuffleGrad(a, b) -> channel_shuffle(cat([a, b], 1), 2) recorded for autograd as one
// function, or null where it does not apply (not float32 CPU, not channels_last rows, shapes
// differ): the caller runs the ATen ops.
DEF("catShuffleGrad", {
  const at::Tensor &a = T(0), &b = T(1);
  lorkd::PixelRows ra, rb;
  if (!lorkd::pixelLayout(a, ra) || !lorkd::pixelLayout(b, rb) || a.sizes() != b.sizes()) return ENV.Null();
  R(CatShuffle::apply(a, b));
})
