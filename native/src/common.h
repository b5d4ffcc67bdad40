// Shared helpers of the lorkd binding: the native tensor handle, argument conversion, the
// exception guard that turns every libtorch error into a JS Error, and the op registry.
// Every op file only adds one small wrapper per libtorch call (see STYLE.md, tch-rs/TorchSharp).
#pragma once
#include <napi.h>
#include <torch/torch.h>

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lorkd {

// A JS-owned handle to one at::Tensor. dispose() frees it early; otherwise V8's GC does.
class NTensor : public Napi::ObjectWrap<NTensor> {
 public:
  // The class's constructor in `env` (one per JS thread: the addon loads in worker threads too).
  static Napi::FunctionReference& ctor(Napi::Env env);
  static Napi::Function Init(Napi::Env env);
  explicit NTensor(const Napi::CallbackInfo& info);
  ~NTensor() override;
  void set(Napi::Env env, at::Tensor t);
  void dispose(Napi::Env env);
  // Re-counts the bytes this handle accounts for (after t's data was replaced in place, set_data).
  void reaccount(Napi::Env env);
  at::Tensor t;
  int64_t accounted = 0;
  // Process-wide counts (every JS thread's handles together).
  static std::atomic<int64_t> live;
  static std::atomic<int64_t> external;
};

Napi::Value wrap(Napi::Env env, at::Tensor t);
Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& ts);

bool isTensor(const Napi::Value& v);
at::Tensor& argT(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::Tensor> argOptT(const Napi::CallbackInfo& info, size_t i);
std::vector<at::Tensor> argTList(const Napi::CallbackInfo& info, size_t i);
std::vector<int64_t> argInts(const Napi::CallbackInfo& info, size_t i);
c10::optional<std::vector<int64_t>> argOptInts(const Napi::CallbackInfo& info, size_t i);
int64_t argInt(const Napi::CallbackInfo& info, size_t i);
double argDouble(const Napi::CallbackInfo& info, size_t i);
c10::optional<double> argOptDouble(const Napi::CallbackInfo& info, size_t i);
bool argBool(const Napi::CallbackInfo& info, size_t i);
std::string argStr(const Napi::CallbackInfo& info, size_t i);
at::Scalar argScalar(const Napi::CallbackInfo& info, size_t i);
at::ScalarType argDtype(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::ScalarType> argOptDtype(const Napi::CallbackInfo& info, size_t i);
at::Device argDevice(const Napi::CallbackInfo& info, size_t i);
std::string dtypeName(at::ScalarType s);

// Autocast state of one device type (autocast.cc): whether it is on, and its lower-precision dtype.
bool autocastEnabled(c10::DeviceType d);
at::ScalarType autocastDtype(c10::DeviceType d);

using OpFn = std::function<Napi::Value(const Napi::CallbackInfo&)>;
std::vector<std::pair<std::string, OpFn>>& registry();
struct Reg {
  Reg(const char* name, OpFn fn) { registry().emplace_back(name, std::move(fn)); }
};
Napi::Value guard(const Napi::CallbackInfo& info, const char* name, const OpFn& fn);

}  // namespace lorkd

// DEF(name, body): registers one op. Inside body: T(i) tensor arg, OT(i) optional tensor,
// I(i) int, D(i) double, B(i) bool, IV(i) int list, S(i) scalar, R(x) wraps a result tensor.
#define LORKD_CAT2(a, b) a##b
#define LORKD_CAT(a, b) LORKD_CAT2(a, b)
#define DEF(name, ...)                                                                  \
  static lorkd::Reg LORKD_CAT(reg_, __LINE__)(name, [](const Napi::CallbackInfo& info) { \
    return lorkd::guard(info, name, [&](const Napi::CallbackInfo& info) -> Napi::Value { \
      using namespace lorkd;                                                             \
      __VA_ARGS__                                                                            \
    });                                                                                  \
  });
#define T(i) argT(info, i)
#define OT(i) argOptT(info, i)
#define TL(i) argTList(info, i)
#define I(i) argInt(info, i)
#define D(i) argDouble(info, i)
#define B(i) argBool(info, i)
#define IV(i) argInts(info, i)
#define S(i) argScalar(info, i)
#define STR(i) argStr(info, i)
#define R(x) return wrap(info.Env(), (x))
#define ENV info.Env()
