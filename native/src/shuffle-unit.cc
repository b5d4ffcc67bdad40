// ShuffleNetV2's unit on the inference path as one native call: split (stride 1) or both branches
// (stride > 1), each branch a chain of folded convolutions (BatchNorm folded, ReLU fused), and
// the concatenation with the channel shuffle as one copy. At batch 1 a unit's arithmetic takes a
// few microseconds and each crossing from JavaScript with a tensor made costs about 5 (issue
// 22): one call per unit instead of eight to ten. The unit's weights are taken once
// (shuffleUnitPrepare); every convolution runs infer-kernels.cc's kernels on the channels_last
// pixel rows, and at::conv2d where they do not apply.
#include "common.h"
#include "eks-pointwise.h"
#include "infer-kernels.h"
#include "lowrank-blas.h"
#include "prepacked.h"

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <memory>
#include <mutex>

namespace {
struct ConvStep {
  at::Tensor weight, taps, bias;  // taps: the depthwise weight tap-major (depthwise steps only)
  at::Tensor weightT;              // a 1x1 weight as (Cin, Cout), for the GEMM over few rows
  int64_t groups = 1;
  std::vector<int64_t> stride, padding;
  bool relu = false;
  // oneDNN's pre-packed convolution, for inputs the kernels leave (made on the first such input).
  std::shared_ptr<c10::IValue> packed;
  // An expert convolution's EKS pass (1x1 only): the per-task factors A (T, r, Cin), B (T, Cout, r)
  // and the scale; the ReLU then follows the low-rank paths.
  at::Tensor A, B, At, Bt, Ap;  // At, Bt, Ap: A and B arranged for addLowRankRows
  double scale = 0;
  bool expert() const { return A.defined(); }
};

struct Unit {
  int64_t stride = 1;
  std::vector<ConvStep> branch1, branch2;
  std::mutex packing;  // a unit may run on several threads (serve's workers)
  // Tasks of its expert steps (0: a plain unit).
  int64_t tasks() const {
    for (const auto* b : {&branch1, &branch2})
      for (const auto& s : *b)
        if (s.expert()) return s.A.size(0);
    return 0;
  }
};

bool pointwise(const ConvStep& s) {
  return s.groups == 1 && s.weight.size(2) == 1 && s.weight.size(3) == 1 && s.stride[0] == 1 && s.stride[1] == 1 &&
         s.padding[0] == 0 && s.padding[1] == 0;
}

at::Tensor runConv(Unit& u, ConvStep& s, const at::Tensor& x, bool relu);

// relu?(conv(x, W0') + b' + the task's low-rank path on its rows): the EKS pass of a folded
// expert convolution (the same arithmetic as eksConvInfer's GEMM route).
at::Tensor runExpert(Unit& u, ConvStep& s, const at::Tensor& x, const std::vector<int64_t>& counts) {
  // Tasks with many rows through their merged weight (eks-pointwise.cc); undefined where none has.
  at::Tensor y = lorkd::eksPointwise(x, s.weight, s.bias, s.At, s.Bt, s.Ap, counts, s.scale, s.relu);
  if (y.defined()) return y;
  // The shared GEMM without the bias, then row by row in one pass the low-rank paths, the bias and
  // the ReLU: faster than two GEMMs per task at every size measured (64 and 224 px, batch 8 and
  // 32, 10 tasks: EKS pass 1.11-1.60x the fused expert, from 1.20-1.84x), and one pass over the
  // output fewer than adding the bias after the GEMM.
  // (oneDNN's pre-packed convolution, with the bias, for larger outputs.)
  y = lorkd::pointwiseConv(x, s.weight, at::Tensor(), false, s.weightT);
  const at::Tensor rowBias = y.defined() ? s.bias : at::Tensor();
  if (!y.defined()) y = runConv(u, s, x, false);
  if (lorkd::addLowRankRows(x, y, s.At, s.Bt, s.Ap, rowBias, counts, s.scale, s.relu)) return y;
  if (rowBias.defined()) y.add_(rowBias.view({1, -1, 1, 1}));
  if (!lorkd::addLowRankBlas(x, y, s.A, s.B, counts, s.scale)) throw std::runtime_error("shuffleUnitRun: the low-rank paths need sgemm and float32 pixel rows");
  if (s.relu) y.relu_();
  return y;
}

at::Tensor runStep(Unit& u, ConvStep& s, const at::Tensor& x, const std::vector<int64_t>& counts) {
  return s.expert() ? runExpert(u, s, x, counts) : runConv(u, s, x, s.relu);
}

at::Tensor runConv(Unit& u, ConvStep& s, const at::Tensor& x, bool relu) {
  at::Tensor y;
  if (pointwise(s))
    y = lorkd::pointwiseConv(x, s.weight, s.bias, relu, s.weightT);
  else if (s.taps.defined())
    y = lorkd::depthwiseConv(x, s.taps, s.weight.size(2), s.weight.size(3), s.bias, s.stride, s.padding, relu);
  if (y.defined()) return y;
  std::shared_ptr<c10::IValue> packed;
  {
    std::lock_guard<std::mutex> lock(u.packing);
    if (!s.packed)
      s.packed = std::make_shared<c10::IValue>(lorkd::prepackConv(s.weight, s.bias, s.stride, s.padding, {1, 1}, s.groups, x.sizes(), relu));
    packed = s.packed;
  }
  y = lorkd::runPrepacked(*packed, x);
  if (y.defined()) return y.contiguous(at::MemoryFormat::ChannelsLast);
  y = at::conv2d(x, s.weight, s.bias, s.stride, s.padding, {1, 1}, s.groups).contiguous(at::MemoryFormat::ChannelsLast);
  if (relu) y.relu_();
  return y;
}

at::Tensor runBranch(Unit& u, std::vector<ConvStep>& steps, at::Tensor x, const std::vector<int64_t>& counts) {
  for (auto& s : steps) x = runStep(u, s, x, counts);
  return x;
}

ConvStep stepOf(const Napi::Value& v) {
  if (!v.IsArray()) throw std::invalid_argument("shuffleUnitPrepare: each step must be [weight, bias, groups, stride, padding, relu]");
  auto a = v.As<Napi::Array>();
  auto tensorAt = [&](uint32_t i) -> at::Tensor {
    Napi::Value e = a.Get(i);
    if (!lorkd::isTensor(e)) throw std::invalid_argument("shuffleUnitPrepare: a step's weight and bias must be tensors");
    return Napi::ObjectWrap<lorkd::NTensor>::Unwrap(e.As<Napi::Object>())->t;
  };
  auto intsAt = [&](uint32_t i) {
    auto l = a.Get(i).As<Napi::Array>();
    std::vector<int64_t> out;
    for (uint32_t j = 0; j < l.Length(); j++) out.push_back(l.Get(j).As<Napi::Number>().Int64Value());
    return out;
  };
  ConvStep s;
  s.weight = tensorAt(0).contiguous();
  s.bias = tensorAt(1).contiguous();
  s.groups = a.Get(2u).As<Napi::Number>().Int64Value();
  s.stride = intsAt(3);
  s.padding = intsAt(4);
  s.relu = a.Get(5u).As<Napi::Boolean>().Value();
  if (s.weight.dim() != 4 || s.stride.size() != 2 || s.padding.size() != 2) throw std::invalid_argument("shuffleUnitPrepare: a step needs a 4-d weight and 2-d stride and padding");
  if (s.groups > 1 && s.groups == s.weight.size(0) && s.weight.size(1) == 1) s.taps = lorkd::depthwiseTaps(s.weight);
  if (pointwise(s)) s.weightT = lorkd::pointwiseTransposed(s.weight);
  if (a.Length() > 6 && lorkd::isTensor(a.Get(6u))) {
    s.A = tensorAt(6).contiguous();
    s.B = tensorAt(7).contiguous();
    s.scale = a.Get(8u).As<Napi::Number>().DoubleValue();
    auto f = lorkd::lowRankRowFactors(s.A, s.B);
    s.At = f.At;
    s.Bt = f.Bt;
    s.Ap = f.Ap;
    if (!pointwise(s) || s.A.dim() != 3 || s.B.dim() != 3 || s.A.size(0) != s.B.size(0) || s.A.size(2) != s.weight.size(1) ||
        s.B.size(1) != s.weight.size(0) || s.A.size(1) != s.B.size(2))
      throw std::invalid_argument("shuffleUnitPrepare: an expert step must be a 1x1 convolution with factors A (T, r, Cin) and B (T, Cout, r)");
  }
  return s;
}

// The unit an External from shuffleUnitPrepare holds; throws where it is not one or was freed.
Unit& unitOf(const Napi::Value& v, const char* op) {
  if (!v.IsExternal()) throw std::invalid_argument(std::string(op) + ": not a prepared unit");
  Unit& u = *v.As<Napi::External<Unit>>().Data();
  if (u.branch2.empty()) throw std::invalid_argument(std::string(op) + ": the unit was freed");
  return u;
}

// Whether the units take x (a float32 CPU 4-d tensor, autocast off); otherwise the caller runs the layers.
bool runsNatively(const at::Tensor& x) {
  return x.is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 4 && !lorkd::autocastEnabled(c10::DeviceType::CPU);
}

// The routing's per-task row counts (argument i; expert units need them): the batch's rows grouped by task.
std::vector<int64_t> countsOf(const Napi::CallbackInfo& info, size_t i, const Unit& u, int64_t batch, const char* op) {
  std::vector<int64_t> counts;
  if (info.Length() > i && info[i].IsArray()) {
    counts = lorkd::argInts(info, i);
    int64_t total = 0;
    for (auto c : counts) total += c;
    const int64_t T = u.tasks();
    if (total != batch || static_cast<int64_t>(counts.size()) != T)
      throw std::invalid_argument(std::string(op) + ": the routing counts (" + std::to_string(counts.size()) + " tasks, " + std::to_string(total) +
                                  " rows) do not match the unit (" + std::to_string(T) + " tasks) and the batch (" + std::to_string(batch) + " rows)");
  } else if (u.tasks() > 0) {
    throw std::invalid_argument(std::string(op) + ": this unit holds expert convolutions and needs the routing's counts");
  }
  return counts;
}

// Rows per task among rows [b0, b1) of a batch grouped by task (`counts`: the whole batch's).
std::vector<int64_t> countsIn(const std::vector<int64_t>& counts, int64_t b0, int64_t b1) {
  std::vector<int64_t> out(counts.size());
  int64_t start = 0;
  for (size_t t = 0; t < counts.size(); t++) {
    out[t] = std::max<int64_t>(0, std::min(start + counts[t], b1) - std::max(start, b0));
    start += counts[t];
  }
  return out;
}

// The unit's output (channels_last) for x, under no-grad.
at::Tensor runUnit(Unit& u, at::Tensor x, const std::vector<int64_t>& counts) {
  lorkd::PixelRows rows;
  if (!lorkd::pixelRows(x, rows)) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor a, b;
  if (u.stride == 1) {
    const int64_t half = x.size(1) / 2;
    a = x.narrow(1, 0, half);
    b = runBranch(u, u.branch2, x.narrow(1, half, x.size(1) - half), counts);
  } else {
    a = runBranch(u, u.branch1, x, counts);
    b = runBranch(u, u.branch2, x, counts);
  }
  at::Tensor out = lorkd::catShuffle(a, b);
  if (!out.defined()) out = at::channel_shuffle(at::cat({a, b}, 1), 2);
  return out;
}

std::vector<ConvStep> stepsOf(const Napi::Value& v) {
  std::vector<ConvStep> out;
  auto a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(stepOf(a.Get(i)));
  return out;
}
}  // namespace

