// The direct convolution of direct-conv.h. Each call runs over work items (a panel of up to 64
// output channels x a run of output rows), split between ATen's threads; within an item, for each
// block of 16 input channels (its weights, kh x kw x 16 x 64 floats, stay in L1), every output row
// is covered by strips of up to 6 pixels whose window taps all fall inside the input (so no
// padded copy of the input is made: a pixel at the border gets a strip of its own, with fewer
// taps). A strip's 6 x 4 sums of 16 channels live in registers through the block: per input
// channel and tap, 4 weight loads and 6 broadcasts feed 24 FMAs. The first block starts from the
// bias, the others from the sums stored by the one before; the last adds the residual and clamps.
//
// Measured stand-alone on the 2-core Intel Xeon (AVX-512, one thread, peak 105 GMAC/s), ResNet-18's
// 3x3 layers at 224 px batch 1: 72-77 GMAC/s at 56x56 to 14x14 and 63-68 at 7x7, where oneDNN's
// blocked direct convolution ran 71-78 and 52 (onnxruntime's NCHWc kernel: 76-86 and 55).
#include "direct-conv.h"

#include "common.h"
#include "infer-kernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <vector>

namespace {
constexpr int64_t kBlock = 16;  // input channels per pass over a strip
constexpr int kVectors = 4;     // output vectors of 16 channels per panel
constexpr int64_t kPanel = 16 * kVectors;
constexpr int kPixels = 6;      // output pixels per strip

std::atomic<bool> gEnabled{true};
std::atomic<int64_t> gMaxMacs{int64_t(1) << 24};
std::atomic<int64_t> gRuns{0};  // convolutions run since the library was loaded
bool cpuHasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}

// Where a tile reads and writes: x at the strip's image and first window row (never read outside
// the rows [r0, r1) that fall in the input); out and res at its first pixel and the panel's first
// channel. A window column outside the input reads kZeros instead.
struct TileArgs {
  const float* x;
  int64_t rowStep;            // floats between window rows
  int64_t col0, colStep, tapStep, width, pixelFloats;  // input column of pixel 0's first tap, columns between pixels and taps, input width, floats per input pixel
  int r0, r1, kw, channels;   // the window rows inside the input, the window width, channels in this block
  const float* w;             // this panel's block: kh x kw x channels x NO*16
  const float* next;          // the block the item runs next, prefetched as this tile reads w (null: none)
  float* out;
  const float* res;
  const float* bias;
  int64_t outStep;  // floats between output pixels
  bool first, last, relu;
};
alignas(64) const float kZeros[kBlock] = {};

// The taps of tile<NP, NO>, summed into acc; PF: prefetch the next block's weights alongside.
template <int NP, int NO, bool PF>
__attribute__((target("avx512f"), optimize("O3"), always_inline)) inline void taps(const TileArgs& a, __m512 (&acc)[NP][NO]) {
  constexpr int64_t cols = NO * 16;
  // A strip whose every tap falls inside the input computes its sources without a test. Where a
  // block holds all input channels and the window's columns are adjacent (dilation 1), a window
  // row is one run of kw x Cin floats in memory and in the packed weight (a network's first
  // layer: 7 x 3 = 21 values per tap row instead of 7 taps of 3).
  const bool inside = a.col0 >= 0 && a.col0 + (NP - 1) * a.colStep + (a.kw - 1) * a.tapStep < a.width;
  const bool merge = inside && a.tapStep == 1 && a.channels == a.pixelFloats;
  const int taps = merge ? a.kw : 1, run = taps * a.channels;
  for (int r = a.r0; r < a.r1; r++) {
    const float* row = a.x + r * a.rowStep;
    for (int s = 0; s < a.kw; s += taps) {
      const float* src[NP];
      if (inside) {
        for (int p = 0; p < NP; p++) src[p] = row + (a.col0 + p * a.colStep + s * a.tapStep) * a.pixelFloats;
      } else {
        for (int p = 0; p < NP; p++) {
          const int64_t col = a.col0 + p * a.colStep + s * a.tapStep;
          src[p] = col >= 0 && col < a.width ? row + col * a.pixelFloats : kZeros;
        }
      }
      const float* wk = a.w + (r * a.kw + s) * a.channels * cols;
      for (int i = 0; i < run; i++, wk += cols) {
        __m512 wv[NO];
        for (int o = 0; o < NO; o++) wv[o] = _mm512_loadu_ps(wk + 16 * o);
        if constexpr (PF) {
          for (int o = 0; o < NO; o++) _mm_prefetch(reinterpret_cast<const char*>(a.next + (wk - a.w) + 16 * o), _MM_HINT_T0);
        }
        for (int p = 0; p < NP; p++) {
          const __m512 v = _mm512_set1_ps(src[p][i]);
          for (int o = 0; o < NO; o++) acc[p][o] = _mm512_fmadd_ps(v, wv[o], acc[p][o]);
        }
      }
    }
  }
}

