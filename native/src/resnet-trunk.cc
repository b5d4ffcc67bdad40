// A ResNet's trunk on the inference path as one native call: the stem convolution (its BatchNorm
// folded, ReLU fused), the max pooling and every residual block, converted back to a dense
// tensor once at the end. Each stage runs one of three ways, by its size:
// - oneDNN's convolutions (its blocked layout, or its nhwc kernels at batch 1): through oneDNN's
//   own API where the build has its headers (onednn-chain.h: primitives made once, the ReLU and
//   the residual sum as post-ops), else ATen's mkldnn ops on oneDNN tensors with the sum and ReLU
//   in place;
// - lorkd's direct loop (direct-conv.h) on dense channels_last tensors, for small stages;
// - the few-rows pass (few-rows-conv.h), where few output pixels read a large weight.
//
// Why one call: the pre-packed convolutions of infer.cc read and write channels_last tensors
// through ATen's nhwc kernels, 1.5-1.6x slower than oneDNN's blocked ones on ResNet-18 at 64 px
// on an AVX-512 CPU (Debian's PyTorch 1.13, one thread, 64 px batch 1 and 8: 118 / 263 img/s
// against 186 / 406 for a blocked chain), and the residual sum and ReLU ran as two more
// dispatched ops from JavaScript per block. The function is the folded network's: outputs equal
// the unfolded model's within 1e-5 (test/infer-plan.test.ts, test/infer-resnet-trunk.test.ts).
// Before common.h, whose argument macros (T, R, ...) would rewrite oneDNN's templates.
#include "onednn-chain.h"
//
#include "common.h"
#include "direct-conv.h"
#include "few-rows-conv.h"
#include "infer-kernels.h"

#include <memory>

namespace {
struct TrunkConv {
  at::Tensor plain;   // the weight as given (Cout, Cin / groups, kh, kw), float32 contiguous
  at::Tensor bias;    // dense
#ifdef LORKD_DNNL
  // The convolution through oneDNN's API, its ReLU (and for a block's last, the residual sum and
  // the block's ReLU) as post-ops.
  std::shared_ptr<lorkd::onednn::Conv> dnnl;
#else
  at::Tensor weight;  // ATen's oneDNN tensor, reordered for the convolution
#endif
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups = 1;
  bool relu = false;
  int64_t cout = 0, kh = 0, kw = 0, k = 0;  // output channels, window, and kh * kw * Cin
  // The weight packed for few output pixels, made on the first batch that has them.
  std::shared_ptr<lorkd::LazyFewRows> few = std::make_shared<lorkd::LazyFewRows>();
  // Whether the direct loop on channels_last tensors fits it (direct-conv.h: groups, channels,
  // CPU), and its packing for the loop, made when a stage first takes the loop.
  bool direct = false;
  std::shared_ptr<lorkd::LazyDirect> directPack = std::make_shared<lorkd::LazyDirect>();
};

struct TrunkBlock {
  std::vector<TrunkConv> convs;  // the residual branch; the last one has no ReLU (it follows the sum)
  std::unique_ptr<TrunkConv> down;
};

struct Trunk {
  std::unique_ptr<TrunkConv> stem;
  bool pool = false;
#ifdef LORKD_DNNL
  std::shared_ptr<lorkd::onednn::MaxPool> dnnlPool;
#endif
  std::vector<int64_t> poolKernel, poolStride, poolPadding, poolDilation;
  bool poolCeil = false;
  std::vector<TrunkBlock> blocks;
  bool freed = false;
};

std::vector<int64_t> intsOf(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw std::invalid_argument(std::string("resnetTrunkPrepare: ") + what + " must be a list of integers");
  auto l = v.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t j = 0; j < l.Length(); j++) out.push_back(l.Get(j).As<Napi::Number>().Int64Value());
  if (out.size() != 2) throw std::invalid_argument(std::string("resnetTrunkPrepare: ") + what + " must have 2 entries");
  return out;
}

