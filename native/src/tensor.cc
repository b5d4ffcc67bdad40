// Tensor creation, conversion to and from JS memory, metadata, autograd, memory, threads, RNG.
#include "common.h"

#include <cstring>

namespace {
at::TensorOptions opts(const Napi::CallbackInfo& info, size_t dtypeArg, size_t deviceArg) {
  auto o = at::TensorOptions().dtype(lorkd::argOptDtype(info, dtypeArg).value_or(at::kFloat));
  return o.device(lorkd::argDevice(info, deviceArg));
}
}  // namespace

// ---- creation: fromBuffer(bytes: ArrayBufferView, shape, dtype) copies the bytes.
DEF("fromBuffer", {
  if (!info[0].IsTypedArray() && !info[0].IsDataView() && !info[0].IsBuffer())
    throw Napi::TypeError::New(ENV, "argument 0 must be a typed array");
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  auto shape = IV(1);
  auto dtype = argDtype(info, 2);
  int64_t n = 1;
  for (auto s : shape) {
    if (s < 0) throw Napi::RangeError::New(ENV, "negative dimension in shape");
    n *= s;
  }
  size_t bytes = ta.ByteLength();
  size_t need = static_cast<size_t>(n) * c10::elementSize(dtype);
  if (bytes != need)
    throw Napi::RangeError::New(ENV, "buffer has " + std::to_string(bytes) + " bytes, shape needs " +
                                         std::to_string(need));
  auto t = at::empty(shape, at::TensorOptions().dtype(dtype));
  uint8_t* src = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  if (need) std::memcpy(t.data_ptr(), src, need);
  R(t);
})

// toBuffer(t) -> ArrayBuffer with the C-order bytes of t (copied to CPU first).
DEF("toBuffer", {
  auto t = T(0).detach().to(at::kCPU).contiguous();
  size_t bytes = t.numel() * t.element_size();
  auto ab = Napi::ArrayBuffer::New(ENV, bytes);
  if (bytes) std::memcpy(ab.Data(), t.data_ptr(), bytes);
  return ab;
})

DEF("empty", R(at::empty(IV(0), opts(info, 1, 2)));)
DEF("zeros", R(at::zeros(IV(0), opts(info, 1, 2)));)
DEF("ones", R(at::ones(IV(0), opts(info, 1, 2)));)
DEF("full", R(at::full(IV(0), S(1), opts(info, 2, 3)));)
DEF("arange", R(at::arange(S(0), S(1), S(2), opts(info, 3, 4)));)
DEF("rand", R(at::rand(IV(0), opts(info, 1, 2)));)
DEF("randn", R(at::randn(IV(0), opts(info, 1, 2)));)
DEF("randint", R(at::randint(I(0), I(1), IV(2), opts(info, 3, 4)));)
DEF("randperm", R(at::randperm(I(0), opts(info, 1, 2).dtype(at::kLong)));)
DEF("uniform_", { at::NoGradGuard g; T(0).uniform_(D(1), D(2)); return info[0]; })
DEF("normal_", { at::NoGradGuard g; T(0).normal_(D(1), D(2)); return info[0]; })
DEF("bernoulli", R(at::bernoulli(T(0)));)
DEF("zerosLike", R(at::zeros_like(T(0)));)
DEF("onesLike", R(at::ones_like(T(0)));)
DEF("fullLike", R(at::full_like(T(0), S(1)));)
DEF("randLike", R(at::rand_like(T(0)));)
DEF("randnLike", R(at::randn_like(T(0)));)

DEF("manualSeed", {
  torch::manual_seed(static_cast<uint64_t>(I(0)));
  return ENV.Undefined();
})
// The CPU generator's state as a uint8 tensor (for checkpoints), and its restoration.
DEF("getRngState", {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  R(gen.get_state());
})
DEF("setRngState", {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(T(0));
  return ENV.Undefined();
})

