// A convolution pre-packed by oneDNN (infer.cc's convPrepack), run from other op files.
#pragma once
#include <napi.h>
#include <torch/torch.h>

namespace lorkd {
// The pre-packed convolution `packed` (convPrepack's External) on x, with the bias and ReLU it
// was packed with; an undefined tensor where it does not apply (no packing, not float32 CPU,
// autocast on): the caller then runs the plain convolution.
at::Tensor runPrepacked(const Napi::Value& packed, const at::Tensor& x);

// The same convolution through the few-rows packing that `packed` holds beside oneDNN's (made on
// first use; few-rows-conv.h), where fewRowsConv takes x; undefined otherwise.
at::Tensor runFewRows(const Napi::Value& packed, const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, bool relu);

// The same on a pre-packed convolution held natively (prepackConv's IValue).
at::Tensor runPrepacked(const c10::IValue& packed, const at::Tensor& x);

// oneDNN's pre-packed convolution of w (and b, and the ReLU) for input of `inputSize`; None where
// it does not apply (no pre-packed ops in this libtorch, not float32 CPU, a shape oneDNN refuses).
c10::IValue prepackConv(const at::Tensor& w, const c10::optional<at::Tensor>& b, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation, int64_t groups, at::IntArrayRef inputSize, bool relu);
}  // namespace lorkd