template <int NP, int NO>
__attribute__((target("avx512f"), optimize("O3"))) void tile(const TileArgs& a) {
  constexpr int64_t cols = NO * 16;
  __m512 acc[NP][NO];
  if (a.first) {
    for (int o = 0; o < NO; o++) {
      const __m512 b = _mm512_loadu_ps(a.bias + 16 * o);
      for (int p = 0; p < NP; p++) acc[p][o] = b;
    }
  } else {
    for (int p = 0; p < NP; p++)
      for (int o = 0; o < NO; o++) acc[p][o] = _mm512_loadu_ps(a.out + p * a.outStep + 16 * o);
  }
  if (a.next) taps<NP, NO, true>(a, acc);
  else taps<NP, NO, false>(a, acc);
  if (a.last) {
    const __m512 zero = _mm512_setzero_ps();
    for (int p = 0; p < NP; p++)
      for (int o = 0; o < NO; o++) {
        __m512 v = acc[p][o];
        if (a.res) v = _mm512_add_ps(v, _mm512_loadu_ps(a.res + p * a.outStep + 16 * o));
        if (a.relu) v = _mm512_max_ps(v, zero);
        _mm512_storeu_ps(a.out + p * a.outStep + 16 * o, v);
      }
  } else {
    for (int p = 0; p < NP; p++)
      for (int o = 0; o < NO; o++) _mm512_storeu_ps(a.out + p * a.outStep + 16 * o, acc[p][o]);
  }
}

using Tile = void (*)(const TileArgs&);
template <int NO, int NP = 1>
Tile tileFor(int pixels) {
  if constexpr (NP >= kPixels) {
    return tile<kPixels, NO>;
  } else {
    return pixels == NP ? tile<NP, NO> : tileFor<NO, NP + 1>(pixels);
  }
}
Tile tileFor(int pixels, int vectors) {
  switch (vectors) {
    case 1: return tileFor<1>(pixels);
    case 2: return tileFor<2>(pixels);
    case 3: return tileFor<3>(pixels);
    default: return tileFor<4>(pixels);
  }
}

// The taps [t0, t1) of a window of k taps (dilation d) starting at input index `at` that fall in [0, size).
void insideTaps(int64_t at, int64_t k, int64_t d, int64_t size, int& t0, int& t1) {
  t0 = 0;
  while (t0 < k && at + t0 * d < 0) t0++;
  t1 = static_cast<int>(k);
  while (t1 > t0 && at + (t1 - 1) * d >= size) t1--;
}

// An output row cut into strips as even as kPixels allows: [first output column, pixels] each.
std::vector<std::pair<int64_t, int>> stripsOf(int64_t ow) {
  std::vector<std::pair<int64_t, int>> out;
  const int64_t pieces = (ow + kPixels - 1) / kPixels;
  for (int64_t q = 0, at = 0; q < pieces; q++) {
    const int64_t n = (ow - at + (pieces - q) - 1) / (pieces - q);
    out.emplace_back(at, static_cast<int>(n));
    at += n;
  }
  return out;
}
}  // namespace