// ---- metadata
DEF("shape", {
  auto s = T(0).sizes();
  Napi::Array a = Napi::Array::New(ENV, s.size());
  for (size_t i = 0; i < s.size(); i++) a.Set(i, Napi::Number::New(ENV, static_cast<double>(s[i])));
  return a;
})
DEF("strides", {
  auto s = T(0).strides();
  Napi::Array a = Napi::Array::New(ENV, s.size());
  for (size_t i = 0; i < s.size(); i++) a.Set(i, Napi::Number::New(ENV, static_cast<double>(s[i])));
  return a;
})
DEF("dtype", return Napi::String::New(ENV, dtypeName(T(0).scalar_type()));)
DEF("device", return Napi::String::New(ENV, T(0).device().str());)
DEF("numel", return Napi::Number::New(ENV, static_cast<double>(T(0).numel()));)
DEF("item", {
  auto& t = T(0);
  if (t.numel() != 1) throw Napi::RangeError::New(ENV, "item() needs a tensor with one element");
  if (t.scalar_type() == at::kBool) return Napi::Boolean::New(ENV, t.item<bool>());
  return Napi::Number::New(ENV, t.item<double>());
})
DEF("isContiguous", {
  auto fmt = info.Length() > 1 && STR(1) == "channels_last" ? at::MemoryFormat::ChannelsLast
                                                            : at::MemoryFormat::Contiguous;
  return Napi::Boolean::New(ENV, T(0).is_contiguous(fmt));
})
DEF("contiguous", {
  auto fmt = info.Length() > 1 && STR(1) == "channels_last" ? at::MemoryFormat::ChannelsLast
                                                            : at::MemoryFormat::Contiguous;
  R(T(0).contiguous(fmt));
})
DEF("toDtype", R(T(0).to(argDtype(info, 1)));)
// toDevice(t, device, nonBlocking?): a non-blocking copy from pinned host memory overlaps the
// transfer with the host's work (torch's .to(device, non_blocking=True)).
DEF("toDevice", R(T(0).to(argDevice(info, 1), /*non_blocking=*/info.Length() > 2 && B(2)));)
// setData(t, src): t takes src's data (device, dtype, storage) in place, as `p.data = src` in
// PyTorch's Module._apply: the handle, its autograd identity and everything holding it stay.
DEF("setData", {
  T(0).set_data(T(1));
  NTensor::Unwrap(info[0].As<Napi::Object>())->reaccount(ENV);
  return ENV.Undefined();
})
DEF("pinMemory", R(T(0).pin_memory());)
DEF("isPinned", return Napi::Boolean::New(ENV, T(0).is_pinned());)
DEF("cudaSynchronize", {
  torch::cuda::synchronize(info.Length() > 0 ? I(0) : -1);
  return ENV.Undefined();
})
// clone(t, format?) -> a copy; with "channels_last", strided as channels_last even where t's sizes
// make both layouts contiguous (1x1 maps, one input channel), as PyTorch's .to(memory_format=).
DEF("clone", {
  if (info.Length() > 1 && info[1].IsString() && STR(1) == "channels_last") R(T(0).clone(at::MemoryFormat::ChannelsLast));
  R(T(0).clone());
})
// suggestMemoryFormat(t) -> "channels_last" where ATen reads t's strides as channels_last (the
// layout its convolutions pick from), else "contiguous".
DEF("suggestMemoryFormat", {
  return Napi::String::New(ENV, T(0).suggest_memory_format() == at::MemoryFormat::ChannelsLast ? "channels_last" : "contiguous");
})
DEF("cudaIsAvailable", return Napi::Boolean::New(ENV, torch::cuda::is_available());)
DEF("cudaDeviceCount", return Napi::Number::New(ENV, static_cast<double>(torch::cuda::device_count()));)

// ---- autograd
DEF("requiresGrad", return Napi::Boolean::New(ENV, T(0).requires_grad());)
DEF("setRequiresGrad", {
  T(0).set_requires_grad(B(1));
  return info[0];
})
DEF("isLeaf", return Napi::Boolean::New(ENV, T(0).is_leaf());)
DEF("grad", R(T(0).grad());)  // an undefined grad becomes null (wrap)
DEF("setGrad", {
  auto g = OT(1);
  T(0).mutable_grad() = g ? *g : at::Tensor();
  return ENV.Undefined();
})
DEF("backward", {
  auto g = OT(1);
  bool retain = info.Length() > 2 && B(2);
  T(0).backward(g ? *g : at::Tensor(), retain);
  return ENV.Undefined();
})
DEF("detach", R(T(0).detach());)
DEF("setGradEnabled", {
  at::GradMode::set_enabled(B(0));
  return ENV.Undefined();
})
DEF("isGradEnabled", return Napi::Boolean::New(ENV, at::GradMode::is_enabled());)

// ---- memory and threads
DEF("dispose", {
  if (!isTensor(info[0])) throw Napi::TypeError::New(ENV, "argument 0 must be a tensor");
  NTensor::Unwrap(info[0].As<Napi::Object>())->dispose(ENV);
  return ENV.Undefined();
})
DEF("isDisposed", {
  if (!isTensor(info[0])) throw Napi::TypeError::New(ENV, "argument 0 must be a tensor");
  return Napi::Boolean::New(ENV, !NTensor::Unwrap(info[0].As<Napi::Object>())->t.defined());
})
DEF("memory", {
  Napi::Object o = Napi::Object::New(ENV);
  o.Set("liveTensors", Napi::Number::New(ENV, static_cast<double>(NTensor::live)));
  o.Set("externalBytes", Napi::Number::New(ENV, static_cast<double>(NTensor::external)));
  return o;
})
DEF("setNumThreads", {
  at::set_num_threads(static_cast<int>(I(0)));
  return ENV.Undefined();
})
DEF("getNumThreads", return Napi::Number::New(ENV, at::get_num_threads());)
DEF("setNumInteropThreads", {
  at::set_num_interop_threads(static_cast<int>(I(0)));
  return ENV.Undefined();
})
DEF("version", return Napi::String::New(ENV, TORCH_VERSION);)
