// Hand-written CPU kernels of the inference path: a 1x1 convolution as one GEMM plus a bias and
// ReLU pass, direct depthwise convolution and max pooling, a decomposition's stem through each
// task's merged weight, the EKS low-rank paths row by row, and ShuffleNetV2's
// concatenate-and-shuffle as one copy. Each works on pixel rows (channels_last memory, or a channel slice of it, read in place
// with its row stride), makes its output channels_last, and returns an undefined tensor where it
// does not apply, so that the caller keeps the general path. The loops are compiled twice (AVX2
// with FMA, and the baseline) and the CPU picks at load time.
#include "infer-kernels.h"

#include "common.h"
#include "few-rows-conv.h"
#include "low-rank-pairs.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <limits>

#define LORKD_SIMD __attribute__((target_clones("avx2,fma", "default"), optimize("O3")))

namespace {
// From the oneDNN libtorch was loaded with (found once; null where there is none, as in a
// libtorch that links oneDNN statically and hides it).
lorkd::DnnlSgemm findDnnlSgemm() {
  static const lorkd::DnnlSgemm f = [] {
    for (const char* lib : {"libdnnl.so.3", "libdnnl.so.2"}) {
      void* h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD);
      if (!h) continue;
      auto* g = reinterpret_cast<lorkd::DnnlSgemm>(dlsym(h, "dnnl_sgemm"));
      dlclose(h);  // NOLOAD took a reference of a library that stays loaded
      if (g) return g;
    }
    return lorkd::DnnlSgemm(nullptr);
  }();
  return f;
}

// Above this many output values a layer runs oneDNN's convolution, which is faster there: these
// kernels win where set-up dominates (2-4x at batch 1 on 64 px ShuffleNetV2 layers) and lose
// by up to 2x at batch 32 (the depthwise loop keeps its sums in memory, the 1x1 path makes an
// extra pass for the bias and ReLU). Measured layer by layer on the 2-core machine.
constexpr int64_t kSmallOutput = 32768;
// A 1x1 convolution over at most this many pixel rows runs as one GEMM whatever its output count.
// ATen 1.13's pre-packed convolution keeps its weight in the layout oneDNN expects for NCHW input
// (ABcd16b16a); on channels_last input this CPU's brgconv kernel wants another (Acdb48a) and
// reorders the weight on every call: 0.26 ms for ShuffleNetV2's conv5 (464 x 1024) at batch 1,
// more than its arithmetic. Measured on the Intel Xeon (whole forwards, 1 and 2 threads):
// 8-10% faster at 224 px batch 1, level at batch 8, 64 px batch 32 5-15% faster; above 4 Ki rows
// (224 px batch 8 and up) the reorder is shared by enough rows, and oneDNN stays.
constexpr int64_t kFewRows = 4096;
// Up to this many pixel rows a 1x1 convolution's GEMM reads the weight as (Cin, Cout) where the
// caller keeps that copy: dnnl_sgemm's NN case beat its NT case on every ShuffleNetV2 shape at
// 4-256 rows (4 x 232 x 232: 3.9 against 6.1 us; 32 x 232 x 232: 22 against 28 us) and lost by
// 5-11% from 392 rows on. Whole forwards, one thread: 2-8% faster at 64 px batch 1 and 8.
constexpr int64_t kPlainWeightRows = 256;

bool denseFloat(const at::Tensor& t) {
  return t.is_cpu() && t.scalar_type() == at::kFloat && !t.requires_grad() && t.is_contiguous();
}

at::Tensor emptyRows(const lorkd::PixelRows& like, int64_t c, int64_t h, int64_t w) {
  return at::empty({like.n, c, h, w}, at::TensorOptions().dtype(at::kFloat).memory_format(at::MemoryFormat::ChannelsLast));
}


LORKD_SIMD void biasRelu(float* __restrict__ o, const float* __restrict__ b, int64_t rows, int64_t cols, bool relu) {
  for (int64_t i = 0; i < rows; i++, o += cols) {
    if (b)
      for (int64_t j = 0; j < cols; j++) o[j] += b[j];
    if (relu)
      for (int64_t j = 0; j < cols; j++) o[j] = o[j] > 0.f ? o[j] : 0.f;
  }
}

