// The native pieces of the inference path (src/infer): libtorch's inference mode as a scope the
// TypeScript side opens and closes, and a convolution with BatchNorm already folded into its
// weight and bias, the ReLU fused and the weights pre-packed by oneDNN once (ATen's
// mkldnn_prepacked ops, the ones torch.jit.freeze uses). Where pre-packing does not apply (not a
// float32 CPU tensor, autocast on, or a libtorch without those ops) the same call runs
// at::conv2d and an in-place ReLU: the result is the same function.
#include "common.h"
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

// A pre-packed convolution: the IValue holding ATen's ConvOpContext, owned by a JS External.
using Packed = c10::IValue;

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

// convPrepack(w, b|null, stride, padding, dilation, groups, inputSize[4], relu) -> packed | null
// (null: this weight or this libtorch has no pre-packed path; convInfer then runs at::conv2d).
DEF("convPrepack", {
  at::Tensor w = T(0);
  auto b = OT(1);
  static const auto op = findOp("mkldnn_prepacked::conv2d_prepack");
  if (!op || !at::hasMKLDNN() || !w.is_cpu() || w.scalar_type() != at::kFloat) return ENV.Null();
  torch::jit::Stack stack{c10::IValue(w.contiguous()), c10::IValue(b), c10::IValue(IV(2)), c10::IValue(IV(3)),
                          c10::IValue(IV(4)), c10::IValue(I(5)), c10::IValue(IV(6)),
                          c10::IValue(std::string(B(7) ? "relu" : "none"))};
  try {
    op->callBoxed(&stack);
  } catch (const std::exception&) {
    return ENV.Null();  // a shape oneDNN does not pre-pack (c10::Error, or ideep's dnnl::error): the plain path
  }
  auto* packed = new Packed(std::move(stack.at(0)));
  return Napi::External<Packed>::New(ENV, packed, [](Napi::Env, Packed* p) { delete p; });
})

namespace lorkd {
at::Tensor runPrepacked(const Napi::Value& packed, const at::Tensor& x) {
  static const auto run = findOp("mkldnn_prepacked::conv2d_run");
  if (!packed.IsExternal() || !run || !packable(x)) return at::Tensor();
  // The pre-packed run reads x as a dense tensor of its memory format, ignoring strides: a
  // channel slice (ShuffleNetV2's split) is made dense first.
  torch::jit::Stack stack{c10::IValue(x.contiguous(x.suggest_memory_format())), *packed.As<Napi::External<Packed>>().Data()};
  run->callBoxed(&stack);
  return stack.at(0).toTensor();
}
}  // namespace lorkd

// convInfer(x, w, b|null, packed|null, stride, padding, dilation, groups, relu)
DEF("convInfer", {
  at::Tensor& x = T(0);
  auto pre = runPrepacked(info[3], x);
  if (pre.defined()) R(pre);
  auto y = at::conv2d(x, T(1), OT(2), IV(4), IV(5), IV(6), I(7));
  if (B(8)) y.relu_();
  R(y);
})
