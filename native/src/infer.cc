// The native pieces of the inference path (src/infer): libtorch's inference mode as a scope the
// TypeScript side opens and closes, and a convolution with BatchNorm already folded into its
// weight and bias, the ReLU fused and the weights pre-packed by oneDNN once (ATen's
// mkldnn_prepacked ops, the ones torch.jit.freeze uses). Where pre-packing does not apply (not a
// float32 CPU tensor, autocast on, or a libtorch without those ops) the same call runs
// at::conv2d and an in-place ReLU: the result is the same function.
#include "common.h"
#include "few-rows-conv.h"
#include "infer-kernels.h"
#include "prepacked.h"

#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <memory>

namespace {
// Guards of the open inference-mode scopes, innermost last (the JS scopes nest strictly). One
// stack per thread: InferenceMode is thread-local, and a worker thread runs its own scopes.
std::vector<std::unique_ptr<c10::InferenceMode>>& modeStack() {
  thread_local std::vector<std::unique_ptr<c10::InferenceMode>> s;
  return s;
}

c10::optional<c10::OperatorHandle> findOp(const char* name) {
  return c10::Dispatcher::singleton().findSchema({name, ""});
}

// A pre-packed convolution, owned by a JS External: the IValue holding ATen's ConvOpContext, and
// the same weight packed for few output pixels (lorkd::fewRowsConv), made on the first such input.
struct Packed {
  explicit Packed(c10::IValue p) : prepacked(std::move(p)) {}
  c10::IValue prepacked;
  lorkd::LazyFewRows few;
};

bool packable(const at::Tensor& x) {
  return x.is_cpu() && x.scalar_type() == at::kFloat && !at::autocast::is_cpu_enabled() && x.dim() == 4;
}
}  // namespace

DEF("inferenceModeEnter", {
  modeStack().push_back(std::make_unique<c10::InferenceMode>(true));
  return ENV.Undefined();
})
DEF("inferenceModeExit", {
  if (modeStack().empty()) throw std::logic_error("inferenceModeExit without a matching inferenceModeEnter");
  modeStack().pop_back();
  return ENV.Undefined();
})
DEF("isInferenceMode", return Napi::Boolean::New(ENV, c10::InferenceMode::is_enabled());)
DEF("isInferenceTensor", return Napi::Boolean::New(ENV, T(0).is_inference());)

namespace lorkd {
c10::IValue prepackConv(const at::Tensor& w, const c10::optional<at::Tensor>& b, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation, int64_t groups, at::IntArrayRef inputSize, bool relu) {
  static const auto op = findOp("mkldnn_prepacked::conv2d_prepack");
  if (!op || !at::hasMKLDNN() || !w.is_cpu() || w.scalar_type() != at::kFloat) return c10::IValue();
  torch::jit::Stack stack{c10::IValue(w.contiguous()), c10::IValue(b), c10::IValue(stride.vec()), c10::IValue(padding.vec()),
                          c10::IValue(dilation.vec()), c10::IValue(groups), c10::IValue(inputSize.vec()),
                          c10::IValue(std::string(relu ? "relu" : "none"))};
  try {
    op->callBoxed(&stack);
  } catch (const std::exception&) {
    return c10::IValue();  // a shape oneDNN does not pre-pack (c10::Error, or ideep's dnnl::error): the plain path
  }
  return std::move(stack.at(0));
}
}  // namespace lorkd

// convPrepack(w, b|null, stride, padding, dilation, groups, inputSize[4], relu) -> packed | null
// (null: this weight or this libtorch has no pre-packed path; convInfer then runs at::conv2d).
DEF("convPrepack", {
  c10::IValue packed = prepackConv(T(0), OT(1), IV(2), IV(3), IV(4), I(5), IV(6), B(7));
  if (packed.isNone()) return ENV.Null();
  return Napi::External<Packed>::New(ENV, new Packed(std::move(packed)), [](Napi::Env, Packed* p) { delete p; });
})

namespace lorkd {
at::Tensor runPrepacked(const c10::IValue& packed, const at::Tensor& x) {
  static const auto run = findOp("mkldnn_prepacked::conv2d_run");
  if (packed.isNone() || !run || !packable(x)) return at::Tensor();
  // The pre-packed run reads x as a dense tensor of its memory format, ignoring strides: a
  // channel slice (ShuffleNetV2's split) is made dense first.
  torch::jit::Stack stack{c10::IValue(x.contiguous(x.suggest_memory_format())), packed};
  run->callBoxed(&stack);
  return stack.at(0).toTensor();
}

at::Tensor runPrepacked(const Napi::Value& packed, const at::Tensor& x) {
  if (!packed.IsExternal()) return at::Tensor();
  return runPrepacked(packed.As<Napi::External<Packed>>().Data()->prepacked, x);
}

at::Tensor runFewRows(const Napi::Value& packed, const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, bool relu) {
  if (!packed.IsExternal()) return at::Tensor();
  return fewRowsConv(packed.As<Napi::External<Packed>>().Data()->few, x, w, b, stride, padding, dilation, groups, relu);
}
}  // namespace lorkd

// convInfer(x, w, b|null, packed|null, stride, padding, dilation, groups, relu): few output pixels over a
// large weight run through the few-rows packing (few-rows-conv.h), the rest pre-packed by oneDNN.
DEF("convInfer", {
  at::Tensor& x = T(0);
  auto few = runFewRows(info[3], x, T(1), OT(2), IV(4), IV(5), IV(6), I(7), B(8));
  if (few.defined()) R(few);
  // A window past the padded input: oneDNN's pre-packed run answered a 1x1 output there, where
  // conv2d (and so the unfolded model) refuses it; conv2d's own error then.
  const auto stride = IV(4), padding = IV(5), dilation = IV(6);
  const at::Tensor& w = T(1);
  const bool fits = x.dim() != 4 || w.dim() != 4 || stride.size() != 2 || padding.size() != 2 || dilation.size() != 2 ||
                    (windowOutSize(x.size(2), w.size(2), stride[0], padding[0], dilation[0]) > 0 &&
                     windowOutSize(x.size(3), w.size(3), stride[1], padding[1], dilation[1]) > 0);
  if (fits) {
    auto pre = runPrepacked(info[3], x);
    if (pre.defined()) R(pre);
  }
  auto y = at::conv2d(x, w, OT(2), stride, padding, dilation, I(7));
  if (B(8)) y.relu_();
  R(y);
})