// A window op's geometry over pixel rows: input size, row stride, window, stride, padding.
struct Window {
  int64_t H, W, ld, kh, kw, sh, sw, ph, pw;
};

// f(input pixel, tap index ky * kw + kx) for each tap of output (oy, ox) inside the input.
template <class F>
__attribute__((always_inline)) inline void eachTap(const float* x, const Window& g, int64_t oy, int64_t ox, F&& f) {
  for (int64_t ky = 0; ky < g.kh; ky++) {
    const int64_t iy = oy * g.sh - g.ph + ky;
    if (iy < 0 || iy >= g.H) continue;
    for (int64_t kx = 0; kx < g.kw; kx++) {
      const int64_t ix = ox * g.sw - g.pw + kx;
      if (ix < 0 || ix >= g.W) continue;
      f(x + (iy * g.W + ix) * g.ld, ky * g.kw + kx);
    }
  }
}

// One output row (oy) of a depthwise convolution: wt is (kh, kw, C), the weights per tap.
LORKD_SIMD void depthwiseRow(const float* __restrict__ x, const float* __restrict__ wt, const float* __restrict__ b,
                             float* __restrict__ o, int64_t C, const Window& g, int64_t oy, int64_t wo, bool relu) {
  for (int64_t ox = 0; ox < wo; ox++, o += C) {
    for (int64_t c = 0; c < C; c++) o[c] = b ? b[c] : 0.f;
    eachTap(x, g, oy, ox, [&](const float* __restrict__ xp, int64_t tap) {
      const float* __restrict__ wp = wt + tap * C;
      for (int64_t c = 0; c < C; c++) o[c] += xp[c] * wp[c];
    });
    if (relu)
      for (int64_t c = 0; c < C; c++) o[c] = o[c] > 0.f ? o[c] : 0.f;
  }
}

// One output row of a max pooling (NaN wins, as in ATen).
LORKD_SIMD void maxRow(const float* __restrict__ x, float* __restrict__ o, int64_t C, const Window& g, int64_t oy, int64_t wo) {
  for (int64_t ox = 0; ox < wo; ox++, o += C) {
    for (int64_t c = 0; c < C; c++) o[c] = -std::numeric_limits<float>::infinity();
    eachTap(x, g, oy, ox, [&](const float* __restrict__ xp, int64_t) {
      for (int64_t c = 0; c < C; c++) {
        const float v = xp[c];
        o[c] = (v > o[c] || v != v) ? v : o[c];
      }
    });
  }
}

// A dense convolution with few taps per output (a network's first layer: 3 channels, 3x3) and up to
// 64 output channels, kept in NB eight-float registers per output pixel: each tap's input value is
// broadcast and multiplied into every register. `taps` holds the weight per tap and input channel,
// (kh, kw, Cin, Cout); a task's own (merged) weight for a decomposition's stem.
typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));

