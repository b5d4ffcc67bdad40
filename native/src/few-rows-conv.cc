// A dense convolution over few output pixels as one pass over its packed weight: the input's
// patches are gathered into rows (im2col, a few KB at batch 1), and each thread takes whole column
// panels of the weight, K rows of 32 output channels, front to back, keeping every output row's
// 32 sums in registers. Each weight is read once per call, in order, with a software prefetch
// ahead of the loads; the arithmetic (rows x K x 32 multiply-adds per panel) hides under the reads.
//
// Measured with a stand-alone copy of the loop on the 2-core Intel Xeon (AVX-512), 4 rows,
// K = 4608, Cout = 512 (ResNet-18's layer4 3x3 at 64 px, batch 1), cycling five 9.4 MB weights:
// 0.43-0.54 ms on one thread (17-22 GB/s), 0.38-0.45 ms on two, where oneDNN's direct convolution
// of that layer took 0.7-1.1 ms.
#include "few-rows-conv.h"

#include "common.h"
#include "infer-kernels.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>

namespace {
using lorkd::kFewRowsPanel;
constexpr int64_t P = kFewRowsPanel;
// How far ahead of the loads each panel row is prefetched, in floats: 32 panel rows (4 KB).
constexpr int64_t kAhead = 32 * P;

// acc[m][0..P) = sum_k A[m][k] * panel[k][0..P) for MR rows of A (lda floats apart).
template <int MR>
__attribute__((target("avx512f"), optimize("O3"))) void panelAvx512(const float* A, int64_t lda, int64_t K, const float* panel, float* acc) {
  __m512 c[MR][2];
  for (int m = 0; m < MR; m++) c[m][0] = c[m][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k++) {
    const float* b = panel + k * P;
    _mm_prefetch(reinterpret_cast<const char*>(b + kAhead), _MM_HINT_T0);
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++) {
      const __m512 a = _mm512_set1_ps(A[m * lda + k]);
      c[m][0] = _mm512_fmadd_ps(a, b0, c[m][0]);
      c[m][1] = _mm512_fmadd_ps(a, b1, c[m][1]);
    }
  }
  for (int m = 0; m < MR; m++) {
    _mm512_storeu_ps(acc + m * P, c[m][0]);
    _mm512_storeu_ps(acc + m * P + 16, c[m][1]);
  }
}

template <int MR>
__attribute__((target("avx2,fma"), optimize("O3"))) void panelAvx2(const float* A, int64_t lda, int64_t K, const float* panel, float* acc) {
  __m256 c[MR][4];
  for (int m = 0; m < MR; m++)
    for (int v = 0; v < 4; v++) c[m][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; k++) {
    const float* b = panel + k * P;
    _mm_prefetch(reinterpret_cast<const char*>(b + kAhead), _MM_HINT_T0);
#pragma GCC unroll 4
    for (int m = 0; m < MR; m++) {
      const __m256 a = _mm256_broadcast_ss(A + m * lda + k);
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) c[m][v] = _mm256_fmadd_ps(a, _mm256_loadu_ps(b + 8 * v), c[m][v]);
    }
  }
  for (int m = 0; m < MR; m++)
    for (int v = 0; v < 4; v++) _mm256_storeu_ps(acc + m * P + 8 * v, c[m][v]);
}

void panelBaseline(int rows, const float* A, int64_t lda, int64_t K, const float* panel, float* acc) {
  rows = std::min(rows, 8);  // the callers pass at most rowsPerPass()
  std::fill(acc, acc + rows * P, 0.f);
  for (int m = 0; m < rows; m++) {
    float* o = acc + m * P;
    for (int64_t k = 0; k < K; k++) {
      const float a = A[m * lda + k];
      const float* b = panel + k * P;
      for (int64_t n = 0; n < P; n++) o[n] += a * b[n];
    }
  }
}

