// Elementwise arithmetic, comparisons, reductions, shape ops, indexing and linear algebra.
#include "common.h"

namespace {
// Binary ops take a tensor or a JS number as their second operand.
template <class FT, class FS>
Napi::Value binary(const Napi::CallbackInfo& info, FT ft, FS fs) {
  using namespace lorkd;
  if (isTensor(info[1])) return wrap(info.Env(), ft(T(0), T(1)));
  return wrap(info.Env(), fs(T(0), S(1)));
}
std::vector<int64_t> dimsOrAll(const Napi::CallbackInfo& info, size_t i) {
  auto d = lorkd::argOptInts(info, i);
  return d ? *d : std::vector<int64_t>{};
}
bool optBool(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && info[i].IsBoolean() && info[i].As<Napi::Boolean>().Value();
}
}  // namespace

// ---- arithmetic: add(a, b, alpha=1), sub(a, b, alpha=1)
DEF("add", {
  at::Scalar alpha = info.Length() > 2 && info[2].IsNumber() ? S(2) : at::Scalar(1);
  return binary(info, [&](auto& a, auto& b) { return at::add(a, b, alpha); },
                [&](auto& a, auto s) { return at::add(a, s, alpha); });
})
DEF("sub", {
  at::Scalar alpha = info.Length() > 2 && info[2].IsNumber() ? S(2) : at::Scalar(1);
  return binary(info, [&](auto& a, auto& b) { return at::sub(a, b, alpha); },
                [&](auto& a, auto s) { return at::sub(a, s, alpha); });
})
DEF("mul", return binary(info, [](auto& a, auto& b) { return at::mul(a, b); }, [](auto& a, auto s) { return at::mul(a, s); });)
DEF("div", return binary(info, [](auto& a, auto& b) { return at::div(a, b); }, [](auto& a, auto s) { return at::div(a, s); });)
DEF("pow", return binary(info, [](auto& a, auto& b) { return at::pow(a, b); }, [](auto& a, auto s) { return at::pow(a, s); });)
DEF("maximum", R(at::maximum(T(0), T(1)));)
DEF("minimum", R(at::minimum(T(0), T(1)));)
DEF("eq", return binary(info, [](auto& a, auto& b) { return at::eq(a, b); }, [](auto& a, auto s) { return at::eq(a, s); });)
DEF("ne", return binary(info, [](auto& a, auto& b) { return at::ne(a, b); }, [](auto& a, auto s) { return at::ne(a, s); });)
DEF("lt", return binary(info, [](auto& a, auto& b) { return at::lt(a, b); }, [](auto& a, auto s) { return at::lt(a, s); });)
DEF("le", return binary(info, [](auto& a, auto& b) { return at::le(a, b); }, [](auto& a, auto s) { return at::le(a, s); });)
DEF("gt", return binary(info, [](auto& a, auto& b) { return at::gt(a, b); }, [](auto& a, auto s) { return at::gt(a, s); });)
DEF("ge", return binary(info, [](auto& a, auto& b) { return at::ge(a, b); }, [](auto& a, auto s) { return at::ge(a, s); });)
DEF("where", R(at::where(T(0), T(1), T(2)));)
DEF("neg", R(at::neg(T(0)));)
DEF("exp", R(at::exp(T(0)));)
DEF("log", R(at::log(T(0)));)
DEF("sqrt", R(at::sqrt(T(0)));)
DEF("rsqrt", R(at::rsqrt(T(0)));)
DEF("abs", R(at::abs(T(0)));)
DEF("sign", R(at::sign(T(0)));)
DEF("floor", R(at::floor(T(0)));)
DEF("round", R(at::round(T(0)));)
DEF("sigmoid", R(at::sigmoid(T(0)));)
DEF("tanh", R(at::tanh(T(0)));)
DEF("clamp", {
  c10::optional<at::Scalar> lo, hi;
  if (info.Length() > 1 && info[1].IsNumber()) lo = S(1);
  if (info.Length() > 2 && info[2].IsNumber()) hi = S(2);
  R(at::clamp(T(0), lo, hi));
})
DEF("isfinite", R(at::isfinite(T(0)));)
DEF("isnan", R(at::isnan(T(0)));)
DEF("logicalNot", R(at::logical_not(T(0)));)
DEF("logicalAnd", R(at::logical_and(T(0), T(1)));)
DEF("logicalOr", R(at::logical_or(T(0), T(1)));)