// [weight, bias, stride, padding, dilation, groups, relu] of a folded convolution.
std::unique_ptr<TrunkConv> convOf(const Napi::Value& v) {
  if (!v.IsArray()) throw std::invalid_argument("resnetTrunkPrepare: a convolution must be [weight, bias, stride, padding, dilation, groups, relu]");
  auto a = v.As<Napi::Array>();
  if (a.Length() != 7 || !lorkd::isTensor(a.Get(0u)) || !lorkd::isTensor(a.Get(1u)))
    throw std::invalid_argument("resnetTrunkPrepare: a convolution must be [weight, bias, stride, padding, dilation, groups, relu]");
  auto tensorAt = [&](uint32_t i) { return Napi::ObjectWrap<lorkd::NTensor>::Unwrap(a.Get(i).As<Napi::Object>())->t; };
  auto c = std::make_unique<TrunkConv>();
  const at::Tensor w = tensorAt(0);
  if (w.dim() != 4 || !w.is_cpu() || w.scalar_type() != at::kFloat) throw std::invalid_argument("resnetTrunkPrepare: a weight must be a 4-d float32 CPU tensor");
  c->stride = intsOf(a.Get(2u), "stride");
  c->padding = intsOf(a.Get(3u), "padding");
  c->dilation = intsOf(a.Get(4u), "dilation");
  c->groups = a.Get(5u).As<Napi::Number>().Int64Value();
  c->relu = a.Get(6u).As<Napi::Boolean>().Value();
  c->bias = tensorAt(1).contiguous().clone();
  if (c->bias.dim() != 1 || c->bias.size(0) != w.size(0)) throw std::invalid_argument("resnetTrunkPrepare: a bias must have one value per output channel");
  c->cout = w.size(0), c->kh = w.size(2), c->kw = w.size(3);
  c->k = w.size(1) * w.size(2) * w.size(3);
  c->plain = w.detach().contiguous().clone();
#ifdef LORKD_DNNL
  c->dnnl = std::make_shared<lorkd::onednn::Conv>(c->plain, c->bias, c->stride, c->padding, c->dilation, c->groups, c->relu);
#else
  c->weight = at::mkldnn_reorder_conv2d_weight(c->plain.to_mkldnn(), c->padding, c->stride, c->dilation, c->groups);
#endif
  c->direct = lorkd::directConvFits(c->plain, c->groups);
  return c;
}

#ifndef LORKD_DNNL
at::Tensor runConv(const TrunkConv& c, const at::Tensor& x) {
  at::Tensor y = at::mkldnn_convolution(x, c.weight, c.bias, c.padding, c.stride, c.dilation, c.groups);
  if (c.relu) at::relu_(y);
  return y;
}
#endif

// relu?(c(x) + residual?) on a dense channels_last x, through the weight packed for few rows.
at::Tensor runFew(const TrunkConv& c, const at::Tensor& x, const at::Tensor* residual, bool relu) {
  const lorkd::FewRowsConv& f = c.few->get([&] { return lorkd::fewRowsPack(c.plain, c.bias, c.stride, c.padding, c.dilation); });
  return lorkd::fewRowsRun(f, x, residual, relu);
}

// Whether block b, on an input (N, C, H, W), reads more weight than it computes on: few output
// pixels and a large weight (lorkd::fewRowsPays), every convolution dense.
bool fewBlock(const TrunkBlock& b, at::IntArrayRef in) {
  for (const auto& c : b.convs)
    if (c.groups != 1) return false;
  if (b.down && b.down->groups != 1) return false;
  const TrunkConv& c = b.convs.front();
  const int64_t oh = lorkd::windowOutSize(in[2], c.kh, c.stride[0], c.padding[0], c.dilation[0]);
  const int64_t ow = lorkd::windowOutSize(in[3], c.kw, c.stride[1], c.padding[1], c.dilation[1]);
  return lorkd::fewRowsPays(in[0] * oh * ow, c.k, c.cout);
}