// The instruction sets of the loops, widest last; the CPU's, or a narrower one a test asks for.
enum Isa { Baseline = 0, Avx2 = 1, Avx512 = 2 };
const char* const kIsaNames[] = {"baseline", "avx2", "avx512"};
Isa cpuIsa() {
  static const Isa i = __builtin_cpu_supports("avx512f") ? Avx512
                       : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? Avx2
                                                                                          : Baseline;
  return i;
}
std::atomic<int> gIsaCap{Avx512};
Isa isa() { return static_cast<Isa>(std::min<int>(cpuIsa(), gIsaCap.load())); }
// Convolutions run by fewRowsRun since the library was loaded.
std::atomic<int64_t> gRuns{0};
// Rows per pass over a panel: as many as the registers hold (2 x MR sums of 16, or 4 x MR of 8).
int rowsPerPass(Isa i) { return i == Avx512 ? 8 : 4; }

// dst = relu?(acc + bias (+ add)) over n output channels, in loops the compiler vectorises (the
// one loop with both tests per value was 4% of a ResNet-18 forward at 64 px batch 1).
void finishRow(const float* __restrict__ acc, const float* __restrict__ bias, const float* __restrict__ add, float* __restrict__ dst,
               int64_t n, bool relu) {
  if (add) {
#pragma omp simd
    for (int64_t q = 0; q < n; q++) dst[q] = acc[q] + bias[q] + add[q];
  } else {
#pragma omp simd
    for (int64_t q = 0; q < n; q++) dst[q] = acc[q] + bias[q];
  }
  if (relu) {
#pragma omp simd
    for (int64_t q = 0; q < n; q++) dst[q] = dst[q] > 0.f ? dst[q] : 0.f;
  }
}

void panelRows(Isa i, int rows, const float* A, int64_t lda, int64_t K, const float* panel, float* acc) {
#define LORKD_ROWS(KERNEL)                                 \
  switch (rows) {                                          \
    case 1: KERNEL<1>(A, lda, K, panel, acc); return;      \
    case 2: KERNEL<2>(A, lda, K, panel, acc); return;      \
    case 3: KERNEL<3>(A, lda, K, panel, acc); return;      \
    case 4: KERNEL<4>(A, lda, K, panel, acc); return;      \
  }
  switch (i) {
    case Avx512:
      LORKD_ROWS(panelAvx512)
      switch (rows) {
        case 5: panelAvx512<5>(A, lda, K, panel, acc); return;
        case 6: panelAvx512<6>(A, lda, K, panel, acc); return;
        case 7: panelAvx512<7>(A, lda, K, panel, acc); return;
        case 8: panelAvx512<8>(A, lda, K, panel, acc); return;
      }
      break;
    case Avx2:
      LORKD_ROWS(panelAvx2)
      break;
    case Baseline:
      break;
  }
#undef LORKD_ROWS
  panelBaseline(rows, A, lda, K, panel, acc);
}

// lorkd::fewRowsPays's bounds.
std::atomic<int64_t> gMaxRows{16}, gMinWeight{int64_t(1) << 18};

}  // namespace

