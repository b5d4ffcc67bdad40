// The blocked stages of the ResNet trunk through oneDNN's API (onednn-chain.h).
#include "onednn-chain.h"
#ifdef LORKD_DNNL
#include "infer-kernels.h"

#include <atomic>
#include <stdexcept>

namespace lorkd::onednn {
namespace {
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

std::atomic<int64_t> gMade{0};

const dnnl::engine& engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}
// The activation layout asked of a convolution over `batch` images with `channels` channels:
// oneDNN's blocked one on this CPU (nChw16c on AVX-512, nChw8c on AVX2) where the channels fill
// whole blocks and the batch has more than one image; oneDNN's own choice (tag any) otherwise.
// Left to choose, oneDNN 2.6 takes its nhwc "brgconv" kernels on an AVX-512 CPU: faster on
// ResNet-18 at 224 px batch 1 (25.6-25.9 against 26.8-27.9 ms, one thread; 13.7 against 14.4 on
// two), slower at batch 8 (178 against 169 ms at 224 px; 26.6 against 18.6 at 64 px).
tag activationTag(int64_t batch, int64_t channels) {
  static const bool avx512 = dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx512_core;
  static const bool avx2 = dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx2;
  if (batch == 1) return tag::any;
  if (avx512 && channels % 16 == 0) return tag::nChw16c;
  if (avx2 && channels % 8 == 0) return tag::nChw8c;
  return tag::any;
}
at::Tensor bytes(size_t n) { return at::empty({static_cast<int64_t>(n)}, at::kByte); }
memory mem(const memory::desc& md, const at::Tensor& t) { return memory(md, engine(), const_cast<void*>(t.data_ptr())); }
memory::dims dimsOf(at::IntArrayRef v) { return memory::dims(v.begin(), v.end()); }
// Scratch memory for one run of a primitive made with scratchpad_mode::user (each call its own:
// a prepared model serves several threads at once).
memory scratch(const dnnl::primitive_desc_base& pd, at::Tensor& keep) {
  const memory::desc md = pd.scratchpad_desc();
  keep = bytes(std::max<size_t>(md.get_size(), 1));
  return mem(md, keep);
}
}  // namespace

Act wrapDense(const at::Tensor& x) {
  if (x.dim() != 4 || x.scalar_type() != at::kFloat) throw std::invalid_argument("onednn::wrapDense: expected a 4-d float32 tensor");
  const bool cl = x.is_contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor t = cl ? x : x.contiguous();
  return {t, memory::desc(dimsOf(x.sizes()), dt::f32, cl ? tag::nhwc : tag::nchw), true};
}

namespace {
// The reorder from `from` to nhwc, made once per layout and thread count (the trunk's output at
// batch 2 and above, once per forward).
dnnl::reorder toNhwc(const memory::desc& from, const memory::desc& to) {  // a handle: a copy shares the primitive
  struct Made {
    int threads;
    memory::desc from;
    dnnl::reorder r;
  };
  static std::mutex mu;
  static std::vector<Made> made;
  const int threads = at::get_num_threads();
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& m : made)
    if (m.threads == threads && m.from == from) return m.r;
  if (made.size() >= 64) made.erase(made.begin());  // a long-lived server's shapes: keep the last 64
  made.push_back({threads, from, dnnl::reorder(dnnl::reorder::primitive_desc(engine(), from, engine(), to))});
  return made.back().r;
}
}  // namespace

at::Tensor toDense(const Act& a) {
  if (a.dense) return a.t.contiguous(at::MemoryFormat::ChannelsLast);
  const memory::dims d = a.md.dims();
  at::Tensor out = at::empty({d[0], d[1], d[2], d[3]}, at::TensorOptions().dtype(at::kFloat).memory_format(at::MemoryFormat::ChannelsLast));
  const memory::desc md(d, dt::f32, tag::nhwc);
  memory src = mem(a.md, a.t), dst = mem(md, out);
  toNhwc(a.md, md).execute(stream(), src, dst);
  stream().wait();
  return out;
}