// Output pixels (batch x height x width) of c on an input of `in`'s sizes.
int64_t outPixels(const TrunkConv& c, at::IntArrayRef in) {
  return in[0] * lorkd::windowOutSize(in[2], c.kh, c.stride[0], c.padding[0], c.dilation[0]) *
         lorkd::windowOutSize(in[3], c.kw, c.stride[1], c.padding[1], c.dilation[1]);
}

// Whether block b runs through the direct loop on an input of `in`'s sizes: each of its
// convolutions has the packing and the block's work is small enough (lorkd::directConvPays).
bool directBlock(const TrunkBlock& b, at::IntArrayRef in) {
  for (const auto& c : b.convs)
    if (!c.direct) return false;
  if (b.down && !b.down->direct) return false;
  // The block's largest convolution decides: the first may be a strided one of a quarter the work.
  int64_t most = 0;
  std::vector<int64_t> size = in.vec();
  for (const auto& c : b.convs) {
    const int64_t pixels = outPixels(c, size);
    most = std::max(most, pixels * c.k * c.cout);
    size = {size[0], c.cout, lorkd::windowOutSize(size[2], c.kh, c.stride[0], c.padding[0], c.dilation[0]),
            lorkd::windowOutSize(size[3], c.kw, c.stride[1], c.padding[1], c.dilation[1])};
  }
  return lorkd::directConvPays(most);
}

// relu?(c(x) + residual?) on a dense channels_last x through the direct loop.
at::Tensor runDirect(const TrunkConv& c, const at::Tensor& x, const at::Tensor* residual, bool relu) {
  const lorkd::DirectConv& d = c.directPack->get([&] { return lorkd::directConvPack(c.plain, c.bias, c.stride, c.padding, c.dilation); });
  return lorkd::directConvRun(d, x, residual, relu);
}

// relu?(c(x) + residual?) on a dense channels_last x: the few-rows pass or the direct loop.
at::Tensor runDense(const TrunkConv& c, const at::Tensor& x, const at::Tensor* residual, bool relu, bool few) {
  return few ? runFew(c, x, residual, relu) : runDirect(c, x, residual, relu);
}

// Whether the stem runs through the direct loop on an input of `in`'s sizes.
bool directStem(const Trunk& t, at::IntArrayRef in) {
  return t.stem->direct && lorkd::directConvPays(outPixels(*t.stem, in) * t.stem->k * t.stem->cout);
}

// A dense stage's block: the residual sum and the ReLU in its last convolution's store.
at::Tensor runDenseBlock(const TrunkBlock& b, const at::Tensor& y, bool few) {
  const at::Tensor identity = b.down ? runDense(*b.down, y, nullptr, b.down->relu, few) : y;
  at::Tensor o = y;
  for (size_t i = 0; i + 1 < b.convs.size(); i++) o = runDense(b.convs[i], o, nullptr, b.convs[i].relu, few);
  return runDense(b.convs.back(), o, &identity, true, few);
}

// The max pooling on a dense channels_last tensor by lorkd's loop (dilation 1, floor mode); undefined otherwise.
at::Tensor densePool(const Trunk& t, const at::Tensor& y) {
  if (t.poolCeil || t.poolDilation[0] != 1 || t.poolDilation[1] != 1) return {};
  return lorkd::maxPool(y, t.poolKernel[0], t.poolKernel[1], t.poolStride, t.poolPadding);
}