// shuffleUnitPrepare(stride, branch1Steps, branch2Steps) -> unit: each step [weight, bias, groups,
// stride, padding, relu] of a folded convolution, or [..., A, B, scale] of a folded expert
// convolution (tensors taken by reference, taps made once).
DEF("shuffleUnitPrepare", {
  auto u = std::make_unique<Unit>();
  u->stride = I(0);
  u->branch1 = stepsOf(info[1]);
  u->branch2 = stepsOf(info[2]);
  if (u->branch2.empty() || (u->stride > 1) == u->branch1.empty()) throw std::invalid_argument("shuffleUnitPrepare: stride 1 takes branch2 alone, a larger stride both branches");
  return Napi::External<Unit>::New(ENV, u.release(), [](Napi::Env, Unit* p) { delete p; });
})

// shuffleUnitRun(unit, x, counts|null) -> the unit's output (channels_last), with `counts` the
// routing's rows per task where the unit holds expert convolutions; null where it does not apply
// (not a float32 CPU 4-d tensor, or autocast on): the caller runs the unit's modules.
DEF("shuffleUnitRun", {
  Unit& u = unitOf(info[0], "shuffleUnitRun");
  at::Tensor x = T(1);
  if (!runsNatively(x)) return ENV.Null();
  const std::vector<int64_t> counts = countsOf(info, 2, u, x.size(0), "shuffleUnitRun");
  at::NoGradGuard ng;
  R(runUnit(u, x, counts));
})

