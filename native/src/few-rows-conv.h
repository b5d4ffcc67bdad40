// A dense convolution over few output pixels (batch x height x width) as one pass over its
// weight (few-rows-conv.cc). At batch 1 the deep layers of a CNN are bound by reading their
// weights, not by arithmetic: ResNet-18's layer4 3x3 convolutions on 64 px input (2x2 maps) each
// read 9.4 MB for 4 output pixels, and oneDNN's direct convolution streamed them at 9-14 GB/s on
// the 2-core Intel Xeon, where a packed GEMM that reads every weight once, front to back, reaches
// 17-22 GB/s (issue 22).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <mutex>

namespace lorkd {
// A groups-1 convolution's weight in column panels of kFewRowsPanel output channels: panel p holds
// K = kh * kw * Cin rows of kFewRowsPanel floats (tap-major, then input channel), zero past Cout.
struct FewRowsConv {
  int64_t cin = 0, cout = 0, kh = 0, kw = 0, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  at::Tensor panels;  // float32 (ceil(Cout / kFewRowsPanel), K, kFewRowsPanel)
  at::Tensor bias;    // float32 (Cout)
};
constexpr int64_t kFewRowsPanel = 32;

// Packs w (Cout, Cin, kh, kw), float32 CPU, with its bias (Cout) and geometry (each 2 entries).
std::unique_ptr<FewRowsConv> fewRowsPack(const at::Tensor& w, const at::Tensor& bias, at::IntArrayRef stride,
                                         at::IntArrayRef padding, at::IntArrayRef dilation);

// relu?(conv(x) + bias + residual?) with x channels_last (N, Cin, H, W) float32; residual, when
// given, channels_last of the output's shape. Returns a channels_last (N, Cout, OH, OW) tensor.
// Throws std::invalid_argument on a shape that does not match.
at::Tensor fewRowsRun(const FewRowsConv& c, const at::Tensor& x, const at::Tensor* residual, bool relu);

// Whether `rows` output pixels of a convolution with K x Cout weights are read-bound enough that
// fewRowsRun beats oneDNN's convolution (measured on ResNet-18's layers; few-rows-conv.cc).
bool fewRowsPays(int64_t rows, int64_t k, int64_t cout);

// A packing made on first use, once, whichever thread asks first (prepared models are shared by
// serving threads).
class LazyFewRows {
 public:
  template <typename Make>
  const FewRowsConv& get(Make make) {
    std::call_once(once_, [&] { conv_ = make(); });
    return *conv_;
  }

 private:
  std::once_flag once_;
  std::unique_ptr<FewRowsConv> conv_;
};

// relu?(conv(x, w) + b) through `lazy`'s packing of w (made on first use) where the convolution is
// dense (groups 1), x a float32 CPU (N, Cin, H, W) that needs no gradient, autocast is off and
// fewRowsPays says so; an undefined tensor otherwise (the caller runs its convolution).
at::Tensor fewRowsConv(LazyFewRows& lazy, const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, bool relu);
}  // namespace lorkd
