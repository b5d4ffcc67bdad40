// The EKS row path on AVX-512 at rank 4, 8 or 16: out += s (x A_t^T) B_t^T, then the bias and
// ReLU, over a run of pixel rows of one task (low-rank-pairs.cc).
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace lorkd {
// Whether lowRankPairRows has a loop for this rank (4, 8 or 16).
bool pairRank(int64_t rank);
// A (T, r, Cin) as (T, ceil(Cin / G), r, G) with G = 16 / r: input channels G p .. G p + G - 1 of
// each term side by side, zero past Cin. Undefined where pairRank(r) is false.
at::Tensor lowRankPairs(const at::Tensor& A);
// Whether this CPU runs lowRankPairRows.
bool pairRowsAvailable();
// Rows [0, n) of x (rows ld apart) into out (rows cout apart): out += s (x A^T) B^T, plus bias
// (null: none), then the ReLU if asked. Ap: one task's lowRankPairs block; Bt: its B as (r, Cout).
void lowRankPairRows(const float* x, int64_t ld, int64_t n, int64_t cin, int64_t rank, const float* Ap, const float* Bt,
                     const float* bias, float* out, int64_t cout, float s, bool relu);
}  // namespace lorkd
