// Module init, the NTensor handle, argument conversion and the error guard.
#include "common.h"

#include <sstream>

namespace lorkd {

std::atomic<int64_t> NTensor::live{0};
std::atomic<int64_t> NTensor::external{0};

Napi::FunctionReference& NTensor::ctor(Napi::Env env) { return *env.GetInstanceData<Napi::FunctionReference>(); }

Napi::Function NTensor::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeTensor", {});
  // Freed with its environment (a worker thread that ends, or the process).
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(f)));
  return f;
}

NTensor::NTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NTensor>(info) {}

NTensor::~NTensor() {
  if (t.defined()) {
    live--;
    external -= accounted;
    // Env may be shutting down; external memory adjustment is skipped in the destructor.
    t.reset();
  }
}

void NTensor::set(Napi::Env env, at::Tensor x) {
  t = std::move(x);
  live++;
  // Host bytes only: device memory is no reason for V8 to collect garbage sooner.
  accounted = t.is_sparse() || !t.is_cpu() ? 0 : static_cast<int64_t>(t.numel() * t.element_size());
  external += accounted;
  if (accounted > 0) Napi::MemoryManagement::AdjustExternalMemory(env, accounted);
}

void NTensor::dispose(Napi::Env env) {
  if (!t.defined()) return;
  t.reset();
  live--;
  external -= accounted;
  if (accounted > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -accounted);
  accounted = 0;
}

void NTensor::reaccount(Napi::Env env) {
  if (!t.defined()) return;
  int64_t now = t.is_sparse() || !t.is_cpu() ? 0 : static_cast<int64_t>(t.numel() * t.element_size());
  external += now - accounted;
  if (now != accounted) Napi::MemoryManagement::AdjustExternalMemory(env, now - accounted);
  accounted = now;
}

Napi::Value wrap(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Null();
  Napi::Object o = NTensor::ctor(env).New({});
  NTensor::Unwrap(o)->set(env, std::move(t));
  return o;
}
Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& ts) {
  Napi::Array a = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) a.Set(i, wrap(env, ts[i]));
  return a;
}

static Napi::Error argError(const Napi::CallbackInfo& info, size_t i, const char* want) {
  return Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be " + want);
}

bool isTensor(const Napi::Value& v) {
  return v.IsObject() && v.As<Napi::Object>().InstanceOf(NTensor::ctor(v.Env()).Value());
}

at::Tensor& argT(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !isTensor(info[i])) throw argError(info, i, "a tensor");
  NTensor* n = NTensor::Unwrap(info[i].As<Napi::Object>());
  if (!n->t.defined()) throw argError(info, i, "a live tensor (it was disposed)");
  return n->t;
}
c10::optional<at::Tensor> argOptT(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return c10::nullopt;
  return argT(info, i);
}
std::vector<at::Tensor> argTList(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsArray()) throw argError(info, i, "an array of tensors");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!isTensor(v)) throw argError(info, i, "an array of tensors");
    NTensor* n = NTensor::Unwrap(v.As<Napi::Object>());
    if (!n->t.defined()) throw argError(info, i, "an array of live tensors (one was disposed)");
    out.push_back(n->t);
  }
  return out;
}
std::vector<int64_t> argInts(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length()) throw argError(info, i, "an array of integers");
  if (info[i].IsNumber()) return {info[i].As<Napi::Number>().Int64Value()};
  if (!info[i].IsArray()) throw argError(info, i, "an array of integers");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!v.IsNumber()) throw argError(info, i, "an array of integers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (d != static_cast<double>(static_cast<int64_t>(d))) throw argError(info, i, "an array of integers");
    out[k] = static_cast<int64_t>(d);
  }
  return out;
}
c10::optional<std::vector<int64_t>> argOptInts(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return c10::nullopt;
  return argInts(info, i);
}
int64_t argInt(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber()) throw argError(info, i, "an integer");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d))) throw argError(info, i, "an integer");
  return static_cast<int64_t>(d);
}
double argDouble(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber()) throw argError(info, i, "a number");
  return info[i].As<Napi::Number>().DoubleValue();
}
c10::optional<double> argOptDouble(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return c10::nullopt;
  return argDouble(info, i);
}
bool argBool(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsBoolean()) throw argError(info, i, "a boolean");
  return info[i].As<Napi::Boolean>().Value();
}
std::string argStr(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsString()) throw argError(info, i, "a string");
  return info[i].As<Napi::String>().Utf8Value();
}
at::Scalar argScalar(const Napi::CallbackInfo& info, size_t i) {
  if (i < info.Length() && info[i].IsBoolean()) return at::Scalar(info[i].As<Napi::Boolean>().Value());
  double d = argDouble(info, i);
  if (std::isfinite(d) && d == static_cast<double>(static_cast<int64_t>(d)) && std::abs(d) < 9.0e15)
    return at::Scalar(static_cast<int64_t>(d));
  return at::Scalar(d);
}