// PX output pixels side by side whose every tap is inside the input horizontally (rows ky0..ky1
// of the window inside vertically): PX x NB sums in registers, so that the multiply-adds of
// different pixels overlap (one pixel's NB chains wait on the FMA latency).
template <int NB, int PX>
__attribute__((target("avx2,fma"), always_inline)) inline void stemPixels(const float* x, const float* taps, const float* b, float* o,
                                                                         int64_t Cin, const Window& g, int64_t oy, int64_t ox0,
                                                                         int64_t ky0, int64_t ky1, bool relu) {
  constexpr int64_t Cout = NB * 8;
  v8 acc[PX][NB];
#pragma GCC unroll 8
  for (int p = 0; p < PX; p++)
#pragma GCC unroll 8
    for (int k = 0; k < NB; k++) acc[p][k] = b ? *reinterpret_cast<const v8u*>(b + 8 * k) : v8{};
  const int64_t step = g.sw * g.ld;
  for (int64_t ky = ky0; ky < ky1; ky++) {
    const float* xr = x + ((oy * g.sh - g.ph + ky) * g.W + ox0 * g.sw - g.pw) * g.ld;
    for (int64_t kx = 0; kx < g.kw; kx++) {
      const float* w = taps + (ky * g.kw + kx) * Cin * Cout;
      const float* xp = xr + kx * g.ld;
      for (int64_t ci = 0; ci < Cin; ci++, w += Cout) {
        v8 wv[NB];
#pragma GCC unroll 8
        for (int k = 0; k < NB; k++) wv[k] = *reinterpret_cast<const v8u*>(w + 8 * k);
#pragma GCC unroll 8
        for (int p = 0; p < PX; p++) {
          const v8 v = v8{} + xp[p * step + ci];
#pragma GCC unroll 8
          for (int k = 0; k < NB; k++) acc[p][k] += v * wv[k];
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < PX; p++)
#pragma GCC unroll 8
    for (int k = 0; k < NB; k++) {
      v8 r = acc[p][k];
      if (relu) r = r > v8{} ? r : v8{};
      *reinterpret_cast<v8u*>(o + p * Cout + 8 * k) = r;
    }
}

template <int NB>
__attribute__((target("avx2,fma"), optimize("O3"))) void stemRow(const float* x, const float* taps, const float* b, float* o, int64_t Cin,
                                                                 const Window& g, int64_t oy, int64_t wo, bool relu) {
  constexpr int64_t Cout = NB * 8;
  // Pixels per register block: PX x NB sums, NB weights and a broadcast within 16 registers.
  constexpr int PX = NB >= 7 ? 1 : (12 / NB > 6 ? 6 : 12 / NB);
  // The window rows inside the input for this output row, and the outputs whose columns all are.
  const int64_t top = oy * g.sh - g.ph;
  const int64_t ky0 = std::max<int64_t>(0, -top), ky1 = std::min<int64_t>(g.kh, g.H - top);
  const int64_t lo = (g.pw + g.sw - 1) / g.sw;
  const int64_t hi = g.W + g.pw - g.kw >= 0 ? std::min<int64_t>(wo, (g.W + g.pw - g.kw) / g.sw + 1) : 0;
  for (int64_t ox = 0; ox < wo;) {
    if (ox >= lo && ox + PX <= hi) {
      stemPixels<NB, PX>(x, taps, b, o + ox * Cout, Cin, g, oy, ox, ky0, ky1, relu);
      ox += PX;
      continue;
    }
    if (ox >= lo && ox < hi) {
      stemPixels<NB, 1>(x, taps, b, o + ox * Cout, Cin, g, oy, ox, ky0, ky1, relu);
      ox++;
      continue;
    }
    // An edge pixel: the taps inside the input only.
    v8 acc[NB];
#pragma GCC unroll 8
    for (int k = 0; k < NB; k++) acc[k] = b ? *reinterpret_cast<const v8u*>(b + 8 * k) : v8{};
    eachTap(x, g, oy, ox, [&](const float* xp, int64_t tap) {
      const float* w = taps + tap * Cin * Cout;
      for (int64_t ci = 0; ci < Cin; ci++, w += Cout) {
        const v8 v = v8{} + xp[ci];
#pragma GCC unroll 8
        for (int k = 0; k < NB; k++) acc[k] += v * *reinterpret_cast<const v8u*>(w + 8 * k);
      }
    });
#pragma GCC unroll 8
    for (int k = 0; k < NB; k++) {
      v8 r = acc[k];
      if (relu) r = r > v8{} ? r : v8{};
      *reinterpret_cast<v8u*>(o + ox * Cout + 8 * k) = r;
    }
    ox++;
  }
}

using StemRow = void (*)(const float*, const float*, const float*, float*, int64_t, const Window&, int64_t, int64_t, bool);
StemRow stemRowFor(int64_t cout) {
  switch (cout) {
    case 8: return stemRow<1>;
    case 16: return stemRow<2>;
    case 24: return stemRow<3>;
    case 32: return stemRow<4>;
    case 40: return stemRow<5>;
    case 48: return stemRow<6>;
    case 56: return stemRow<7>;
    case 64: return stemRow<8>;
    default: return nullptr;
  }
}

// One pixel row's low-rank path of its task: z = x A^T (At: A as (Cin, r)), then
// o += s z B^T (Bt: B as (r, Cout)), then the ReLU if asked. z: r floats of scratch.
LORKD_SIMD void lowRankRow(const float* __restrict__ x, const float* __restrict__ At, const float* __restrict__ Bt,
                           const float* __restrict__ bias, float* __restrict__ o, float* __restrict__ z, int64_t cin, int64_t r,
                           int64_t cout, float s, bool relu) {
  for (int64_t j = 0; j < r; j++) z[j] = 0.f;
  for (int64_t k = 0; k < cin; k++) {
    const float v = x[k];
    const float* __restrict__ a = At + k * r;
    for (int64_t j = 0; j < r; j++) z[j] += v * a[j];
  }
  if (bias)
    for (int64_t c = 0; c < cout; c++) o[c] += bias[c];
  for (int64_t j = 0; j < r; j++) {
    const float zj = s * z[j];
    const float* __restrict__ b = Bt + j * cout;
    for (int64_t c = 0; c < cout; c++) o[c] += zj * b[c];
  }
  if (relu)
    for (int64_t c = 0; c < cout; c++) o[c] = o[c] > 0.f ? o[c] : 0.f;
}

// The same at r = 8 on AVX2: z in four registers over the input channels, four at a time (one
// register would wait on its own latency at every channel), then the output, each value read and
// written once for all eight terms and the ReLU.
__attribute__((target("avx2,fma"))) void lowRankRow8(const float* x, const float* At, const float* Bt, const float* bias, float* o,
                                                     int64_t cin, int64_t cout, float s, bool relu) {
  auto at8 = [&](int64_t k) { return *reinterpret_cast<const v8u*>(At + k * 8); };
  v8 z0{}, z1{}, z2{}, z3{};
  int64_t k = 0;
  for (; k + 4 <= cin; k += 4) {
    z0 += x[k] * at8(k);
    z1 += x[k + 1] * at8(k + 1);
    z2 += x[k + 2] * at8(k + 2);
    z3 += x[k + 3] * at8(k + 3);
  }
  for (; k < cin; k++) z0 += x[k] * at8(k);
  const v8 zv = (z0 + z1 + z2 + z3) * s;
  // z broadcast, one register per term; the output 32 channels at a time in four independent sums
  // (one sum's eight dependent FMAs would wait on each other's latency).
  v8 zb[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; j++) zb[j] = v8{} + zv[j];
  auto bt8 = [&](int j, int64_t c) { return *reinterpret_cast<const v8u*>(Bt + j * cout + c); };
  // The output as it stands, plus the bias where one is given.
  auto in8 = [&](int64_t c) {
    v8 v = *reinterpret_cast<const v8u*>(o + c);
    if (bias) v += *reinterpret_cast<const v8u*>(bias + c);
    return v;
  };
  auto store = [&](int64_t c, v8 acc) {
    if (relu) acc = acc > v8{} ? acc : v8{};
    *reinterpret_cast<v8u*>(o + c) = acc;
  };
  int64_t c = 0;
  for (; c + 32 <= cout; c += 32) {
    v8 a0 = in8(c), a1 = in8(c + 8), a2 = in8(c + 16), a3 = in8(c + 24);
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
      a0 += zb[j] * bt8(j, c);
      a1 += zb[j] * bt8(j, c + 8);
      a2 += zb[j] * bt8(j, c + 16);
      a3 += zb[j] * bt8(j, c + 24);
    }
    store(c, a0);
    store(c + 8, a1);
    store(c + 16, a2);
    store(c + 24, a3);
  }
  for (; c + 8 <= cout; c += 8) {
    v8 acc = in8(c);
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) acc += zb[j] * bt8(j, c);
    store(c, acc);
  }
  for (; c < cout; c++) {
    float v = o[c] + (bias ? bias[c] : 0.f);
    for (int j = 0; j < 8; j++) v += zv[j] * Bt[j * cout + c];
    o[c] = relu && v < 0.f ? 0.f : v;
  }
}

LORKD_SIMD void interleave(const float* __restrict__ a, int64_t lda, const float* __restrict__ b, int64_t ldb,
                           float* __restrict__ o, int64_t rows, int64_t C) {
  for (int64_t i = 0; i < rows; i++, a += lda, b += ldb, o += 2 * C)
    for (int64_t c = 0; c < C; c++) {
      o[2 * c] = a[c];
      o[2 * c + 1] = b[c];
    }
}
// Output size of a window op, or 0 where the window does not fit.

bool validWindow(at::IntArrayRef stride, at::IntArrayRef padding) {
  return stride.size() == 2 && padding.size() == 2 && stride[0] >= 1 && stride[1] >= 1 && padding[0] >= 0 && padding[1] >= 0;
}

}  // namespace