// shuffleUnitsRun(units, x, counts|null) -> the units one after another (a network's stages), null
// where a unit would return null. On more than one intra-op thread and a batch of two or more,
// the batch is split into one contiguous part per thread and each thread runs every unit on its
// part with its kernels on one thread (ATen and oneDNN run nested parallel regions inline):
// inter-op rather than intra-op parallelism. The stages of ShuffleNetV2 x1.0 on two threads: 64 px
// batch 8 1.4 ms against 1.8-1.9 without the split, level at 64 px batch 32 and at 224 px.
DEF("shuffleUnitsRun", {
  if (!info[0].IsArray()) throw std::invalid_argument("shuffleUnitsRun: expected an array of prepared units");
  auto list = info[0].As<Napi::Array>();
  std::vector<Unit*> units;
  for (uint32_t i = 0; i < list.Length(); i++) units.push_back(&unitOf(list.Get(i), "shuffleUnitsRun"));
  if (units.empty()) throw std::invalid_argument("shuffleUnitsRun: no units");
  at::Tensor x = T(1);
  if (!runsNatively(x)) return ENV.Null();
  const std::vector<int64_t> counts = countsOf(info, 2, *units.front(), x.size(0), "shuffleUnitsRun");
  for (Unit* u : units)
    if (u->tasks() != units.front()->tasks()) throw std::invalid_argument("shuffleUnitsRun: the units hold different numbers of tasks");
  at::NoGradGuard ng;
  const int64_t n = x.size(0), parts = std::min<int64_t>(at::get_num_threads(), n);
  if (parts <= 1 || at::in_parallel_region()) {
    for (Unit* u : units) x = runUnit(*u, x, counts);
    R(x);
  }
  std::vector<at::Tensor> outs(parts);
  const at::ThreadLocalState state;  // grad and inference mode, dispatch keys: per thread
  at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
    at::ThreadLocalStateGuard guard(state);
    for (int64_t p = p0; p < p1; p++) {
      const int64_t b0 = n * p / parts, b1 = n * (p + 1) / parts;
      at::Tensor y = x.narrow(0, b0, b1 - b0);
      const std::vector<int64_t> c = counts.empty() ? counts : countsIn(counts, b0, b1);
      for (Unit* u : units) y = runUnit(*u, y, c);
      outs[p] = y;
    }
  });
  R(at::cat(outs, 0).contiguous(at::MemoryFormat::ChannelsLast));
})

// shuffleUnitFree(unit): drops the unit's references to its weights now (not at garbage collection).
DEF("shuffleUnitFree", {
  if (!info[0].IsExternal()) throw std::invalid_argument("shuffleUnitFree: not a prepared unit");
  Unit& u = *info[0].As<Napi::External<Unit>>().Data();
  std::lock_guard<std::mutex> lock(u.packing);
  u.branch1.clear();
  u.branch2.clear();
  return ENV.Undefined();
})
