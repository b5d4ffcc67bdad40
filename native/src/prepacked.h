// A convolution pre-packed by oneDNN (infer.cc's convPrepack), run from other op files.
#pragma once
#include <napi.h>
#include <torch/torch.h>

namespace lorkd {
// The pre-packed convolution `packed` (convPrepack's External) on x, with the bias and ReLU it
// was packed with; an undefined tensor where it does not apply (no packing, not float32 CPU,
// autocast on): the caller then runs the plain convolution.
at::Tensor runPrepacked(const Napi::Value& packed, const at::Tensor& x);
}  // namespace lorkd