namespace lorkd {
bool pixelRows(const at::Tensor& x, PixelRows& r) { return x.defined() && !x.requires_grad() && pixelLayout(x, r); }

bool pixelLayout(const at::Tensor& x, PixelRows& r) {
  if (!x.defined() || !x.is_cpu() || x.scalar_type() != at::kFloat || x.dim() != 4) return false;
  const auto s = x.strides();
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  if (n == 0 || c == 0 || h == 0 || w == 0) return false;
  // The row stride, from the first dimension of size > 1 below C (any stride fits a size-1 dim).
  const int64_t ld = w > 1 ? s[3] : h > 1 ? s[2] / w : n > 1 ? s[0] / (h * w) : c;
  if (ld < c || (c > 1 && s[1] != 1) || (w > 1 && s[3] != ld) || (h > 1 && s[2] != w * ld) || (n > 1 && s[0] != h * w * ld)) return false;
  r = {x.data_ptr<float>(), n, c, h, w, ld};
  return true;
}

bool pointwiseAvailable() { return findDnnlSgemm() != nullptr; }

at::Tensor pointwiseTransposed(const at::Tensor& w) { return w.reshape({w.size(0), -1}).t().contiguous(); }

at::Tensor pointwiseConv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, bool relu, const at::Tensor& wt) {
  const DnnlSgemm sgemm = findDnnlSgemm();
  PixelRows r;
  if (!sgemm || !pixelRows(x, r) || !denseFloat(w) || w.dim() != 4 || w.size(1) != r.c || w.size(2) != 1 || w.size(3) != 1) return {};
  if (bias.defined() && (!denseFloat(bias) || bias.numel() != w.size(0))) return {};
  const int64_t cout = w.size(0), m = r.rows();
  if (m * cout > kSmallOutput && m > kFewRows) return {};
  at::Tensor out = emptyRows(r, cout, r.h, r.w);
  float* o = out.data_ptr<float>();
  const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
  // One GEMM on the dense weight, then the bias and ReLU in one parallel pass.
  const bool plain = m <= kPlainWeightRows && wt.defined() && denseFloat(wt) && wt.dim() == 2 && wt.size(0) == r.c && wt.size(1) == cout;
  if (plain ? sgemm('N', 'N', m, cout, r.c, 1.f, r.data, r.ld, wt.data_ptr<float>(), cout, 0.f, o, cout) != 0
            : sgemm('N', 'T', m, cout, r.c, 1.f, r.data, r.ld, w.data_ptr<float>(), r.c, 0.f, o, cout) != 0)
    return {};
  addBiasRelu(o, b, m, cout, relu);
  return out;
}