namespace lorkd {
std::unique_ptr<FewRowsConv> fewRowsPack(const at::Tensor& w, const at::Tensor& bias, at::IntArrayRef stride,
                                         at::IntArrayRef padding, at::IntArrayRef dilation) {
  if (w.dim() != 4 || !w.is_cpu() || w.scalar_type() != at::kFloat) throw std::invalid_argument("fewRowsPack: the weight must be a 4-d float32 CPU tensor");
  if (stride.size() != 2 || padding.size() != 2 || dilation.size() != 2) throw std::invalid_argument("fewRowsPack: stride, padding and dilation need 2 entries each");
  auto c = std::make_unique<FewRowsConv>();
  c->cout = w.size(0), c->cin = w.size(1), c->kh = w.size(2), c->kw = w.size(3);
  c->sh = stride[0], c->sw = stride[1], c->ph = padding[0], c->pw = padding[1], c->dh = dilation[0], c->dw = dilation[1];
  if (bias.numel() != c->cout) throw std::invalid_argument("fewRowsPack: the bias needs one value per output channel");
  const int64_t K = c->kh * c->kw * c->cin, panels = (c->cout + P - 1) / P;
  // (Cout, Cin, kh, kw) -> (Cout, kh, kw, Cin) = (Cout, K), then each panel's columns side by side.
  const at::Tensor wk = w.detach().permute({0, 2, 3, 1}).reshape({c->cout, K}).contiguous();
  c->panels = at::zeros({panels, K, P}, at::kFloat);
  const float* src = wk.data_ptr<float>();
  float* dst = c->panels.data_ptr<float>();
  for (int64_t o = 0; o < c->cout; o++)
    for (int64_t k = 0; k < K; k++) dst[((o / P) * K + k) * P + o % P] = src[o * K + k];
  c->bias = bias.detach().to(at::kFloat).contiguous().clone();
  return c;
}

at::Tensor fewRowsRun(const FewRowsConv& c, const at::Tensor& x, const at::Tensor* residual, bool relu) {
  if (x.dim() != 4 || x.size(1) != c.cin || x.scalar_type() != at::kFloat || !x.is_cpu())
    throw std::invalid_argument("fewRowsRun: the input must be float32 (N, " + std::to_string(c.cin) + ", H, W)");
  const at::Tensor xl = x.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  const int64_t oh = lorkd::windowOutSize(h, c.kh, c.sh, c.ph, c.dh), ow = lorkd::windowOutSize(w, c.kw, c.sw, c.pw, c.dw);
  if (oh < 1 || ow < 1) throw std::invalid_argument("fewRowsRun: the input is smaller than the kernel");
  const at::TensorOptions cl = at::TensorOptions().dtype(at::kFloat).memory_format(at::MemoryFormat::ChannelsLast);
  at::Tensor out = at::empty({n, c.cout, oh, ow}, cl);
  at::Tensor res;
  if (residual) {
    if (!residual->sizes().equals(out.sizes()) || residual->scalar_type() != at::kFloat)
      throw std::invalid_argument("fewRowsRun: the residual must have the output's shape");
    res = residual->contiguous(at::MemoryFormat::ChannelsLast);
  }
  const int64_t M = n * oh * ow, K = c.kh * c.kw * c.cin;
  const float* xs = xl.data_ptr<float>();
  // The patches, one row of K per output pixel; a 1x1, stride 1, unpadded convolution reads x as is.
  at::Tensor cols;
  const float* A = xs;
  if (!(c.kh == 1 && c.kw == 1 && c.sh == 1 && c.sw == 1 && c.ph == 0 && c.pw == 0)) {
    cols = at::empty({M, K}, at::kFloat);
    float* a = cols.data_ptr<float>();
    for (int64_t b = 0; b < n; b++)
      for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++)
          for (int64_t u = 0; u < c.kh; u++)
            for (int64_t v = 0; v < c.kw; v++, a += c.cin) {
              const int64_t y = i * c.sh - c.ph + u * c.dh, z = j * c.sw - c.pw + v * c.dw;
              if (y < 0 || y >= h || z < 0 || z >= w) std::fill(a, a + c.cin, 0.f);
              else std::memcpy(a, xs + ((b * h + y) * w + z) * c.cin, c.cin * sizeof(float));
            }
    A = cols.data_ptr<float>();
  }
  const float* panels = c.panels.data_ptr<float>();
  const float* bias = c.bias.data_ptr<float>();
  const float* r = res.defined() ? res.data_ptr<float>() : nullptr;
  float* o = out.data_ptr<float>();
  const Isa i = isa();
  // Rows per pass over a panel: at most rowsPerPass, and as even as the passes allow (49 rows
  // as 7 x 7, not 6 x 8 and a pass of one row, whose two sums wait on each other's latency).
  const int64_t cout = c.cout, most = rowsPerPass(i), step = (M + (M + most - 1) / most - 1) / ((M + most - 1) / most);
  gRuns++;
  at::parallel_for(0, c.panels.size(0), 1, [&](int64_t p0, int64_t p1) {
    float acc[8 * P];
    for (int64_t p = p0; p < p1; p++) {
      const int64_t n0 = p * P, nn = std::min(P, cout - n0);
      for (int64_t m0 = 0; m0 < M; m0 += step) {
        const int rows = static_cast<int>(std::min(step, M - m0));
        panelRows(i, rows, A + m0 * K, K, K, panels + p * K * P, acc);
        for (int m = 0; m < rows; m++)
          finishRow(acc + m * P, bias + n0, r ? r + (m0 + m) * cout + n0 : nullptr, o + (m0 + m) * cout + n0, nn, relu);
      }
    }
  });
  return out;
}

