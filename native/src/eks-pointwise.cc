// The EKS pass of a folded 1x1 expert convolution, each task's pixel rows by the cheaper of two
// exact routes (issue 22: the pass at 1.2-1.7x the fused expert's time when every row took the
// row-by-row low-rank path):
//   - merged: the task's weight W_t = W0' + s B_t A_t, made for the call (r Cin Cout
//     multiply-adds, the cost of r rows of the GEMM), then one GEMM of its rows;
//   - low-rank: the GEMM with W0' and, row by row, out += s (x A_t^T) B_t^T (r (Cin + Cout) per
//     row, in a loop that runs at about half the GEMM's speed in AVX2, and near it on AVX-512 at
//     r = 4, 8, 16).
// A task is merged where the row path would cost more: rows cost r (Cin + Cout) >= r Cin Cout +
// kMergeCalls. At 224 px, batch 1, that is ShuffleNetV2's stages 2 and 3 (on AVX-512 one image of
// a batch merges stage 2 only); at 64 px only large groups. Consecutive low-rank tasks share one
// GEMM.
#include "eks-pointwise.h"

#include "common.h"
#include "infer-kernels.h"
#include "low-rank-pairs.h"

#include <cstring>

namespace {
// The row path's cost per multiply-add relative to the GEMM's, and the merged route's two extra
// GEMM calls in multiply-adds (about 5 us). Set on the 2-core machine: 2.0 for the AVX2 loop; 0.6
// for the AVX-512 loop (low-rank-pairs.cc; set at r = 8), where 224 px batch 8
// and 32 went from 1.11-1.24x the fused expert to 1.09-1.14x (stage 3 left unmerged; two
// alternating runs each) and 64 px did not move beyond its spread.
constexpr double kRowPathCost = 2.0, kPairRowPathCost = 0.6;
constexpr double kMergeCalls = 131072;

bool denseFloat(const at::Tensor& t) {
  return t.is_cpu() && t.scalar_type() == at::kFloat && !t.requires_grad() && t.is_contiguous();
}
}  // namespace

namespace lorkd {
bool mergesTask(int64_t rows, int64_t cin, int64_t cout, int64_t rank, bool pairs) {
  const double r = static_cast<double>(rank);
  return static_cast<double>(rows) * (pairs ? kPairRowPathCost : kRowPathCost) * r * static_cast<double>(cin + cout) >= r * static_cast<double>(cin * cout) + kMergeCalls;
}

at::Tensor eksPointwise(const at::Tensor& x, const at::Tensor& w0, const at::Tensor& bias, const at::Tensor& At,
                        const at::Tensor& Bt, const at::Tensor& Ap, const std::vector<int64_t>& counts, double s, bool relu) {
  const DnnlSgemm sgemm = dnnlSgemm();
  PixelRows r;
  if (!sgemm || !pixelRows(x, r) || !denseFloat(w0) || !denseFloat(At) || !denseFloat(Bt) || w0.dim() != 4 || At.dim() != 3 ||
      Bt.dim() != 3)
    return {};
  const int64_t cout = w0.size(0), cin = r.c, T = At.size(0), rank = At.size(2), hw = r.h * r.w;
  if (w0.size(1) != cin || w0.size(2) != 1 || w0.size(3) != 1 || At.size(1) != cin || Bt.size(0) != T || Bt.size(1) != rank ||
      Bt.size(2) != cout || static_cast<int64_t>(counts.size()) != T)
    return {};
  if (bias.defined() && (!denseFloat(bias) || bias.numel() != cout)) return {};
  const float* pairs = pairsOf(Ap, At);
  const bool paired = pairs && pairRank(rank) && pairRowsAvailable();
  std::vector<int64_t> first(T + 1, 0);
  bool anyMerged = false;
  for (int64_t t = 0; t < T; t++) {
    if (counts[t] < 0) return {};
    first[t + 1] = first[t] + counts[t] * hw;
    anyMerged = anyMerged || (counts[t] > 0 && mergesTask(counts[t] * hw, cin, cout, rank, paired));
  }
  if (first[T] != r.rows() || !anyMerged) return {};

  at::Tensor out = at::empty({r.n, cout, r.h, r.w}, at::TensorOptions().dtype(at::kFloat).memory_format(at::MemoryFormat::ChannelsLast));
  float* o = out.data_ptr<float>();
  const float *w = w0.data_ptr<float>(), *a = At.data_ptr<float>(), *b = Bt.data_ptr<float>();
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  const float sf = static_cast<float>(s);
  thread_local std::vector<float> merged;  // serve's workers run passes on their own threads
  merged.resize(cout * cin);
  auto gemm = [&](int64_t i0, int64_t i1, const float* weight) {
    return sgemm('N', 'T', i1 - i0, cout, cin, 1.f, r.data + i0 * r.ld, r.ld, weight, cin, 0.f, o + i0 * cout, cout) == 0;
  };
  // Rows [lo, t's first) are low-rank tasks not yet computed.
  int64_t lo = 0;
  auto flushLowRank = [&](int64_t hi) {
    if (hi <= lo) return true;
    if (!gemm(lo, hi, w)) return false;
    lowRankRange(r, o, cout, a, b, pairs, bp, rank, first, lo, hi, sf, relu);
    return true;
  };
  for (int64_t t = 0; t < T; t++) {
    const int64_t i0 = first[t], i1 = first[t + 1];
    if (i1 == i0 || !mergesTask(i1 - i0, cin, cout, rank, paired)) continue;
    if (!flushLowRank(i0)) return {};
    // W_t = W0' + s B_t A_t, row-major (Cout, Cin): B_t is Bt[t]^T (Cout x r), A_t is At[t]^T (r x Cin).
    std::memcpy(merged.data(), w, sizeof(float) * cout * cin);
    if (sgemm('T', 'T', cout, cin, rank, sf, b + t * rank * cout, cout, a + t * cin * rank, rank, 1.f, merged.data(), cin) != 0 ||
        !gemm(i0, i1, merged.data()))
      return {};
    addBiasRelu(o + i0 * cout, bp, i1 - i0, cout, relu);
    lo = i1;
  }
  if (!flushLowRank(r.rows())) return {};
  return out;
}
}  // namespace lorkd

// lowRankRowFactors(A, B) -> [At, Bt] or, at rank 4, 8 and 16, [At, Bt, Ap]: the factors arranged for the
// row-by-row low-rank paths (Ap: for the AVX-512 loop, low-rank-pairs.cc).
DEF("lowRankRowFactors", {
  auto f = lowRankRowFactors(T(0), T(1));
  if (!f.Ap.defined()) return wrapList(ENV, {f.At, f.Bt});
  return wrapList(ENV, {f.At, f.Bt, f.Ap});
})
// eksPointwiseInfer(x, w0, bias|null, At, Bt, counts, scale, relu, Ap|null) -> out | null (null: no
// task merged, or not this kernel's case).
DEF("eksPointwiseInfer", {
  auto b = OT(2);
  auto ap = OT(8);
  auto out = eksPointwise(T(0), T(1), b ? *b : at::Tensor(), T(3), T(4), ap ? *ap : at::Tensor(), IV(5), D(6), B(7));
  if (!out.defined()) return ENV.Null();
  R(out);
})
