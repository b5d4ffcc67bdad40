// The gradient scaler's one native step (src/optim/grad-scaler.ts): unscale every gradient in
// place and report whether any value is inf or NaN. On CUDA this is libtorch's fused
// _amp_foreach_non_finite_check_and_unscale_ (one kernel per dtype group, as torch.cuda.amp);
// libtorch 1.13 has no CPU kernel for it, so CPU gradients take the composed ops.
#include "common.h"

namespace {
// The fused op wants one device and one dtype per call.
bool sameDeviceAndDtype(const std::vector<at::Tensor>& ts) {
  for (auto& t : ts)
    if (t.device() != ts[0].device() || t.scalar_type() != ts[0].scalar_type()) return false;
  return true;
}
}  // namespace

// ampUnscale_(grads, invScale) -> true when a gradient had an inf or NaN (grads are unscaled anyway)
DEF("ampUnscale_", {
  std::vector<at::Tensor> grads = TL(0);
  double inv = D(1);
  if (grads.empty()) return Napi::Boolean::New(ENV, false);
  at::NoGradGuard ng;
  auto opts = at::TensorOptions().dtype(at::kFloat).device(grads[0].device());
  auto found = at::zeros({1}, opts);
  if (grads[0].is_cuda() && sameDeviceAndDtype(grads)) {
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, at::full({1}, inv, opts));
  } else {
    for (auto& g : grads) {
      found.add_(at::isfinite(g).logical_not().any().to(found.options()));
      g.mul_(inv);
    }
  }
  return Napi::Boolean::New(ENV, found.item<float>() > 0);
})
