// A dense convolution as a direct loop on channels_last tensors (direct-conv.cc), for the trunk of
// a CNN at inference: each output tile of 6 pixels x 64 channels stays in 24 AVX-512 registers
// while the kernel window and 16 input channels at a time pass over it, and the bias, the
// residual sum and the ReLU are applied as the tile is stored. oneDNN's direct convolution needs
// its blocked layout and runs the residual sum and the ReLU as separate passes (issue 22).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <stdexcept>

namespace lorkd {
// The weight in panels of up to 64 output channels; each panel in blocks of up to 16 input
// channels, each block tap-major: [panel][block][kh][kw][input channel][output channel].
struct DirectConv {
  int64_t cin = 0, cout = 0, kh = 0, kw = 0, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  at::Tensor packed;  // float32, 64-byte aligned (ATen's CPU allocator)
  at::Tensor bias;    // float32 (Cout)
};

// Whether this CPU runs the direct loop (AVX-512F), and a test or a benchmark can turn it off.
bool directConvEnabled();
// Whether a trunk stage whose largest convolution has `macs` multiply-adds takes the direct loop:
// enabled, and at most directConvSwitch's bound (default 2^24: ResNet-18's stages at 64 px, batch
// 1). Measured on ResNet-18 in alternating runs, one and two threads: against ATen's oneDNN ops the
// loop was 1.15-1.17x faster at 64 px batch 1 and ahead up to 2^26 (batch 4); against
// onednn-chain.cc's cached, fused primitives it ties at batch 1 (3.27-3.29 against 3.27-3.33 ms on
// one thread, 1.82-1.87 against 1.84-1.95 on two) and loses at batch 2 (6.4 against 5.6 ms).
bool directConvPays(int64_t macs);

// Whether the loop can run a convolution of w (Cout, Cin / groups, kh, kw): float32, groups 1,
// Cout a multiple of 16, on a CPU with AVX-512 (whether it is switched on or not).
bool directConvFits(const at::Tensor& w, int64_t groups);

// Packs w (Cout, Cin, kh, kw), float32 CPU, groups 1, with its bias (Cout) and geometry (2 entries
// each); null where the loop does not apply (directConvFits false).
std::unique_ptr<DirectConv> directConvPack(const at::Tensor& w, const at::Tensor& bias, at::IntArrayRef stride,
                                           at::IntArrayRef padding, at::IntArrayRef dilation);

// relu?(conv(x) + bias + residual?) with x float32 (N, Cin, H, W) in any layout (made
// channels_last); residual, when given, of the output's shape. Returns a channels_last tensor.
// Throws std::invalid_argument on a shape that does not match.
at::Tensor directConvRun(const DirectConv& c, const at::Tensor& x, const at::Tensor* residual, bool relu);

// A packing made on first use, once, whichever thread asks first (as LazyFewRows): the trunk packs
// only the convolutions of the stages that take the loop (ResNet-18's weights would otherwise be
// held once more, 45 MB).
class LazyDirect {
 public:
  template <typename Make>
  const DirectConv& get(Make make) {
    std::call_once(once_, [&] { conv_ = make(); });
    if (!conv_) throw std::logic_error("LazyDirect: the convolution does not fit the direct loop");
    return *conv_;
  }

 private:
  std::once_flag once_;
  std::unique_ptr<DirectConv> conv_;
};
}  // namespace lorkd
