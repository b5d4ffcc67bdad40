// Hand-written CPU kernels of the inference path (infer-kernels.cc), for the layers where a
// generic convolution's set-up costs more than its arithmetic: small ShuffleNetV2 layers at
// batch 1 spend 80-90 us in oneDNN per call for a few microseconds of work (issue 22).
#pragma once
#include <torch/torch.h>

namespace lorkd {
// A float32 CPU tensor (N, C, H, W) whose memory is (N*H*W) rows of C channels, `ld` floats
// apart: channels_last, or a channel slice of a channels_last tensor (ShuffleNetV2's split).
struct PixelRows {
  const float* data = nullptr;
  int64_t n = 0, c = 0, h = 0, w = 0, ld = 0;
  int64_t rows() const { return n * h * w; }
};
// Output size of a window op (convolution, pooling) along one axis: 0 where the dilated window
// does not fit in the padded input.
inline int64_t windowOutSize(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d = 1) {
  const int64_t span = d * (k - 1) + 1;
  return in + 2 * p < span ? 0 : (in + 2 * p - span) / s + 1;
}
// Rows per parallel chunk of a pass over rows of `cols` values: about 64 Ki values each (smaller
// chunks cost more in the threads' start and join than they save at batch 1).
inline int64_t grainRows(int64_t cols) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1)); }

// Whether x has that layout (and no autograd record to keep); fills `r` if so.
bool pixelRows(const at::Tensor& x, PixelRows& r);
// Whether x has that layout, whatever its autograd record (the caller keeps it: shuffle-grad.cc).
bool pixelLayout(const at::Tensor& x, PixelRows& r);

// oneDNN's row-major GEMM, C = alpha op(A) op(B) + beta C (dnnl_sgemm, from the oneDNN libtorch
// loaded; threaded like ATen), or null where that libtorch has none.
using DnnlSgemm = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
DnnlSgemm dnnlSgemm();
// o = relu?(o + b) over `rows` rows of `cols` values (b may be null), in parallel.
void addBiasRelu(float* o, const float* b, int64_t rows, int64_t cols, bool relu);

// relu?(x W^T + b) for a 1x1, stride 1, unpadded convolution with weight (Cout, Cin, 1, 1): one
// GEMM over the pixel rows (oneDNN's dnnl_sgemm, threaded like ATen) and one pass adding the
// bias and clamping. Undefined where it does not apply (layout, dtype, no dnnl_sgemm in the
// libtorch loaded, or an output past 32 Ki values over more than 4 Ki pixel rows, where oneDNN's convolution is faster): the
// caller runs the convolution. `wt`, where given, is w as (Cin, Cout) (pointwiseTransposed): over
// at most 256 pixel rows the GEMM reads it as is, which dnnl_sgemm does faster than the transposed
// (Cout, Cin) read (ShuffleNetV2's 1x1 shapes at 4-128 rows: 3.3-22 against 3.7-28 us, one thread).
at::Tensor pointwiseConv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, bool relu, const at::Tensor& wt = {});
// The 1x1 weight (Cout, Cin, 1, 1) as pointwiseConv's `wt`: (Cin, Cout), contiguous.
at::Tensor pointwiseTransposed(const at::Tensor& w);

// relu?(depthwise conv(x, w) + b) with a k x k window (kh, kw), any stride and padding, dilation 1,
// on pixel rows, as a direct loop vectorised over channels. `taps` is the weight (C, 1, kh, kw)
// tap-major, (kh * kw, C) contiguous (depthwiseTaps). Undefined where it does not apply (as
// pointwiseConv, large outputs included).
at::Tensor depthwiseConv(const at::Tensor& x, const at::Tensor& taps, int64_t kh, int64_t kw, const at::Tensor& bias,
                         at::IntArrayRef stride, at::IntArrayRef padding, bool relu);
// The depthwise weight (C, 1, kh, kw) as depthwiseConv's taps.
at::Tensor depthwiseTaps(const at::Tensor& w);

// channel_shuffle(cat([a, b], 1), 2) in one pass: out[..., 2i] = a[..., i], out[..., 2i + 1] =
// b[..., i], channels_last. Undefined where it does not apply (shapes differ, layout).
at::Tensor catShuffle(const at::Tensor& a, const at::Tensor& b);
// The same pass on rows already checked (same n, c, h, w), in parallel.
at::Tensor interleaveRows(const PixelRows& a, const PixelRows& b);

// relu?(conv(x, W_t) + b) for a dense convolution with few taps per output (a network's first
// layer) and 8, 16, ..., 64 output channels, dilation 1, on AVX2 with FMA: each image through its
// task's weight (taps (T, kh*kw*Cin, Cout) from stemTaps; counts: images per task, empty for T = 1).
// Undefined where it does not apply.
at::Tensor stemConv(const at::Tensor& x, const at::Tensor& taps, int64_t kh, int64_t kw, const at::Tensor& bias,
                    at::IntArrayRef stride, at::IntArrayRef padding, bool relu, const std::vector<int64_t>& counts);
// W0 (A, B undefined: T = 1) or each task's merged weight W0 + s reshape(B_t A_t), per tap.
at::Tensor stemTaps(const at::Tensor& w0, const at::Tensor& A, const at::Tensor& B, double s);

// max_pool2d(x, (kh, kw), stride, padding) with dilation 1 and floor mode, on pixel rows.
at::Tensor maxPool(const at::Tensor& x, int64_t kh, int64_t kw, at::IntArrayRef stride, at::IntArrayRef padding);

// out_t += s (X_t A_t^T) B_t^T on each task's pixel rows, then the ReLU if asked, one row at a time
// in one pass (the EKS pass of a 1x1 expert convolution after its shared convolution). At, Bt:
// the factors A (T, r, Cin) and B (T, Cout, r) as (T, Cin, r) and (T, r, Cout) (lowRankRowFactors).
// False (nothing touched) where it does not apply.
// Ap: lowRankPairs(A) for the AVX-512 loop at rank 4, 8, 16 (undefined: the AVX2 or plain loop); bias
// (undefined: none) is added in the same pass, before the ReLU.
bool addLowRankRows(const at::Tensor& x, at::Tensor& out, const at::Tensor& At, const at::Tensor& Bt, const at::Tensor& Ap,
                    const at::Tensor& bias, const std::vector<int64_t>& counts, double s, bool relu);
struct RowFactors {
  at::Tensor At, Bt, Ap;  // Ap undefined where the rank is not 8
};
RowFactors lowRankRowFactors(const at::Tensor& A, const at::Tensor& B);
// Ap's data where it is lowRankPairs' arrangement for At's tasks and channels, else null.
const float* pairsOf(const at::Tensor& Ap, const at::Tensor& At);
// The same on rows [from, to) of x into `out` (rows `cout` apart), raw: At, Bt as above, `first`
// each task's first row (T + 1 entries, the last = all rows); `bias` (null: none) is added in the
// same pass.
// `pairs` (null: none): Ap's data, for the AVX-512 loop.
void lowRankRange(const PixelRows& x, float* out, int64_t cout, const float* At, const float* Bt, const float* pairs, const float* bias, int64_t rank,
                  const std::vector<int64_t>& first, int64_t from, int64_t to, float s, bool relu);

// Whether dnnl_sgemm was found (pointwiseConv runs).
bool pointwiseAvailable();
}  // namespace lorkd
