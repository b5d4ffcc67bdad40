// Data-parallel training on libtorch's own distributed engine (c10d): a TCPStore rendezvous, a
// ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA libtorch builds), and c10d's Reducer, the
// gradient bucketing and backward-overlapped all-reduce that PyTorch's DDP runs. Nothing here is
// home-made: this file only wraps those classes (one process group per process).
//
//   distInit(backend, rank, world, host, port, timeoutMs)   rendezvous + process group
//   distAllreduce(tensors, avg)                             in place, one coalesced call
//   distBroadcast(tensors, root)                            in place
//   distAllreduceSumGrad(x) -> y                            sum over ranks, differentiable (SyncBatchNorm)
//   distBarrier()
//   distReducer(params, bucketCapBytes, findUnused) -> id  DDP's Reducer over these parameters
//   distPrepareBackward(id, outputs)                        before each backward (DDP's forward)
//   distReducerFree(id)                                     when the training run ends
//   distDestroy()
#include "common.h"

#if defined(USE_C10D_GLOO) || defined(USE_C10D_NCCL)
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <memory>
#include <type_traits>

namespace {

struct Dist {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  std::vector<std::shared_ptr<c10d::Reducer>> reducers;
  int rank = -1;
  int world = 0;
  std::string backend;
};
Dist& dist() {
  static Dist d;
  return d;
}
c10d::ProcessGroup& group() {
  if (!dist().pg) throw std::runtime_error("no process group: call dist.init first");
  return *dist().pg;
}

#ifdef USE_C10D_GLOO
std::shared_ptr<::gloo::transport::Device> glooDevice(const std::string& host) {
  for (const char* var : {"LORKD_GLOO_IFNAME", "GLOO_SOCKET_IFNAME"}) {
    const char* ifname = std::getenv(var);
    if (ifname && *ifname) return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  // One machine: bind the loopback address the master listens on; otherwise the hostname's address.
  if (host == "127.0.0.1" || host == "localhost") return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}
#endif

void waitAll(const c10::intrusive_ptr<c10d::Work>& work) { work->wait(); }

// libtorch 1.13: ProcessGroupGloo/NCCL are ProcessGroups. libtorch 2.x: they are Backends, which
// a ProcessGroup holds per device type; 2.0-2.3 name the default backend in the group's Options,
// later versions through setDefaultBackend. Chosen at compile time by what the headers declare.
template <class PG = c10d::ProcessGroup, class B>
c10::intrusive_ptr<PG> asGroup(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world, c10::intrusive_ptr<B> backend,
                               const std::string& name, std::chrono::milliseconds timeout) {
  if constexpr (std::is_base_of_v<PG, B>) {
    return backend;
  } else {
    const auto type = name == "nccl" ? PG::BackendType::NCCL : PG::BackendType::GLOO;
    const auto dev = name == "nccl" ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
    c10::intrusive_ptr<PG> pg;
    if constexpr (std::is_constructible_v<PG, c10::intrusive_ptr<c10d::Store>, int, int, c10::intrusive_ptr<typename PG::Options>>) {
      pg = c10::make_intrusive<PG>(store, rank, world, c10::make_intrusive<typename PG::Options>(name, timeout));
    } else {
      pg = c10::make_intrusive<PG>(store, rank, world);
      pg->setDefaultBackend(type);
    }
    pg->setBackend(dev, type, backend);
    return pg;
  }
}

// c10d's Reducer: 1.13 takes the per-bucket size limits; 2.x dropped them, and later versions
// added skip_all_reduce_unused_params, use_python_reducer and bucket_bytes_cap_list.
template <class Red = c10d::Reducer>
std::shared_ptr<Red> makeReducer(const std::vector<at::Tensor>& params, const std::vector<std::vector<size_t>>& buckets,
                                 const std::vector<size_t>& limits, const c10::intrusive_ptr<c10d::ProcessGroup>& pg, int64_t cap,
                                 bool findUnused, int64_t firstCap) {
  using Names = std::unordered_map<size_t, std::string>;
  using Pg = c10::intrusive_ptr<c10d::ProcessGroup>;
  using V = std::vector<at::Tensor>;
  using Idx = std::vector<std::vector<size_t>>;
  using Sparse = std::vector<bool>;
  Sparse sparse(params.size(), false);
  if constexpr (std::is_constructible_v<Red, V, Idx, std::vector<size_t>, Pg, Sparse, int64_t, bool, bool, Names, int64_t>) {
    return std::make_shared<Red>(params, buckets, limits, pg, sparse, cap, findUnused, false, Names{}, firstCap);
  } else if constexpr (std::is_constructible_v<Red, V, Idx, Pg, Sparse, int64_t, bool, bool, Names, int64_t>) {
    return std::make_shared<Red>(params, buckets, pg, sparse, cap, findUnused, false, Names{}, firstCap);
  } else if constexpr (std::is_constructible_v<Red, V, Idx, Pg, Sparse, int64_t, bool, bool, Names, int64_t, bool, bool>) {
    return std::make_shared<Red>(params, buckets, pg, sparse, cap, findUnused, false, Names{}, firstCap, false, false);
  } else {
    return std::make_shared<Red>(params, buckets, pg, sparse, cap, findUnused, false, Names{}, firstCap, false, false,
                                 std::vector<int64_t>{});
  }
}

at::Tensor allreduceSum(const at::Tensor& x) {
  std::vector<at::Tensor> v{x.detach().contiguous().clone()};
  waitAll(group().allreduce(v));
  return v[0];
}

// y = sum over ranks of x, differentiable: the gradient of a sum over ranks is the sum over ranks
// of the gradients (torch.distributed.nn.all_reduce). SyncBatchNorm's statistics go through it.
struct AllReduceSum : public torch::autograd::Function<AllReduceSum> {
  static at::Tensor forward(torch::autograd::AutogradContext*, const at::Tensor& x) { return allreduceSum(x); }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*, torch::autograd::variable_list g) {
    return {allreduceSum(g[0])};
  }
};

}  // namespace

