// The EKS pass of a folded 1x1 expert convolution with each task's rows through its merged weight
// where that is cheaper than the row-by-row low-rank paths (eks-pointwise.cc).
#pragma once
#include <torch/torch.h>

#include <vector>

namespace lorkd {
// relu?(x W0^T + bias + s (x A_t^T) B_t^T) on each task's pixel rows (counts: images per task,
// grouped in order), exactly; At, Bt, Ap (may be undefined) as lowRankRowFactors makes them. Undefined where it does not
// apply or where no task has enough rows to be merged (the caller then runs the shared
// convolution and addLowRankRows).
at::Tensor eksPointwise(const at::Tensor& x, const at::Tensor& w0, const at::Tensor& bias, const at::Tensor& At,
                        const at::Tensor& Bt, const at::Tensor& Ap, const std::vector<int64_t>& counts, double s, bool relu);
// Whether a task with `rows` pixel rows is computed through its merged weight (`pairs`: its row
// path would run the AVX-512 loop).
bool mergesTask(int64_t rows, int64_t cin, int64_t cout, int64_t rank, bool pairs);
}  // namespace lorkd
