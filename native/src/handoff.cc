// Handing a tensor from one JS thread to another (lorkd serve's forward worker, src/serve/): the
// giving thread parks a new handle on the tensor's storage under a number and posts the number;
// the taking thread takes it out as its own handle. The storage is reference counted by libtorch,
// so it lives until both threads have dropped their handles. A number is taken once; one that
// was taken or dropped already is a JS Error, never a crash.
#include "common.h"

#include <mutex>
#include <unordered_map>

namespace {
std::mutex mu;
std::unordered_map<int64_t, at::Tensor> parked;
int64_t next = 1;
}  // namespace

// handoffPut(t) -> number: a detached alias of t (same storage, its own metadata), parked.
DEF("handoffPut", {
  at::Tensor t = T(0).detach();
  std::lock_guard<std::mutex> lock(mu);
  int64_t id = next++;
  parked.emplace(id, std::move(t));
  return Napi::Number::New(ENV, static_cast<double>(id));
})

// handoffTake(id) -> tensor (the parked handle, now owned by the calling thread).
DEF("handoffTake", {
  int64_t id = I(0);
  at::Tensor t;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = parked.find(id);
    if (it == parked.end()) throw std::invalid_argument("no tensor handed off as " + std::to_string(id) + " (taken or dropped already)");
    t = std::move(it->second);
    parked.erase(it);
  }
  R(t);
})

// handoffDrop(id) -> whether it was still parked (a hand-off that will not be taken).
DEF("handoffDrop", {
  std::lock_guard<std::mutex> lock(mu);
  return Napi::Boolean::New(ENV, parked.erase(I(0)) > 0);
})

// handoffParked() -> how many tensors are parked (a leak check).
DEF("handoffParked", {
  std::lock_guard<std::mutex> lock(mu);
  return Napi::Number::New(ENV, static_cast<double>(parked.size()));
})