at::Tensor depthwiseTaps(const at::Tensor& w) { return w.reshape({w.size(0), w.size(2) * w.size(3)}).t().contiguous(); }

at::Tensor depthwiseConv(const at::Tensor& x, const at::Tensor& taps, int64_t kh, int64_t kw, const at::Tensor& bias,
                         at::IntArrayRef stride, at::IntArrayRef padding, bool relu) {
  PixelRows r;
  if (!pixelRows(x, r) || !denseFloat(taps) || taps.dim() != 2 || taps.size(0) != kh * kw || taps.size(1) != r.c || !validWindow(stride, padding)) return {};
  if (bias.defined() && (!denseFloat(bias) || bias.numel() != r.c)) return {};
  const int64_t C = r.c, ho = windowOutSize(r.h, kh, stride[0], padding[0]), wo = windowOutSize(r.w, kw, stride[1], padding[1]);
  if (ho < 1 || wo < 1 || r.n * ho * wo * C > kSmallOutput) return {};
  at::Tensor out = emptyRows(r, C, ho, wo);
  const float *wp = taps.data_ptr<float>(), *b = bias.defined() ? bias.data_ptr<float>() : nullptr;
  float* o = out.data_ptr<float>();
  const Window g{r.h, r.w, r.ld, kh, kw, stride[0], stride[1], padding[0], padding[1]};
  at::parallel_for(0, r.n * ho, grainRows(wo * C * kh * kw / 4), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) depthwiseRow(r.data + i / ho * r.h * r.w * r.ld, wp, b, o + i * wo * C, C, g, i % ho, wo, relu);
  });
  return out;
}

