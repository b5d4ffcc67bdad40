// libtorch's autocast state, one wrapper per call; the policy (enter, restore, nesting) is in
// src/tensor/autocast.ts. The state is thread-local in libtorch, as in PyTorch.
// libtorch 1.13 to 2.3 have one function per device type (is_cpu_enabled, set_autocast_gpu_dtype,
// ...); 2.4 made them take the device type (is_autocast_enabled(kCUDA), set_autocast_dtype(...)).
#include "common.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define LORKD_AUTOCAST_BY_DEVICE 1
#endif

namespace lorkd {

namespace {
c10::DeviceType deviceTypeOf(const std::string& s) {
  if (s == "cpu") return c10::DeviceType::CPU;
  if (s == "cuda") return c10::DeviceType::CUDA;
  throw std::invalid_argument("autocast device type must be cpu or cuda, got '" + s + "'");
}
}  // namespace

bool autocastEnabled(c10::DeviceType d) {
#ifdef LORKD_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(d);
#else
  return d == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}

at::ScalarType autocastDtype(c10::DeviceType d) {
#ifdef LORKD_AUTOCAST_BY_DEVICE
  return at::autocast::get_autocast_dtype(d);
#else
  return d == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
#endif
}

void setAutocast(c10::DeviceType d, bool enabled, at::ScalarType dtype) {
#ifdef LORKD_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(d, dtype);
  at::autocast::set_autocast_enabled(d, enabled);
#else
  if (d == c10::DeviceType::CPU) {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  } else {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  }
#endif
}

}  // namespace lorkd

// autocastState(deviceType) -> [enabled, dtype]
DEF("autocastState", {
  auto d = deviceTypeOf(STR(0));
  Napi::Array a = Napi::Array::New(ENV, 2);
  a.Set(0u, Napi::Boolean::New(ENV, autocastEnabled(d)));
  a.Set(1u, Napi::String::New(ENV, dtypeName(autocastDtype(d))));
  return a;
})
// setAutocast(deviceType, enabled, dtype)
DEF("setAutocast", {
  setAutocast(deviceTypeOf(STR(0)), B(1), argDtype(info, 2));
  return ENV.Undefined();
})
DEF("autocastIncrementNesting", return Napi::Number::New(ENV, at::autocast::increment_nesting());)
DEF("autocastDecrementNesting", return Napi::Number::New(ENV, at::autocast::decrement_nesting());)
DEF("autocastClearCache", {
  at::autocast::clear_cache();
  return ENV.Undefined();
})
