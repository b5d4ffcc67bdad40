// The EKS inference pass's low-rank paths as raw BLAS calls (lowrank-blas.cc).
#pragma once
#include <torch/torch.h>

#include <vector>

namespace lorkd {
// out_t += s (X_t A_t^T) B_t^T on each task's rows of the (N*H*W, C) channels_last views of x (its
// pixel rows: a channel slice too) and out, as two sgemm calls per task present straight into out's memory: no ATen op, no tensor
// made. Returns false (and touches nothing) where it does not apply: not float32 CPU tensors
// with dense rows, sizes past BLAS's int, or no sgemm_ in the BLAS libtorch was linked with;
// the caller then runs the ATen ops.
bool addLowRankBlas(const at::Tensor& x, at::Tensor& out, const at::Tensor& A, const at::Tensor& B,
                    const std::vector<int64_t>& counts, double s);
}  // namespace lorkd