DEF("distAvailable", { return Napi::Boolean::New(ENV, true); })

DEF("distInit", {
  std::string backend = STR(0);
  int rank = static_cast<int>(I(1));
  int world = static_cast<int>(I(2));
  std::string host = STR(3);
  int port = static_cast<int>(I(4));
  auto timeout = std::chrono::milliseconds(I(5));
  if (dist().pg) throw std::runtime_error("the process group is already initialised");
  if (world < 1 || rank < 0 || rank >= world) throw std::runtime_error("rank must be in [0, world size)");
  if (port < 1 || port > 65535) throw std::runtime_error("port must be in [1, 65535]");
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = rank == 0;
  so.numWorkers = static_cast<std::size_t>(world);
  so.waitWorkers = true;
  so.timeout = timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>(host, so);
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("lorkd/" + backend, store);
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  if (backend == "gloo") {
#ifdef USE_C10D_GLOO
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    opts->devices.push_back(glooDevice(host));
    opts->threads = 2;
    pg = asGroup(prefixed, rank, world, c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world, opts), backend, timeout);
#else
    throw std::runtime_error("this lorkd build has no Gloo (its libtorch ships no gloo headers): use the nccl backend");
#endif
  } else if (backend == "nccl") {
#ifdef USE_C10D_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    pg = asGroup(prefixed, rank, world, c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world, opts), backend, timeout);
#else
    throw std::runtime_error("this lorkd build has no NCCL (build against a CUDA libtorch: LIBTORCH=/path ./bootstrap.sh)");
#endif
  } else {
    throw std::runtime_error("unknown backend " + backend + " (gloo or nccl)");
  }
  dist().store = store;
  dist().pg = pg;
  dist().rank = rank;
  dist().world = world;
  dist().backend = backend;
  return ENV.Undefined();
})

DEF("distAllreduce", {
  std::vector<at::Tensor> ts = TL(0);
  bool avg = B(1);
  if (ts.empty()) return ENV.Undefined();
  // One flat buffer: one collective per call whatever the number of tensors.
  std::vector<at::Tensor> flat{torch::cat([&] {
    std::vector<at::Tensor> v;
    for (auto& t : ts) v.push_back(t.detach().reshape({-1}));
    return v;
  }())};
  waitAll(group().allreduce(flat));
  if (avg) flat[0].div_(dist().world);
  int64_t o = 0;
  torch::NoGradGuard ng;
  for (auto& t : ts) {
    int64_t n = t.numel();
    t.copy_(flat[0].narrow(0, o, n).view(t.sizes()));
    o += n;
  }
  return ENV.Undefined();
})

DEF("distBroadcast", {
  std::vector<at::Tensor> ts = TL(0);
  int root = static_cast<int>(I(1));
  c10d::BroadcastOptions opts;
  opts.rootRank = root;
  torch::NoGradGuard ng;
  for (auto& t : ts) {
    std::vector<at::Tensor> one{t.is_contiguous() ? t.detach() : t.detach().contiguous()};
    waitAll(group().broadcast(one, opts));
    if (!t.is_contiguous()) t.copy_(one[0]);
  }
  return ENV.Undefined();
})

DEF("distAllreduceSumGrad", { R(AllReduceSum::apply(T(0))); })

DEF("distBarrier", {
  waitAll(group().barrier());
  return ENV.Undefined();
})

DEF("distReducer", {
  std::vector<at::Tensor> params = TL(0);
  int64_t cap = I(1);
  bool findUnused = B(2);
  group();
  // DDP's bucket order: parameters in reverse registration order approximate the order in
  // which backward produces their gradients, so the first buckets fill (and reduce) first.
  std::vector<at::Tensor> reversed(params.rbegin(), params.rend());
  std::vector<int64_t> idx;
  for (int64_t i = static_cast<int64_t>(params.size()) - 1; i >= 0; i--) idx.push_back(i);
  auto assignment = c10d::compute_bucket_assignment_by_size(
      reversed, {static_cast<size_t>(std::min<int64_t>(cap, 1 << 20)), static_cast<size_t>(cap)}, std::vector<bool>(params.size(), false), idx);
  auto buckets = std::get<0>(assignment);
  auto limits = std::get<1>(assignment);
  auto r = makeReducer(params, buckets, limits, dist().pg, cap, findUnused, /*first_bucket_bytes_cap=*/std::min<int64_t>(cap, 1 << 20));
  dist().reducers.push_back(r);
  Napi::Object o = Napi::Object::New(ENV);
  o.Set("id", Napi::Number::New(ENV, static_cast<double>(dist().reducers.size() - 1)));
  o.Set("buckets", Napi::Number::New(ENV, static_cast<double>(buckets.size())));
  return o;
})

DEF("distPrepareBackward", {
  size_t id = static_cast<size_t>(I(0));
  if (id >= dist().reducers.size() || !dist().reducers[id]) throw std::runtime_error("unknown reducer");
  dist().reducers[id]->prepare_for_backward(TL(1));
  return ENV.Undefined();
})

DEF("distReducerFree", {
  size_t id = static_cast<size_t>(I(0));
  if (id < dist().reducers.size()) dist().reducers[id].reset();
  return ENV.Undefined();
})

DEF("distDestroy", {
  dist().reducers.clear();
  dist().pg.reset();
  dist().store.reset();
  dist().rank = -1;
  dist().world = 0;
  return ENV.Undefined();
})

#else
DEF("distAvailable", { return Napi::Boolean::New(ENV, false); })
#endif