// ---- reductions: op(t, dims|null, keepdim)
DEF("sum", {
  if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined()) R(at::sum(T(0), IV(1), optBool(info, 2)));
  R(at::sum(T(0)));
})
DEF("mean", {
  if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined()) R(at::mean(T(0), IV(1), optBool(info, 2)));
  R(at::mean(T(0)));
})
DEF("var", {
  // var(t, dims|null, correction, keepdim)
  int64_t corr = info.Length() > 2 && info[2].IsNumber() ? I(2) : 1;
  auto dims = argOptInts(info, 1);
  R(at::var(T(0), dims ? at::OptionalIntArrayRef(*dims) : c10::nullopt, corr, optBool(info, 3)));
})
DEF("logsumexp", R(at::logsumexp(T(0), IV(1), optBool(info, 2)));)
DEF("amax", R(at::amax(T(0), dimsOrAll(info, 1), optBool(info, 2)));)
DEF("amin", R(at::amin(T(0), dimsOrAll(info, 1), optBool(info, 2)));)
DEF("maxDim", {
  auto r = at::max(T(0), I(1), optBool(info, 2));
  return wrapList(ENV, {std::get<0>(r), std::get<1>(r)});
})
DEF("minDim", {
  auto r = at::min(T(0), I(1), optBool(info, 2));
  return wrapList(ENV, {std::get<0>(r), std::get<1>(r)});
})
DEF("argmax", {
  if (info.Length() > 1 && info[1].IsNumber()) R(at::argmax(T(0), I(1), optBool(info, 2)));
  R(at::argmax(T(0)));
})
DEF("argmin", {
  if (info.Length() > 1 && info[1].IsNumber()) R(at::argmin(T(0), I(1), optBool(info, 2)));
  R(at::argmin(T(0)));
})
DEF("all", R(at::all(T(0)));)
DEF("any", R(at::any(T(0)));)
DEF("cumsum", R(at::cumsum(T(0), I(1)));)
DEF("sort", {
  auto r = at::sort(T(0), I(1), optBool(info, 2));
  return wrapList(ENV, {std::get<0>(r), std::get<1>(r)});
})
DEF("topk", {
  auto r = at::topk(T(0), I(1), I(2));
  return wrapList(ENV, {std::get<0>(r), std::get<1>(r)});
})
DEF("nonzero", R(at::nonzero(T(0)));)
DEF("bincount", R(at::bincount(T(0), c10::nullopt, I(1)));)