bool fewRowsPays(int64_t rows, int64_t k, int64_t cout) { return rows <= gMaxRows.load() && k * cout >= gMinWeight.load(); }

at::Tensor fewRowsConv(LazyFewRows& lazy, const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, bool relu) {
  if (groups != 1 || x.dim() != 4 || w.dim() != 4 || !x.is_cpu() || x.scalar_type() != at::kFloat || x.requires_grad() ||
      x.size(1) != w.size(1) || stride.size() != 2 || padding.size() != 2 || dilation.size() != 2 || at::autocast::is_cpu_enabled())
    return at::Tensor();
  const int64_t oh = lorkd::windowOutSize(x.size(2), w.size(2), stride[0], padding[0], dilation[0]);
  const int64_t ow = lorkd::windowOutSize(x.size(3), w.size(3), stride[1], padding[1], dilation[1]);
  if (oh < 1 || ow < 1 || !fewRowsPays(x.size(0) * oh * ow, w.size(1) * w.size(2) * w.size(3), w.size(0))) return at::Tensor();
  const FewRowsConv& c = lazy.get([&] {
    return fewRowsPack(w, b && b->defined() ? *b : at::zeros({w.size(0)}, at::kFloat), stride, padding, dilation);
  });
  return fewRowsRun(c, x, nullptr, relu);
}
}  // namespace lorkd

// fewRowsLimits(maxRows?, minWeight?) -> [maxRows, minWeight] in force before the call: the
// bounds of lorkd::fewRowsPays, set where given (tests force either path; bench compares them).
DEF("fewRowsLimits", {
  const int64_t before[2] = {gMaxRows.load(), gMinWeight.load()};
  if (info.Length() > 0 && info[0].IsNumber()) gMaxRows = info[0].As<Napi::Number>().Int64Value();
  if (info.Length() > 1 && info[1].IsNumber()) gMinWeight = info[1].As<Napi::Number>().Int64Value();
  auto out = Napi::Array::New(ENV, 2);
  out.Set(0u, Napi::Number::New(ENV, double(before[0])));
  out.Set(1u, Napi::Number::New(ENV, double(before[1])));
  return out;
})

// fewRowsRuns() -> the convolutions run through the few-rows pass since the library was loaded.
DEF("fewRowsRuns", return Napi::Number::New(ENV, double(gRuns.load()));)

// fewRowsIsa(name?) -> the instruction set the loops used before the call ("avx512", "avx2" or
// "baseline"); given a name, the loops use at most that one from then on (tests run each loop on
// one CPU). A name wider than the CPU's runs the CPU's.
DEF("fewRowsIsa", {
  const char* before = kIsaNames[isa()];
  if (info.Length() > 0 && info[0].IsString()) {
    const std::string want = info[0].As<Napi::String>().Utf8Value();
    const auto* at = std::find(std::begin(kIsaNames), std::end(kIsaNames), want);
    if (at == std::end(kIsaNames)) throw std::invalid_argument("fewRowsIsa: the instruction set must be avx512, avx2 or baseline, got " + want);
    gIsaCap = static_cast<int>(at - std::begin(kIsaNames));
  }
  return Napi::String::New(ENV, before);
})