int64_t primitivesMade() { return gMade.load(); }

struct Conv::Made {
  int threads = 0;        // oneDNN splits the work between this many threads when the primitive is made
  memory::desc src, dst;  // the layout run with, and the output's
  memory::desc reads;     // the layout the primitive reads: src is reordered to it where they differ
  dnnl::reorder toReads;  // that reorder, made once (empty where src is read as is)
  bool sum = false;
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
  at::Tensor weights;  // w in pd's weights layout
};

Conv::Conv(const at::Tensor& w, const at::Tensor& bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
           int64_t groups, bool relu)
    : w_(w.detach().contiguous()), bias_(bias.detach().to(at::kFloat).contiguous()), groups_(groups), relu_(relu) {
  if (w_.dim() != 4 || w_.scalar_type() != at::kFloat || stride.size() != 2 || padding.size() != 2 || dilation.size() != 2)
    throw std::invalid_argument("onednn::Conv: a 4-d float32 weight and 2 entries of stride, padding and dilation");
  stride_ = dimsOf(stride);
  padL_ = padR_ = dimsOf(padding);
  dilation_ = {dilation[0] - 1, dilation[1] - 1};
}

const Conv::Made& Conv::made(const memory::desc& src, const memory::desc* into) const {
  std::lock_guard<std::mutex> lock(mu_);
  const int threads = at::get_num_threads();
  for (const auto& m : made_)
    if (m->threads == threads && m->src == src && m->sum == (into != nullptr) && (!into || m->dst == *into)) return *m;
  const memory::dims sd = src.dims();
  const int64_t cout = w_.size(0), kh = w_.size(2), kw = w_.size(3);
  auto out = [&](int i, int64_t k) { return windowOutSize(sd[2 + i], k, stride_[i], padL_[i], dilation_[i] + 1); };
  const memory::dims dd = {sd[0], cout, out(0, kh), out(1, kw)};
  memory::dims wd = {cout, w_.size(1), kh, kw};
  if (groups_ > 1) wd = {groups_, cout / groups_, w_.size(1), kh, kw};
  const memory::desc wAny(wd, dt::f32, tag::any), bMd({cout}, dt::f32, tag::x);
  const memory::desc dMd = into ? *into : memory::desc(dd, dt::f32, activationTag(sd[0], cout));
  const memory::desc sAny(sd, dt::f32, activationTag(sd[0], sd[1]));
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, sAny, wAny, bMd, dMd, stride_,
                                    dilation_, padL_, padR_);
  dnnl::post_ops po;
  if (into) po.append_sum(1.f);
  if (relu_) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(po);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto m = std::make_shared<Made>();
  m->pd = dnnl::convolution_forward::primitive_desc(d, attr, engine());
  m->prim = dnnl::convolution_forward(m->pd);
  gMade++;
  m->threads = threads, m->src = src, m->reads = m->pd.src_desc();
  if (!(m->reads == src)) m->toReads = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), src, engine(), m->reads));
  m->dst = m->pd.dst_desc(), m->sum = into != nullptr;
  // The weight in the layout the primitive reads, shared with an earlier primitive that reads the same.
  for (const auto& o : made_)
    if (o->pd.weights_desc() == m->pd.weights_desc()) m->weights = o->weights;
  if (!m->weights.defined()) {
    m->weights = bytes(m->pd.weights_desc().get_size());
    const memory::desc plain(wd, dt::f32, groups_ > 1 ? tag::goihw : tag::oihw);
    memory s = mem(plain, w_), t = mem(m->pd.weights_desc(), m->weights);
    dnnl::reorder(s, t).execute(stream(), s, t);
    stream().wait();
  }
  made_.push_back(m);
  return *m;
}

