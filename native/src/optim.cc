// One native call per parameter group for the optimisers' step (src/optim/sgd.ts, adamw.ts), as
// PyTorch's foreach optimisers: the same per-tensor arithmetic, in the same order, as the
// composed TypeScript step it replaces, so results are bitwise equal; only the crossings go.
#include "common.h"

namespace {
using lorkd::isTensor;
using lorkd::NTensor;

// An array whose entries are tensors or null (a parameter without that state yet).
std::vector<c10::optional<at::Tensor>> argOptTList(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsArray()) throw std::invalid_argument("argument " + std::to_string(i) + " must be an array");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<c10::optional<at::Tensor>> out;
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (v.IsNull() || v.IsUndefined()) {
      out.emplace_back();
      continue;
    }
    if (!isTensor(v)) throw std::invalid_argument("argument " + std::to_string(i) + " must hold tensors or null");
    auto* n = NTensor::Unwrap(v.As<Napi::Object>());
    if (!n->t.defined()) throw std::invalid_argument("argument " + std::to_string(i) + " holds a disposed tensor");
    out.emplace_back(n->t);
  }
  return out;
}
std::vector<double> argDoubles(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsArray()) throw std::invalid_argument("argument " + std::to_string(i) + " must be an array of numbers");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<double> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) out[k] = a.Get(k).As<Napi::Number>().DoubleValue();
  return out;
}
void sameLength(size_t n, size_t m, const char* what) {
  if (n != m) throw std::invalid_argument(std::string(what) + ": " + std::to_string(m) + " entries for " + std::to_string(n) + " parameters");
}
}  // namespace

// sgdStep(params, grads, workspaces, buffers (tensor|null each), lr, momentum, dampening,
// nesterov, weightDecay) -> the momentum buffers created on this step (null where one existed)
DEF("sgdStep", {
  auto params = TL(0), grads = TL(1), ws = TL(2);
  auto bufs = argOptTList(info, 3);
  const double lr = D(4), momentum = D(5), dampening = D(6), wd = D(8);
  const bool nesterov = B(7);
  sameLength(params.size(), grads.size(), "sgdStep grads");
  sameLength(params.size(), ws.size(), "sgdStep workspaces");
  sameLength(params.size(), bufs.size(), "sgdStep buffers");
  at::NoGradGuard ng;
  const bool own = wd != 0 || (momentum != 0 && nesterov);
  std::vector<at::Tensor> created(params.size());
  for (size_t i = 0; i < params.size(); i++) {
    at::Tensor d = grads[i];
    if (own) {
      d = ws[i].copy_(grads[i]);
      if (wd != 0) d.add_(params[i], wd);
    }
    at::Tensor update = d;
    if (momentum != 0) {
      at::Tensor buf;
      if (!bufs[i]) {
        buf = d.clone();
        created[i] = buf;
      } else {
        buf = *bufs[i];
        buf.mul_(momentum);
        buf.add_(d, 1 - dampening);
      }
      if (nesterov) d.add_(buf, momentum);
      else update = buf;
    }
    params[i].add_(update, -lr);
  }
  return wrapList(ENV, created);
})

// adamwStep(params, grads, expAvg, expAvgSq, maxExpAvgSq (tensors, or null without amsgrad),
// workspaces, stepSizes, bc2Sqrts, lr, beta1, beta2, eps, weightDecay)
DEF("adamwStep", {
  auto params = TL(0), grads = TL(1), m = TL(2), v = TL(3), ws = TL(5);
  const bool amsgrad = !info[4].IsNull() && !info[4].IsUndefined();
  std::vector<at::Tensor> vmax = amsgrad ? TL(4) : std::vector<at::Tensor>();
  auto stepSize = argDoubles(info, 6), bc2Sqrt = argDoubles(info, 7);
  const double lr = D(8), beta1 = D(9), beta2 = D(10), eps = D(11), wd = D(12);
  for (auto [n, what] : {std::pair{grads.size(), "grads"}, {m.size(), "expAvg"}, {v.size(), "expAvgSq"}, {ws.size(), "workspaces"},
                         {stepSize.size(), "stepSizes"}, {bc2Sqrt.size(), "bc2Sqrts"}})
    sameLength(params.size(), n, what);
  if (amsgrad) sameLength(params.size(), vmax.size(), "maxExpAvgSq");
  at::NoGradGuard ng;
  for (size_t i = 0; i < params.size(); i++) {
    if (wd != 0) params[i].mul_(1 - lr * wd);
    m[i].mul_(beta1);
    m[i].add_(grads[i], 1 - beta1);
    v[i].mul_(beta2);
    v[i].addcmul_(grads[i], grads[i], 1 - beta2);
    at::Tensor second = v[i];
    if (amsgrad) {
      at::maximum_out(vmax[i], vmax[i], v[i]);
      second = vmax[i];
    }
    auto denom = ws[i].copy_(second).sqrt_();
    denom.div_(bc2Sqrt[i]).add_(eps);
    params[i].addcdiv_(m[i], denom, -stepSize[i]);
  }
  return ENV.Undefined();
})