static const std::vector<std::pair<std::string, at::ScalarType>>& dtypes() {
  static const std::vector<std::pair<std::string, at::ScalarType>> d = {
      {"float32", at::kFloat}, {"float64", at::kDouble}, {"int32", at::kInt},  {"int64", at::kLong},
      {"uint8", at::kByte},    {"int8", at::kChar},      {"int16", at::kShort}, {"bool", at::kBool},
      {"float16", at::kHalf},  {"bfloat16", at::kBFloat16}};
  return d;
}
at::ScalarType argDtype(const Napi::CallbackInfo& info, size_t i) {
  std::string s = argStr(info, i);
  for (auto& p : dtypes())
    if (p.first == s) return p.second;
  throw Napi::TypeError::New(info.Env(), "unknown dtype '" + s + "'");
}
c10::optional<at::ScalarType> argOptDtype(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return c10::nullopt;
  return argDtype(info, i);
}
std::string dtypeName(at::ScalarType s) {
  for (auto& p : dtypes())
    if (p.second == s) return p.first;
  return c10::toString(s);
}
at::Device argDevice(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return at::Device(at::kCPU);
  return at::Device(argStr(info, i));
}

std::vector<std::pair<std::string, OpFn>>& registry() {
  static std::vector<std::pair<std::string, OpFn>> r;
  return r;
}

// "conv2d(x: float32[2, 3, 8, 8], w: ...)" style description of the call, for error messages.
static std::string describe(const Napi::CallbackInfo& info) {
  std::ostringstream os;
  for (size_t i = 0; i < info.Length(); i++) {
    if (i) os << ", ";
    Napi::Value v = info[i];
    if (isTensor(v)) {
      NTensor* n = NTensor::Unwrap(v.As<Napi::Object>());
      if (!n->t.defined()) { os << "<disposed>"; continue; }
      os << dtypeName(n->t.scalar_type()) << n->t.sizes();
    } else if (v.IsArray()) {
      Napi::Array a = v.As<Napi::Array>();
      os << "[";
      for (uint32_t k = 0; k < a.Length() && k < 8; k++) {
        if (k) os << ", ";
        Napi::Value e = a.Get(k);
        if (isTensor(e)) {
          NTensor* n = NTensor::Unwrap(e.As<Napi::Object>());
          if (n->t.defined()) os << dtypeName(n->t.scalar_type()) << n->t.sizes(); else os << "<disposed>";
        } else if (e.IsNumber() || e.IsBoolean() || e.IsNull() || e.IsUndefined() || e.IsString()) {
          os << e.ToString().Utf8Value();
        } else {
          os << (e.IsArray() ? "[...]" : "<object>");  // an External or object has no string form
        }
      }
      if (a.Length() > 8) os << ", ...";
      os << "]";
    } else if (v.IsString()) {
      os << "'" << v.As<Napi::String>().Utf8Value() << "'";
    } else if (v.IsNumber() || v.IsBoolean() || v.IsNull() || v.IsUndefined()) {
      os << v.ToString().Utf8Value();
    } else {
      os << "<object>";
    }
  }
  return os.str();
}

Napi::Value guard(const Napi::CallbackInfo& info, const char* name, const OpFn& fn) {
  try {
    return fn(info);
  } catch (const Napi::Error& e) {
    throw Napi::Error::New(info.Env(), std::string(name) + "(" + describe(info) + "): " + e.Message());
  } catch (const c10::Error& e) {
    std::string m = e.what_without_backtrace();
    throw Napi::Error::New(info.Env(), std::string(name) + "(" + describe(info) + "): " + m);
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string(name) + "(" + describe(info) + "): " + e.what());
  }
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeTensor", NTensor::Init(env));
  for (auto& [name, fn] : registry()) {
    OpFn f = fn;
    exports.Set(name, Napi::Function::New(env, [f](const Napi::CallbackInfo& info) { return f(info); }, name));
  }
  return exports;
}

}  // namespace lorkd

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return lorkd::Init(env, exports); }
NODE_API_MODULE(lorkd_native, InitModule)