at::Tensor maxPool(const at::Tensor& x, int64_t kh, int64_t kw, at::IntArrayRef stride, at::IntArrayRef padding) {
  PixelRows r;
  if (!pixelRows(x, r) || kh < 1 || kw < 1 || !validWindow(stride, padding) || 2 * padding[0] > kh || 2 * padding[1] > kw) return {};
  const int64_t ho = windowOutSize(r.h, kh, stride[0], padding[0]), wo = windowOutSize(r.w, kw, stride[1], padding[1]);
  if (ho < 1 || wo < 1) return {};
  at::Tensor out = emptyRows(r, r.c, ho, wo);
  float* o = out.data_ptr<float>();
  const Window g{r.h, r.w, r.ld, kh, kw, stride[0], stride[1], padding[0], padding[1]};
  at::parallel_for(0, r.n * ho, grainRows(wo * r.c * kh * kw / 4), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) maxRow(r.data + i / ho * r.h * r.w * r.ld, o + i * wo * r.c, r.c, g, i % ho, wo);
  });
  return out;
}

bool hasAvx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}

at::Tensor stemTaps(const at::Tensor& w0, const at::Tensor& A, const at::Tensor& B, double s) {
  at::Tensor w = w0.contiguous().unsqueeze(0);
  if (A.defined()) {
    std::vector<int64_t> shape{A.size(0)};
    for (auto d : w0.sizes()) shape.push_back(d);
    w = at::bmm(B, A).view(shape).mul_(s).add_(w);  // W0' + s reshape(B_t' A_t), as eks.cc's merged weights
  }
  return w.permute({0, 3, 4, 2, 1}).contiguous().view({w.size(0), -1, w0.size(0)});
}

at::Tensor stemConv(const at::Tensor& x, const at::Tensor& taps, int64_t kh, int64_t kw, const at::Tensor& bias,
                    at::IntArrayRef stride, at::IntArrayRef padding, bool relu, const std::vector<int64_t>& counts) {
  PixelRows r;
  if (!hasAvx2() || !pixelRows(x, r) || !denseFloat(taps) || taps.dim() != 3 || taps.size(1) != kh * kw * r.c || !validWindow(stride, padding)) return {};
  const int64_t T = taps.size(0), cout = taps.size(2);
  const StemRow row = stemRowFor(cout);
  if (!row || (bias.defined() && (!denseFloat(bias) || bias.numel() != cout))) return {};
  std::vector<int64_t> first(T + 1, 0);  // the first image of each task
  if (counts.empty() && T == 1) first[1] = r.n;
  else if (static_cast<int64_t>(counts.size()) == T)
    for (int64_t t = 0; t < T; t++) first[t + 1] = first[t] + counts[t];
  if (first[T] != r.n) return {};
  const int64_t ho = windowOutSize(r.h, kh, stride[0], padding[0]), wo = windowOutSize(r.w, kw, stride[1], padding[1]);
  if (ho < 1 || wo < 1) return {};
  at::Tensor out = emptyRows(r, cout, ho, wo);
  const float *tp = taps.data_ptr<float>(), *b = bias.defined() ? bias.data_ptr<float>() : nullptr;
  float* o = out.data_ptr<float>();
  const Window g{r.h, r.w, r.ld, kh, kw, stride[0], stride[1], padding[0], padding[1]};
  const int64_t perTask = taps.size(1) * cout;
  at::parallel_for(0, r.n * ho, grainRows(wo * cout * kh * kw * r.c / 4), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const int64_t n = i / ho;
      const int64_t t = std::upper_bound(first.begin(), first.end(), n) - first.begin() - 1;
      row(r.data + n * r.h * r.w * r.ld, tp + t * perTask, b, o + i * wo * cout, r.c, g, i % ho, wo, relu);
    }
  });
  return out;
}

RowFactors lowRankRowFactors(const at::Tensor& A, const at::Tensor& B) {
  return {A.transpose(1, 2).contiguous(), B.transpose(1, 2).contiguous(), lowRankPairs(A)};
}

