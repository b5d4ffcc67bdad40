// oneDNN's own API for the blocked stages of the ResNet trunk (onednn-chain.cc), where the build
// found oneDNN's headers (LORKD_DNNL: Debian's libdnnl-dev, the same libdnnl.so.2 libtorch
// loads). Against ATen's mkldnn_convolution it keeps each primitive made once per input layout,
// where ATen rebuilt its descriptors on every call (0.06-0.17 ms per ResNet-18 block at 224 px
// batch 1, 0.27 for the stem and pooling), and it fuses the ReLU and the residual sum into the
// convolution as post-ops, where the ATen chain ran them as two more passes per block.
#pragma once
#ifdef LORKD_DNNL
#include <dnnl.hpp>
#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <vector>

namespace lorkd::onednn {
// An activation in the layout oneDNN chose: its bytes and their description. A dense
// channels_last float tensor is one too (format nhwc).
struct Act {
  at::Tensor t;  // the bytes (a 1-d uint8 tensor), or the dense tensor itself
  dnnl::memory::desc md;
  bool dense = false;
};

// A dense channels_last or contiguous (N, C, H, W) float32 tensor as an Act, without a copy.
Act wrapDense(const at::Tensor& x);
// The Act as a dense channels_last tensor (itself where it is one).
at::Tensor toDense(const Act& a);

// relu?(conv(x) + bias) with x in any layout, or, given `into` (the output's shape), relu?(conv(x)
// + bias + into) written over into's bytes. w and bias are kept as given (not copied: the caller
// does not change them). Each input layout gets its primitive and its copy of
// the weight in the layout that primitive reads, made on first use (thread-safe).
class Conv {
 public:
  Conv(const at::Tensor& w, const at::Tensor& bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
       int64_t groups, bool relu);
  Act run(const Act& x, Act* into) const;

 private:
  struct Made;
  const Made& made(const dnnl::memory::desc& src, const dnnl::memory::desc* into) const;
  at::Tensor w_, bias_;
  dnnl::memory::dims stride_, padL_, padR_, dilation_;
  int64_t groups_;
  bool relu_;
  mutable std::mutex mu_;
  mutable std::vector<std::shared_ptr<Made>> made_;
};

// The convolution and pooling primitives made since the library was loaded (tests: one set per
// input layout and thread count).
int64_t primitivesMade();

// max_pool2d on an Act (ATen's output size, ceil mode included), in x's layout; its primitive made
// once per input layout.
class MaxPool {
 public:
  MaxPool(at::IntArrayRef kernel, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil);
  Act run(const Act& x) const;

 private:
  struct Made;
  std::vector<int64_t> kernel_, stride_, padding_, dilation_;
  bool ceil_;
  mutable std::mutex mu_;
  mutable std::vector<std::shared_ptr<Made>> made_;
};
}  // namespace lorkd::onednn
#endif