Act Conv::run(const Act& x, Act* into) const {
  const Made& m = made(x.md, into ? &into->md : nullptr);
  Act y;
  if (into) {
    y = *into;
  } else {
    y.md = m.dst;
    y.t = bytes(m.dst.get_size());
  }
  Act in = x;
  if (!(m.reads == x.md)) {
    in = {bytes(m.reads.get_size()), m.reads, false};
    memory s = mem(x.md, x.t), t = mem(in.md, in.t);
    m.toReads.execute(stream(), s, t);
  }
  at::Tensor keep;
  const memory sp = scratch(m.pd, keep);
  m.prim.execute(stream(), {{DNNL_ARG_SRC, mem(in.md, in.t)},
                            {DNNL_ARG_WEIGHTS, mem(m.pd.weights_desc(), m.weights)},
                            {DNNL_ARG_BIAS, mem(m.pd.bias_desc(), bias_)},
                            {DNNL_ARG_DST, mem(y.md, y.t)},
                            {DNNL_ARG_SCRATCHPAD, sp}});
  stream().wait();
  if (!y.dense && y.md == memory::desc(y.md.dims(), dt::f32, tag::nhwc)) {
    // oneDNN's nhwc kernels wrote a dense channels_last tensor: the dense stages read it as is.
    const memory::dims d = y.md.dims();
    y.t = y.t.view(at::kFloat).as_strided({d[0], d[1], d[2], d[3]}, {d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]});
    y.dense = true;
  }
  return y;
}

struct MaxPool::Made {
  int threads = 0;
  memory::desc src;
  dnnl::pooling_v2_forward::primitive_desc pd;
  dnnl::pooling_v2_forward prim;
};

MaxPool::MaxPool(at::IntArrayRef kernel, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil)
    : kernel_(kernel.vec()), stride_(stride.vec()), padding_(padding.vec()), dilation_(dilation.vec()), ceil_(ceil) {
  if (kernel_.size() != 2 || stride_.size() != 2 || padding_.size() != 2 || dilation_.size() != 2)
    throw std::invalid_argument("onednn::MaxPool: kernel, stride, padding and dilation need 2 entries each");
}

Act MaxPool::run(const Act& x) const {
  std::shared_ptr<Made> m;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int threads = at::get_num_threads();
    for (const auto& o : made_)
      if (o->threads == threads && o->src == x.md) m = o;
    if (!m) {
      const memory::dims sd = x.md.dims();
      memory::dims dd = {sd[0], sd[1], 0, 0}, padR(2);
      for (int i = 0; i < 2; i++) {
        const int64_t span = dilation_[i] * (kernel_[i] - 1) + 1, room = sd[2 + i] + 2 * padding_[i] - span;
        int64_t o = (ceil_ ? (room + stride_[i] - 1) / stride_[i] : room / stride_[i]) + 1;
        if (ceil_ && (o - 1) * stride_[i] >= sd[2 + i] + padding_[i]) o--;  // ATen: the last window starts inside
        dd[2 + i] = o;
        padR[i] = (o - 1) * stride_[i] + span - sd[2 + i] - padding_[i];
      }
      dnnl::pooling_v2_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, x.md, memory::desc(dd, dt::f32, tag::any),
                                       dimsOf(stride_), dimsOf(kernel_), {dilation_[0] - 1, dilation_[1] - 1}, dimsOf(padding_), padR);
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      m = std::make_shared<Made>();
      m->threads = threads, m->src = x.md;
      m->pd = dnnl::pooling_v2_forward::primitive_desc(d, attr, engine());
      m->prim = dnnl::pooling_v2_forward(m->pd);
      gMade++;
      made_.push_back(m);
    }
  }
  Act y{bytes(m->pd.dst_desc().get_size()), m->pd.dst_desc(), false};
  at::Tensor keep;
  const memory sp = scratch(m->pd, keep);
  m->prim.execute(stream(), {{DNNL_ARG_SRC, mem(x.md, x.t)}, {DNNL_ARG_DST, mem(y.md, y.t)}, {DNNL_ARG_SCRATCHPAD, sp}});
  stream().wait();
  return y;
}
}  // namespace lorkd::onednn
#endif