// ---- shape ops
DEF("reshape", R(at::reshape(T(0), IV(1)));)
DEF("view", R(T(0).view(IV(1)));)
DEF("permute", R(T(0).permute(IV(1)));)
DEF("transpose", R(at::transpose(T(0), I(1), I(2)));)
DEF("flatten", R(at::flatten(T(0), I(1), I(2)));)
DEF("squeeze", {
  if (info.Length() > 1 && info[1].IsNumber()) R(at::squeeze(T(0), I(1)));
  R(at::squeeze(T(0)));
})
DEF("unsqueeze", R(at::unsqueeze(T(0), I(1)));)
DEF("expand", R(T(0).expand(IV(1)));)
DEF("repeat", R(T(0).repeat(IV(1)));)
DEF("cat", R(at::cat(TL(0), I(1)));)
DEF("stack", R(at::stack(TL(0), I(1)));)
DEF("split", {
  if (info[1].IsNumber()) return wrapList(ENV, at::split(T(0), I(1), I(2)));
  return wrapList(ENV, at::split_with_sizes(T(0), IV(1), I(2)));
})
DEF("chunk", return wrapList(ENV, at::chunk(T(0), I(1), I(2)));)
DEF("narrow", R(at::narrow(T(0), I(1), I(2), I(3)));)
DEF("select", R(at::select(T(0), I(1), I(2)));)
DEF("indexSelect", R(at::index_select(T(0), I(1), T(2)));)
DEF("indexAdd", {
  at::Scalar alpha = info.Length() > 4 && info[4].IsNumber() ? S(4) : at::Scalar(1);
  R(at::index_add(T(0), I(1), T(2), T(3), alpha));
})
DEF("gather", R(at::gather(T(0), I(1), T(2)));)
DEF("scatter", R(at::scatter(T(0), I(1), T(2), T(3)));)
DEF("maskedFill", R(at::masked_fill(T(0), T(1), S(2)));)
DEF("flip", R(at::flip(T(0), IV(1)));)
DEF("pad", {
  // pad(t, pads, mode: constant|reflect|replicate, value)
  std::string mode = info.Length() > 2 ? STR(2) : "constant";
  namespace F = torch::nn::functional;
  auto o = F::PadFuncOptions(IV(1));
  if (mode == "constant") {
    o.mode(torch::kConstant).value(info.Length() > 3 ? D(3) : 0.0);
  } else if (mode == "reflect") {
    o.mode(torch::kReflect);
  } else if (mode == "replicate") {
    o.mode(torch::kReplicate);
  } else {
    throw Napi::TypeError::New(ENV, "pad mode must be constant, reflect or replicate");
  }
  R(F::pad(T(0), o));
})

// ---- linear algebra
DEF("matmul", R(at::matmul(T(0), T(1)));)
DEF("mm", R(at::mm(T(0), T(1)));)
DEF("bmm", R(at::bmm(T(0), T(1)));)
DEF("addmm", R(at::addmm(T(0), T(1), T(2), info.Length() > 3 ? S(3) : at::Scalar(1), info.Length() > 4 ? S(4) : at::Scalar(1)));)
DEF("einsum", R(at::einsum(STR(0), TL(1)));)

// ---- in-place updates (optimizers); callers wrap them in a no-grad scope
DEF("add_", {
  at::Scalar alpha = info.Length() > 2 && info[2].IsNumber() ? S(2) : at::Scalar(1);
  if (isTensor(info[1])) T(0).add_(T(1), alpha); else T(0).add_(S(1), alpha);
  return info[0];
})
DEF("mul_", {
  if (isTensor(info[1])) T(0).mul_(T(1)); else T(0).mul_(S(1));
  return info[0];
})
DEF("div_", {
  if (isTensor(info[1])) T(0).div_(T(1)); else T(0).div_(S(1));
  return info[0];
})
DEF("addcmul_", { T(0).addcmul_(T(1), T(2), S(3)); return info[0]; })
DEF("addcdiv_", { T(0).addcdiv_(T(1), T(2), S(3)); return info[0]; })
DEF("copy_", { T(0).copy_(T(1)); return info[0]; })
DEF("zero_", { T(0).zero_(); return info[0]; })
DEF("fill_", { T(0).fill_(S(1)); return info[0]; })
DEF("clampMin_", { T(0).clamp_min_(S(1)); return info[0]; })
DEF("sqrt_", { T(0).sqrt_(); return info[0]; })

// ---- multi-tensor ops (one call for a whole parameter list, as torch's foreach optimizers)
DEF("foreachMul_", { at::_foreach_mul_(TL(0), S(1)); return ENV.Undefined(); })
DEF("foreachAddList_", { at::_foreach_add_(TL(0), TL(1), S(2)); return ENV.Undefined(); })
DEF("foreachNormSq", {
  auto ts = TL(0);
  std::vector<at::Tensor> sq;
  sq.reserve(ts.size());
  for (auto& t : ts) sq.push_back(t.detach().to(at::kDouble).pow(2).sum());
  R(sq.empty() ? at::zeros({}, at::kDouble) : at::stack(sq).sum());
})