namespace lorkd {
bool directConvEnabled() { return gEnabled.load() && cpuHasAvx512(); }
bool directConvFits(const at::Tensor& w, int64_t groups) {
  return cpuHasAvx512() && groups == 1 && w.dim() == 4 && w.scalar_type() == at::kFloat && w.size(0) % 16 == 0;
}
bool directConvPays(int64_t macs) { return directConvEnabled() && macs <= gMaxMacs.load(); }

std::unique_ptr<DirectConv> directConvPack(const at::Tensor& w, const at::Tensor& bias, at::IntArrayRef stride,
                                           at::IntArrayRef padding, at::IntArrayRef dilation) {
  if (w.dim() != 4 || !w.is_cpu() || w.scalar_type() != at::kFloat) throw std::invalid_argument("directConvPack: the weight must be a 4-d float32 CPU tensor");
  if (stride.size() != 2 || padding.size() != 2 || dilation.size() != 2) throw std::invalid_argument("directConvPack: stride, padding and dilation need 2 entries each");
  if (!directConvFits(w, 1)) return nullptr;
  auto c = std::make_unique<DirectConv>();
  c->cout = w.size(0), c->cin = w.size(1), c->kh = w.size(2), c->kw = w.size(3);
  c->sh = stride[0], c->sw = stride[1], c->ph = padding[0], c->pw = padding[1], c->dh = dilation[0], c->dw = dilation[1];
  if (bias.numel() != c->cout) throw std::invalid_argument("directConvPack: the bias needs one value per output channel");
  const at::Tensor src = w.detach().contiguous();
  const float* s = src.data_ptr<float>();
  c->packed = at::empty({src.numel()}, at::kFloat);
  float* d = c->packed.data_ptr<float>();
  for (int64_t o0 = 0; o0 < c->cout; o0 += kPanel) {
    const int64_t cols = std::min(kPanel, c->cout - o0);
    for (int64_t i0 = 0; i0 < c->cin; i0 += kBlock) {
      const int64_t n = std::min(kBlock, c->cin - i0);
      for (int64_t r = 0; r < c->kh; r++)
        for (int64_t q = 0; q < c->kw; q++)
          for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < cols; o++) *d++ = s[(((o0 + o) * c->cin + i0 + i) * c->kh + r) * c->kw + q];
    }
  }
  c->bias = bias.detach().to(at::kFloat).contiguous().clone();
  return c;
}

at::Tensor directConvRun(const DirectConv& c, const at::Tensor& x, const at::Tensor* residual, bool relu) {
  if (x.dim() != 4 || x.size(1) != c.cin || x.scalar_type() != at::kFloat || !x.is_cpu())
    throw std::invalid_argument("directConvRun: the input must be float32 (N, " + std::to_string(c.cin) + ", H, W)");
  if (!cpuHasAvx512()) throw std::invalid_argument("directConvRun: this CPU has no AVX-512");
  const at::Tensor xl = x.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  const int64_t oh = windowOutSize(h, c.kh, c.sh, c.ph, c.dh), ow = windowOutSize(w, c.kw, c.sw, c.pw, c.dw);
  if (oh < 1 || ow < 1) throw std::invalid_argument("directConvRun: the input is smaller than the kernel");
  at::Tensor out = at::empty({n, c.cout, oh, ow}, at::TensorOptions().dtype(at::kFloat).memory_format(at::MemoryFormat::ChannelsLast));
  at::Tensor res;
  if (residual) {
    if (!residual->sizes().equals(out.sizes()) || residual->scalar_type() != at::kFloat)
      throw std::invalid_argument("directConvRun: the residual must have the output's shape");
    res = residual->contiguous(at::MemoryFormat::ChannelsLast);
  }
  const auto strips = stripsOf(ow);
  gRuns++;
  const float* xs = xl.data_ptr<float>();
  const float* rs = res.defined() ? res.data_ptr<float>() : nullptr;
  float* os = out.data_ptr<float>();
  const float* packed = c.packed.data_ptr<float>();
  const float* bias = c.bias.data_ptr<float>();
  const int64_t rows = n * oh, panels = (c.cout + kPanel - 1) / kPanel, K = c.cin * c.kh * c.kw;
  // Work items: panel-major, each panel's rows in as few runs as give every thread two items. A
  // run reads its panel's weights once per block of input channels, so longer runs reuse them
  // more (one run per row read ResNet-18's layer4 weights from L2 for 7 pixels at a time).
  const int64_t threads = at::get_num_threads();
  const int64_t runs = std::max<int64_t>(1, std::min(rows, (2 * threads + panels - 1) / panels));
  at::parallel_for(0, panels * runs, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t item = i0; item < i1; item++) {
      const int64_t p = item / runs, q = item % runs;
      const int64_t rowBegin = rows * q / runs, rowEnd = rows * (q + 1) / runs;
      const int64_t o0 = p * kPanel, cols = std::min(kPanel, c.cout - o0);
      const int vectors = static_cast<int>(cols / 16);
      const float* wp = packed + o0 * K;
      TileArgs a{};
      a.rowStep = c.dh * w * c.cin, a.colStep = c.sw, a.tapStep = c.dw, a.width = w, a.pixelFloats = c.cin;
      a.kw = static_cast<int>(c.kw), a.bias = bias + o0, a.outStep = c.cout, a.relu = relu;
      // The run in chunks of rows whose sums stay in L2 (about 256 KB) while every block of input
      // channels passes over them.
      const int64_t chunk = std::max<int64_t>(1, (int64_t(256) << 10) / (ow * cols * int64_t(sizeof(float))));
      for (int64_t c0 = rowBegin; c0 < rowEnd; c0 += chunk) {
        const int64_t c1 = std::min(rowEnd, c0 + chunk);
        for (int64_t b0 = 0; b0 < c.cin; b0 += kBlock) {
          a.channels = static_cast<int>(std::min(kBlock, c.cin - b0));
          a.w = wp + b0 * c.kh * c.kw * cols;
          a.first = b0 == 0, a.last = b0 + kBlock >= c.cin;
          // The next block's weights are fetched while the first row reads this one's: a deep
          // layer reads each block for few pixels (ResNet-18's layer4 at 7x7: 49), where waiting
          // for 36 KB from L3 per block would cost as much as the arithmetic.
          a.next = !a.last ? a.w + a.channels * c.kh * c.kw * cols : c1 < rowEnd ? wp : item + 1 < i1 ? packed + (item + 1) / runs * kPanel * K : nullptr;
          for (int64_t row = c0; row < c1; row++) {
            const int64_t img = row / oh, ih = (row % oh) * c.sh - c.ph;
            insideTaps(ih, c.kh, c.dh, h, a.r0, a.r1);
            // The window's first row may lie in the padding; only rows [r0, r1) are read.
            a.x = xs + ((img * h + ih) * w) * c.cin + b0;
            for (const auto& [ow0, pixels] : strips) {
              a.col0 = ow0 * c.sw - c.pw;
              a.out = os + (row * ow + ow0) * c.cout + o0;
              a.res = rs ? rs + (row * ow + ow0) * c.cout + o0 : nullptr;
              tileFor(pixels, vectors)(a);
              a.next = nullptr;  // once per block
            }
          }
        }
      }
    }
  });
  return out;
}
}  // namespace lorkd