// Each stage runs either in oneDNN's blocked layout or on dense channels_last tensors (the direct
// loop where the work is small, the few-rows pass where the weight outweighs the arithmetic, both
// with the residual sum and the ReLU in the last convolution's store); the activation is
// converted where the next stage wants the other.
#ifdef LORKD_DNNL
at::Tensor runTrunk(const Trunk& t, const at::Tensor& x) {
  using lorkd::onednn::Act;
  Act y = lorkd::onednn::wrapDense(x);
  bool owned = false;  // whether y's bytes are the trunk's (a block without downsample sums into them)
  if (t.stem) {
    if (directStem(t, x.sizes()))
      y = lorkd::onednn::wrapDense(runDirect(*t.stem, x, nullptr, t.stem->relu));
    else
      y = t.stem->dnnl->run(y, nullptr);
    owned = true;
  }
  if (t.pool) {
    const at::Tensor p = y.dense ? densePool(t, y.t) : at::Tensor();
    y = p.defined() ? lorkd::onednn::wrapDense(p) : t.dnnlPool->run(y);
    owned = true;
  }
  for (const auto& b : t.blocks) {
    const std::vector<int64_t> size = y.md.dims();
    const bool few = fewBlock(b, size);
    if (few || directBlock(b, size)) {
      y = lorkd::onednn::wrapDense(runDenseBlock(b, lorkd::onednn::toDense(y), few));
      owned = true;
      continue;
    }
    Act identity = b.down ? b.down->dnnl->run(y, nullptr) : owned ? y : Act{y.t.clone(), y.md, y.dense};
    Act o = y;
    for (size_t i = 0; i + 1 < b.convs.size(); i++) o = b.convs[i].dnnl->run(o, nullptr);
    y = b.convs.back().dnnl->run(o, &identity);
    owned = true;
  }
  return lorkd::onednn::toDense(y);
}
#else
at::Tensor toDense(const at::Tensor& y) { return y.is_mkldnn() ? y.to_dense().contiguous(at::MemoryFormat::ChannelsLast) : y; }
at::Tensor toBlocked(const at::Tensor& y) { return y.is_mkldnn() ? y : y.contiguous().to_mkldnn(); }

at::Tensor runTrunk(const Trunk& t, const at::Tensor& x) {
  at::Tensor y = x;
  if (t.stem) {
    if (directStem(t, y.sizes())) y = runDirect(*t.stem, y, nullptr, t.stem->relu);
    else y = runConv(*t.stem, toBlocked(y));
  }
  if (t.pool) {
    const at::Tensor p = y.is_mkldnn() ? at::Tensor() : densePool(t, y);
    y = p.defined() ? p : at::mkldnn_max_pool2d(toBlocked(y), t.poolKernel, t.poolStride, t.poolPadding, t.poolDilation, t.poolCeil);
  }
  for (const auto& b : t.blocks) {
    const bool few = fewBlock(b, y.sizes());
    if (few || directBlock(b, y.sizes())) {
      y = runDenseBlock(b, toDense(y), few);
      continue;
    }
    y = toBlocked(y);
    const at::Tensor identity = b.down ? runConv(*b.down, y) : y;
    at::Tensor o = y;
    for (const auto& c : b.convs) o = runConv(c, o);
    o.add_(identity);
    at::relu_(o);
    y = o;
  }
  return y.is_mkldnn() ? y.to_dense() : y;
}
#endif
}  // namespace

