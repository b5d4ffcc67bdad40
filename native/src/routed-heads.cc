// The per-task heads of a decomposition over a task-sorted batch in one call (issue 22: at batch 8
// over 10 tasks, a narrow and a linear per task present from JavaScript cost 0.09 ms, 4% of a
// 64 px EKS pass). Where autograd and autocast have nothing to record (float32 CPU tensors, no
// gradient wanted) each head is a direct loop of dot products: at::linear costs some 4 us a call
// on a few rows, the arithmetic less than 1. Elsewhere the per-head path's ATen ops, so autograd
// and autocast see the same graph.
#include "common.h"

#include <ATen/autocast_mode.h>

namespace {
// Most multiply-adds a head takes in the direct loop: above, ATen's GEMM outruns it (a 1,000-class
// head over a batch of 256 is 260 M).
constexpr int64_t kDirectMacs = 1 << 20;

bool plainFloat(const at::Tensor& t) { return t.is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(); }

// x (rows, C) W^T + b for one head, W (K, C): dot products, written out directly.
at::Tensor directHead(const float* x, int64_t rows, int64_t C, const at::Tensor& w, const at::Tensor& b) {
  const int64_t K = w.size(0);
  at::Tensor out = at::empty({rows, K}, at::TensorOptions().dtype(at::kFloat));
  const float *wp = w.data_ptr<float>(), *bp = b.data_ptr<float>();
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < rows; i++)
    for (int64_t k = 0; k < K; k++) {
      const float* __restrict__ xr = x + i * C;
      const float* __restrict__ wr = wp + k * C;
      float s = 0.f;
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; c++) s += xr[c] * wr[c];
      o[i * K + k] = s + bp[k];
    }
  return out;
}
}  // namespace

// routedLinear(x (B, C), counts[T], weights[T], biases[T]) -> [logits_t | null]: task t's rows
// [offset_t, offset_t + counts[t]) through its head; null where counts[t] is 0.
DEF("routedLinear", {
  const at::Tensor& x = T(0);
  const auto counts = IV(1);
  const auto ws = argTList(info, 2), bs = argTList(info, 3);
  if (ws.size() != counts.size() || bs.size() != counts.size())
    throw std::invalid_argument("routedLinear: one weight and one bias per task count");
  int64_t total = 0;
  for (auto c : counts) {
    if (c < 0) throw std::invalid_argument("routedLinear: a negative task count");
    total += c;
  }
  if (x.dim() != 2 || x.size(0) != total)
    throw std::invalid_argument("routedLinear: x must be (rows, features) with one row per counted image");
  bool direct = !(at::GradMode::is_enabled() && x.requires_grad()) && plainFloat(x) && !at::autocast::is_cpu_enabled();
  for (size_t t = 0; t < counts.size() && direct; t++)
    direct = plainFloat(ws[t]) && plainFloat(bs[t]) && !(at::GradMode::is_enabled() && (ws[t].requires_grad() || bs[t].requires_grad())) &&
             ws[t].dim() == 2 && ws[t].size(1) == x.size(1) && bs[t].dim() == 1 && bs[t].size(0) == ws[t].size(0);
  std::vector<at::Tensor> out(counts.size());
  int64_t off = 0;
  for (size_t t = 0; t < counts.size(); t++) {
    if (counts[t] > 0)
      out[t] = direct && counts[t] * ws[t].size(0) * x.size(1) <= kDirectMacs
                   ? directHead(x.data_ptr<float>() + off * x.size(1), counts[t], x.size(1), ws[t], bs[t])
                   : at::linear(x.narrow(0, off, counts[t]), ws[t], bs[t]);
    off += counts[t];
  }
  return wrapList(ENV, out);
})