const float* pairsOf(const at::Tensor& Ap, const at::Tensor& At) {
  const int64_t rank = At.dim() == 3 ? At.size(2) : 0, g = pairRank(rank) ? 16 / rank : 1;
  return pairRank(rank) && Ap.defined() && denseFloat(Ap) && Ap.dim() == 4 && Ap.size(0) == At.size(0) && Ap.size(1) == (At.size(1) + g - 1) / g &&
                 Ap.size(2) == rank && Ap.size(3) == g
             ? Ap.data_ptr<float>()
             : nullptr;
}

bool addLowRankRows(const at::Tensor& x, at::Tensor& out, const at::Tensor& At, const at::Tensor& Bt, const at::Tensor& Ap,
                    const at::Tensor& bias, const std::vector<int64_t>& counts, double s, bool relu) {
  PixelRows r;
  // out is channels_last: dense as pixel rows, not in NCHW order (denseFloat asks for the latter).
  if (!pixelRows(x, r) || !out.is_contiguous(at::MemoryFormat::ChannelsLast) || !out.is_cpu() || out.scalar_type() != at::kFloat ||
      out.requires_grad() || !denseFloat(At) || !denseFloat(Bt))
    return false;
  const int64_t T = At.size(0), rank = At.size(2), cout = out.size(1), hw = r.h * r.w;
  if (At.dim() != 3 || Bt.dim() != 3 || At.size(1) != r.c || Bt.size(0) != T || Bt.size(1) != rank || Bt.size(2) != cout ||
      static_cast<int64_t>(counts.size()) != T || out.size(0) != r.n || out.size(2) != r.h || out.size(3) != r.w)
    return false;
  if (bias.defined() && (!denseFloat(bias) || bias.numel() != cout)) return false;
  // The first pixel row of each task, and one past the last (rows are grouped by task).
  std::vector<int64_t> first(T + 1, 0);
  for (int64_t t = 0; t < T; t++) first[t + 1] = first[t] + counts[t] * hw;
  if (first[T] != r.rows()) return false;
  lowRankRange(r, out.data_ptr<float>(), cout, At.data_ptr<float>(), Bt.data_ptr<float>(), pairsOf(Ap, At),
               bias.defined() ? bias.data_ptr<float>() : nullptr, rank, first, 0, r.rows(), static_cast<float>(s), relu);
  return true;
}

void lowRankRange(const PixelRows& r, float* op, int64_t cout, const float* ap, const float* bp, const float* pairs, const float* bias,
                  int64_t rank, const std::vector<int64_t>& first, int64_t from, int64_t to, float sf, bool relu) {
  const float* xp = r.data;
  const bool eight = rank == 8 && hasAvx2();
  const bool paired = pairRank(rank) && pairs && pairRowsAvailable();
  const int64_t group = paired ? 16 / rank : 1, pairBlock = (r.c + group - 1) / group * 16;
  at::parallel_for(from, to, grainRows(rank * (r.c + cout)), [&](int64_t i0, int64_t i1) {
    int64_t t = std::upper_bound(first.begin(), first.end(), i0) - first.begin() - 1;
    if (paired) {  // each task's run of rows in one call
      for (int64_t i = i0; i < i1; t++) {
        const int64_t end = std::min(i1, first[t + 1]);
        if (end > i)
          lowRankPairRows(xp + i * r.ld, r.ld, end - i, r.c, rank, pairs + t * pairBlock, bp + t * rank * cout, bias, op + i * cout, cout,
                          sf, relu);
        i = std::max(i, end);
      }
      return;
    }
    std::vector<float> z(rank);
    for (int64_t i = i0; i < i1; i++) {
      while (i >= first[t + 1]) t++;
      if (eight)
        lowRankRow8(xp + i * r.ld, ap + t * r.c * rank, bp + t * rank * cout, bias, op + i * cout, r.c, cout, sf, relu);
      else
        lowRankRow(xp + i * r.ld, ap + t * r.c * rank, bp + t * rank * cout, bias, op + i * cout, z.data(), r.c, rank, cout, sf, relu);
    }
  });
}

DnnlSgemm dnnlSgemm() { return findDnnlSgemm(); }

void addBiasRelu(float* o, const float* b, int64_t rows, int64_t cols, bool relu) {
  if (!b && !relu) return;
  at::parallel_for(0, rows, grainRows(cols), [&](int64_t i0, int64_t i1) { biasRelu(o + i0 * cols, b, i1 - i0, cols, relu); });
}

