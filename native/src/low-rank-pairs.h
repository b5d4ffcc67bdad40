// The EKS row path at rank 8 on AVX-512: out += s (x A_t^T) B_t^T, then the bias and ReLU, over
// a run of pixel rows of one task (low-rank-pairs.cc).
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace lorkd {
// A (T, 8, Cin) as (T, ceil(Cin / 2), 8, 2): input channels 2p and 2p + 1 of each term side by
// side, zero past Cin. Undefined where the rank is not 8.
at::Tensor lowRankPairs(const at::Tensor& A);
// Whether this CPU runs lowRankPairRows.
bool pairRowsAvailable();
// Rows [0, n) of x (rows ld apart) into out (rows cout apart): out += s (x A^T) B^T, plus bias
// (null: none), then the ReLU if asked. Ap: one task's lowRankPairs block; Bt: its B as (8, Cout).
void lowRankPairRows(const float* x, int64_t ld, int64_t n, int64_t cin, const float* Ap, const float* Bt, const float* bias,
                     float* out, int64_t cout, float s, bool relu);
}  // namespace lorkd