// directConvPrepare(w, b, stride, padding, dilation) -> packed | null (null: the loop does not
// apply to this weight or CPU); directConvApply(packed, x, residual | null, relu) -> relu?(conv(x)
// + b + residual?), channels_last. For tests and benchmarks of the loop alone: the ResNet trunk
// packs and runs its convolutions itself.
DEF("directConvPrepare", {
  auto c = lorkd::directConvPack(T(0), T(1), IV(2), IV(3), IV(4));
  if (!c) return ENV.Null();
  return Napi::External<lorkd::DirectConv>::New(ENV, c.release(), [](Napi::Env, lorkd::DirectConv* p) { delete p; });
})
DEF("directConvApply", {
  if (!info[0].IsExternal()) throw std::invalid_argument("directConvApply: not a prepared convolution");
  const auto& c = *info[0].As<Napi::External<lorkd::DirectConv>>().Data();
  at::NoGradGuard ng;
  const auto res = OT(2);
  R(lorkd::directConvRun(c, T(1), res ? &*res : nullptr, B(3)));
})

// directConvSwitch(on?, maxMacs?) -> [on, maxMacs] in force before the call (on is false on a
// CPU without AVX-512); sets them where given (tests and `bench infer` compare the direct loop
// with oneDNN's chain; a trunk prepared while it was off has no direct packing).
DEF("directConvSwitch", {
  auto out = Napi::Array::New(ENV, 2);
  out.Set(0u, Napi::Boolean::New(ENV, lorkd::directConvEnabled()));
  out.Set(1u, Napi::Number::New(ENV, double(gMaxMacs.load())));
  if (info.Length() > 0 && info[0].IsBoolean()) gEnabled = info[0].As<Napi::Boolean>().Value();
  if (info.Length() > 1 && info[1].IsNumber()) gMaxMacs = info[1].As<Napi::Number>().Int64Value();
  return out;
})

// directConvRuns() -> the convolutions run through the direct loop since the library was loaded.
DEF("directConvRuns", return Napi::Number::New(ENV, double(gRuns.load()));)