at::Tensor catShuffle(const at::Tensor& a, const at::Tensor& b) {
  PixelRows ra, rb;
  if (!pixelRows(a, ra) || !pixelRows(b, rb) || a.sizes() != b.sizes()) return {};
  return interleaveRows(ra, rb);
}

at::Tensor interleaveRows(const PixelRows& ra, const PixelRows& rb) {
  at::Tensor out = emptyRows(ra, 2 * ra.c, ra.h, ra.w);
  float* o = out.data_ptr<float>();
  const int64_t C = ra.c;
  at::parallel_for(0, ra.rows(), grainRows(2 * C), [&](int64_t i0, int64_t i1) {
    interleave(ra.data + i0 * ra.ld, ra.ld, rb.data + i0 * rb.ld, rb.ld, o + i0 * 2 * C, i1 - i0, C);
  });
  return out;
}
}  // namespace lorkd

// pointwiseTransposed(w) -> the 1x1 weight as (Cin, Cout), pointwiseConvInfer's wt.
DEF("pointwiseTransposed", R(pointwiseTransposed(T(0)));)
// pointwiseConvInfer(x, w, bias|null, relu, wt|null) -> out | null (null: not this kernel's case, or few
// pixel rows over a large weight, which the caller's convInfer runs through the few-rows pass:
// ShuffleNetV2's conv5 at 64 px batch 1, 106 against 118 us on one thread).
DEF("pointwiseConvInfer", {
  auto b = OT(2);
  const at::Tensor& x = T(0);
  const at::Tensor& w = T(1);
  if (x.dim() == 4 && w.dim() == 4 && lorkd::fewRowsPays(x.size(0) * x.size(2) * x.size(3), w.size(1), w.size(0))) return ENV.Null();
  auto wt = OT(4);
  auto out = pointwiseConv(x, w, b ? *b : at::Tensor(), B(3), wt ? *wt : at::Tensor());
  if (!out.defined()) return ENV.Null();
  R(out);
})
// depthwiseTaps(w) -> the depthwise weight tap-major, as depthwiseConvInfer takes it.
DEF("depthwiseTaps", R(depthwiseTaps(T(0)));)
// depthwiseConvInfer(x, taps, kh, kw, bias|null, stride, padding, relu) -> out | null.
DEF("depthwiseConvInfer", {
  auto b = OT(4);
  auto out = depthwiseConv(T(0), T(1), I(2), I(3), b ? *b : at::Tensor(), IV(5), IV(6), B(7));
  if (!out.defined()) return ENV.Null();
  R(out);
})
// catShuffle(a, b) -> channel_shuffle(cat([a, b], 1), 2), or null where the kernel does not apply.
DEF("catShuffle", {
  auto out = catShuffle(T(0), T(1));
  if (!out.defined()) return ENV.Null();
  R(out);
})
// stemTaps(w0, A|null, B|null, scale) -> the stem weight per tap (T, kh*kw*Cin, Cout): W0 alone
// (T = 1), or each task's merged weight W0 + scale reshape(B_t A_t).
DEF("stemTaps", {
  auto A = OT(1), B = OT(2);
  R(stemTaps(T(0), A ? *A : at::Tensor(), B ? *B : at::Tensor(), D(3)));
})
// stemConvInfer(x, taps, kh, kw, bias|null, stride, padding, relu, counts|null) -> out | null
// (counts: images per task, where taps holds one weight per task).
DEF("stemConvInfer", {
  auto b = OT(4);
  std::vector<int64_t> counts;
  if (info.Length() > 8 && info[8].IsArray()) counts = IV(8);
  auto out = stemConv(T(0), T(1), I(2), I(3), b ? *b : at::Tensor(), IV(5), IV(6), B(7), counts);
  if (!out.defined()) return ENV.Null();
  R(out);
})
// maxPoolInfer(x, kh, kw, stride, padding) -> out | null (dilation 1, floor mode).
DEF("maxPoolInfer", {
  auto out = maxPool(T(0), I(1), I(2), IV(3), IV(4));
  if (!out.defined()) return ENV.Null();
  R(out);
})
DEF("pointwiseConvAvailable", return Napi::Boolean::New(ENV, pointwiseAvailable());)