// resnetTrunkPrepare(stem|null, pool|null, blocks) -> trunk | null. stem and every convolution:
// [weight, bias, stride, padding, dilation, groups, relu] (folded: BatchNorm in the weight and
// bias); pool: [kernel, stride, padding, dilation, ceilMode] of a max pooling; blocks: [[conv, ...],
// downsample conv | null] each, out = relu(convs(x) + (downsample(x) or x)). null where this
// libtorch has no oneDNN (the caller keeps the layers).
DEF("resnetTrunkPrepare", {
  if (!at::hasMKLDNN()) return ENV.Null();
  at::NoGradGuard ng;
  auto t = std::make_unique<Trunk>();
  if (info[0].IsArray()) t->stem = convOf(info[0]);
  if (info[1].IsArray()) {
    auto p = info[1].As<Napi::Array>();
    if (p.Length() != 5) throw std::invalid_argument("resnetTrunkPrepare: pool must be [kernel, stride, padding, dilation, ceilMode]");
    t->pool = true;
    t->poolKernel = intsOf(p.Get(0u), "pool kernel");
    t->poolStride = intsOf(p.Get(1u), "pool stride");
    t->poolPadding = intsOf(p.Get(2u), "pool padding");
    t->poolDilation = intsOf(p.Get(3u), "pool dilation");
    t->poolCeil = p.Get(4u).As<Napi::Boolean>().Value();
#ifdef LORKD_DNNL
    t->dnnlPool = std::make_shared<lorkd::onednn::MaxPool>(t->poolKernel, t->poolStride, t->poolPadding, t->poolDilation, t->poolCeil);
#endif
  }
  if (!info[2].IsArray()) throw std::invalid_argument("resnetTrunkPrepare: blocks must be a list");
  auto bl = info[2].As<Napi::Array>();
  for (uint32_t i = 0; i < bl.Length(); i++) {
    auto b = bl.Get(i).As<Napi::Array>();
    if (!bl.Get(i).IsArray() || b.Length() != 2 || !b.Get(0u).IsArray()) throw std::invalid_argument("resnetTrunkPrepare: a block must be [[conv, ...], downsample | null]");
    TrunkBlock blk;
    auto convs = b.Get(0u).As<Napi::Array>();
    for (uint32_t j = 0; j < convs.Length(); j++) blk.convs.push_back(std::move(*convOf(convs.Get(j))));
    if (blk.convs.empty() || blk.convs.back().relu) throw std::invalid_argument("resnetTrunkPrepare: a block needs convolutions, the last without its ReLU (it follows the sum)");
    if (b.Get(1u).IsArray()) blk.down = convOf(b.Get(1u));
#ifdef LORKD_DNNL
    // The last convolution adds the residual and applies the block's ReLU as post-ops.
    TrunkConv& last = blk.convs.back();
    last.dnnl = std::make_shared<lorkd::onednn::Conv>(last.plain, last.bias, last.stride, last.padding, last.dilation, last.groups, true);
#endif
    t->blocks.push_back(std::move(blk));
  }
  return Napi::External<Trunk>::New(ENV, t.release(), [](Napi::Env, Trunk* p) { delete p; });
})

// resnetTrunkRun(trunk, x) -> the trunk's output, a dense tensor; null where it does not apply (not
// a float32 CPU 4-d tensor, or autocast on): the caller runs the layers.
DEF("resnetTrunkRun", {
  if (!info[0].IsExternal()) throw std::invalid_argument("resnetTrunkRun: not a prepared trunk");
  const Trunk& t = *info[0].As<Napi::External<Trunk>>().Data();
  if (t.freed) throw std::invalid_argument("resnetTrunkRun: the trunk was freed");
  const at::Tensor& x = T(1);
  if (!x.is_cpu() || x.layout() != at::kStrided || x.scalar_type() != at::kFloat || x.dim() != 4 || x.requires_grad() ||
      autocastEnabled(c10::DeviceType::CPU))
    return ENV.Null();
  at::NoGradGuard ng;
#ifdef LORKD_DNNL
  try {
    R(runTrunk(t, x));
  } catch (const dnnl::error&) {
    return ENV.Null();  // a shape oneDNN has no primitive for: the caller runs the layers
  }
#else
  R(runTrunk(t, x));
#endif
})

// resnetTrunkFree(trunk): drops the trunk's weights now (not at garbage collection).
DEF("resnetTrunkFree", {
  if (!info[0].IsExternal()) throw std::invalid_argument("resnetTrunkFree: not a prepared trunk");
  Trunk& t = *info[0].As<Napi::External<Trunk>>().Data();
  t.stem.reset();
  t.blocks.clear();
  t.freed = true;
  return ENV.Undefined();
})

// trunkOnednnPrimitives() -> the oneDNN primitives the trunks made through oneDNN's own API since
// the library was loaded; -1 where the build has no oneDNN headers (the trunk runs ATen's ops).
#ifdef LORKD_DNNL
DEF("trunkOnednnPrimitives", return Napi::Number::New(ENV, double(lorkd::onednn::primitivesMade()));)
#else
DEF("trunkOnednnPrimitives", return Napi::Number::New(ENV, -1);)
#endif

// oneDnnAvailable() -> whether this libtorch has oneDNN (the trunk and the pre-packed convolutions need it).
DEF("oneDnnAvailable", return Napi::Boolean::New(ENV, at::hasMKLDNN());)
