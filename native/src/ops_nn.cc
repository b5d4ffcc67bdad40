// Functional neural-network ops (torch.nn.functional names, camelCase).
#include "common.h"

namespace {
int64_t reduction(const std::string& r) {
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  throw std::invalid_argument("reduction must be mean, sum or none, got '" + r + "'");
}
}  // namespace

// conv2d(x, w, b|null, stride, padding, dilation, groups)
DEF("conv2d", R(at::conv2d(T(0), T(1), OT(2), IV(3), IV(4), IV(5), I(6)));)
// batchNorm(x, weight|null, bias|null, runningMean|null, runningVar|null, training, momentum, eps)
DEF("batchNorm", R(at::batch_norm(T(0), OT(1), OT(2), OT(3), OT(4), B(5), D(6), D(7), true));)
DEF("relu", R(at::relu(T(0)));)
DEF("relu_", { at::relu_(T(0)); return info[0]; })
// gelu(x, approximate: none (exact erf form) | tanh)
DEF("gelu", R(at::gelu(T(0), info.Length() > 1 ? STR(1) : std::string("none")));)
// layerNorm(x, normalizedShape, weight|null, bias|null, eps)
DEF("layerNorm", R(at::layer_norm(T(0), IV(1), OT(2), OT(3), D(4)));)
// maxPool2d(x, kernel, stride, padding, dilation, ceilMode)
DEF("maxPool2d", R(at::max_pool2d(T(0), IV(1), IV(2), IV(3), IV(4), B(5)));)
// avgPool2d(x, kernel, stride, padding, ceilMode, countIncludePad)
DEF("avgPool2d", R(at::avg_pool2d(T(0), IV(1), IV(2), IV(3), B(4), B(5)));)
DEF("adaptiveAvgPool2d", R(at::adaptive_avg_pool2d(T(0), IV(1)));)
DEF("linear", R(at::linear(T(0), T(1), OT(2)));)
DEF("dropout", R(at::dropout(T(0), D(1), B(2)));)
// interpolate(x, size[2], mode: bilinear|bicubic|nearest, alignCorners)
DEF("interpolate", {
  std::string mode = STR(2);
  auto size = IV(1);
  if (mode == "bilinear") R(at::upsample_bilinear2d(T(0), size, B(3)));
  if (mode == "bicubic") R(at::upsample_bicubic2d(T(0), size, B(3)));
  if (mode == "nearest") R(at::upsample_nearest2d(T(0), size));
  throw std::invalid_argument("interpolate mode must be bilinear, bicubic or nearest, got '" + mode + "'");
})
DEF("softmax", R(at::softmax(T(0), I(1)));)
DEF("logSoftmax", R(at::log_softmax(T(0), I(1)));)
// crossEntropy(logits, target, weight|null, reduction, ignoreIndex, labelSmoothing)
DEF("crossEntropy", R(at::cross_entropy_loss(T(0), T(1), OT(2), reduction(STR(3)), I(4), D(5)));)
// klDiv(input(log-probs), target, reduction: mean|sum|none|batchmean, logTarget)
DEF("klDiv", {
  std::string r = STR(2);
  if (r == "batchmean") {
    auto& x = T(0);
    auto s = at::kl_div(x, T(1), at::Reduction::Sum, B(3));
    R(x.dim() > 0 ? s / x.size(0) : s);
  }
  R(at::kl_div(T(0), T(1), reduction(r), B(3)));
})
DEF("mseLoss", R(at::mse_loss(T(0), T(1), reduction(STR(2))));)
DEF("nllLoss", R(at::nll_loss(T(0), T(1), OT(2), reduction(STR(3)), I(4)));)
DEF("oneHot", R(at::one_hot(T(0), I(1)));)
DEF("binaryCrossEntropyWithLogits", R(at::binary_cross_entropy_with_logits(T(0), T(1), OT(2), OT(3), reduction(STR(4))));)
