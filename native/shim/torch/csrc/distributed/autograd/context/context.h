// Shim: Debian's libtorch-dev ships c10d's reducer.hpp but not the distributed-autograd header it
// includes. The Reducer only holds a std::shared_ptr to that context (its RPC mode, unused here),
// so this declaration (the pointer type and the callback type the header names) keeps the
// Reducer's layout identical to the compiled library's; nothing here touches the context.
// Used only when the real header is absent (it is earlier on the include path in a full libtorch).
#pragma once
#include <functional>
#include <memory>

#include <ATen/core/Tensor.h>

namespace torch {
namespace distributed {
namespace autograd {
class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};
using ContextPtr = std::shared_ptr<DistAutogradContext>;
}  // namespace autograd
}  // namespace distributed
}  // namespace torch
