// The EKS row path on AVX-512 at rank r = 4, 8 or 16 (issue 22: at 64 px the row path, run one
// row at a time in AVX2, was 16% of a 10-task ShuffleNetV2 pass at batch 8). Rows of one task go
// in blocks of 16, in two steps:
//   - z = s x A^T, four rows at a time: one 16-float register holds G = 16 / r input channels'
//     r coefficients (lowRankPairs), and the row's G values come as one broadcast, so one FMA
//     covers G input channels (at r = 8 two; the AVX2 loop took one per 8 lanes);
//   - out += z B^T, 16 output channels at a time (masked at the edge): B's r 16-channel pieces
//     stay in registers for every row of the block, and each z_j comes as a broadcast operand,
//     so B is read once per block instead of once per row.
#include "low-rank-pairs.h"

// GCC 12's AVX-512 headers make their "undefined" operands by self-assignment, which its own
// -Wuninitialized then reports at every permute and cast; nothing here reads such a value.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace {
constexpr int64_t kBlockRows = 16;

#define LORKD_AVX512 __attribute__((target("avx512f"), optimize("O3")))

// G = 16 / r input channels of one row in every group of r lanes: x[0..G) repeated.
template <int G>
LORKD_AVX512 inline __m512 groupBroadcast(const float* x) {
  if constexpr (G == 1) {
    return _mm512_set1_ps(*x);
  } else if constexpr (G == 2) {
    double d;
    std::memcpy(&d, x, sizeof d);
    return _mm512_castpd_ps(_mm512_set1_pd(d));
  } else {
    return _mm512_broadcast_f32x4(_mm_loadu_ps(x));
  }
}

// z (Rows rows, R floats each) = s x A^T for Rows consecutive rows, at rank R.
template <int Rows, int R>
LORKD_AVX512 void zRows(const float* x, int64_t ld, int64_t cin, const float* Ap, float s, float* z) {
  constexpr int G = 16 / R;
  __m512 even[Rows], odd[Rows];  // two sums per row: 2 Rows independent FMA chains
  for (int r = 0; r < Rows; r++) even[r] = odd[r] = _mm512_setzero_ps();
  const int64_t groups = cin / G;
  int64_t p = 0;
  for (; p + 2 <= groups; p += 2) {
    const __m512 a0 = _mm512_loadu_ps(Ap + p * 16), a1 = _mm512_loadu_ps(Ap + (p + 1) * 16);
    for (int r = 0; r < Rows; r++) {
      even[r] = _mm512_fmadd_ps(a0, groupBroadcast<G>(x + r * ld + G * p), even[r]);
      odd[r] = _mm512_fmadd_ps(a1, groupBroadcast<G>(x + r * ld + G * (p + 1)), odd[r]);
    }
  }
  if (p < groups) {
    const __m512 a = _mm512_loadu_ps(Ap + p * 16);
    for (int r = 0; r < Rows; r++) even[r] = _mm512_fmadd_ps(a, groupBroadcast<G>(x + r * ld + G * p), even[r]);
    p++;
  }
  if (const int64_t rest = cin - G * groups; rest > 0) {  // a last, partial group: its missing coefficients are zero
    const __m512 a = _mm512_loadu_ps(Ap + p * 16);
    for (int r = 0; r < Rows; r++) {
      float tail[G] = {};
      std::memcpy(tail, x + r * ld + G * p, sizeof(float) * rest);
      even[r] = _mm512_fmadd_ps(a, groupBroadcast<G>(tail), even[r]);
    }
  }
  // Lane G j + g holds term j over the channels g mod G: add the G lanes of each term, keep lane G j.
  const __m512i firsts = _mm512_setr_epi32(0, G % 16, (2 * G) % 16, (3 * G) % 16, (4 * G) % 16, (5 * G) % 16, (6 * G) % 16, (7 * G) % 16,
                                           (8 * G) % 16, (9 * G) % 16, (10 * G) % 16, (11 * G) % 16, (12 * G) % 16, (13 * G) % 16,
                                           (14 * G) % 16, (15 * G) % 16);
  const __m512 sv = _mm512_set1_ps(s);
  for (int r = 0; r < Rows; r++) {
    __m512 v = _mm512_add_ps(even[r], odd[r]);
    if constexpr (G >= 2) v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));  // neighbours
    if constexpr (G >= 4) v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));  // pairs of neighbours
    if constexpr (G > 1) v = _mm512_permutexvar_ps(firsts, v);
    v = _mm512_mul_ps(v, sv);
    if constexpr (R == 16) _mm512_storeu_ps(z + r * R, v);
    else if constexpr (R == 8) _mm256_storeu_ps(z + r * R, _mm512_castps512_ps256(v));
    else _mm_storeu_ps(z + r * R, _mm512_castps512_ps128(v));
  }
}

// out (n rows) += z B^T (+ bias), then the ReLU, at rank R.
template <int R>
LORKD_AVX512 void outRows(const float* z, int64_t n, const float* Bt, const float* bias, float* out, int64_t cout, bool relu) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t c = 0; c < cout; c += 16) {
    const __mmask16 m = cout - c >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (cout - c)) - 1);
    __m512 b[R];
    for (int j = 0; j < R; j++) b[j] = _mm512_maskz_loadu_ps(m, Bt + j * cout + c);
    const __m512 bb = bias ? _mm512_maskz_loadu_ps(m, bias + c) : zero;
    for (int64_t i = 0; i < n; i++) {
      float* o = out + i * cout + c;
      const float* zi = z + i * R;
      __m512 acc0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), bb), acc1 = zero;
      for (int j = 0; j < R; j += 2) {
        acc0 = _mm512_fmadd_ps(b[j], _mm512_set1_ps(zi[j]), acc0);
        acc1 = _mm512_fmadd_ps(b[j + 1], _mm512_set1_ps(zi[j + 1]), acc1);
      }
      acc0 = _mm512_add_ps(acc0, acc1);
      if (relu) acc0 = _mm512_max_ps(acc0, zero);
      _mm512_mask_storeu_ps(o, m, acc0);
    }
  }
}

template <int R>
void rowsAtRank(const float* x, int64_t ld, int64_t n, int64_t cin, const float* Ap, const float* Bt, const float* bias, float* out,
                int64_t cout, float s, bool relu) {
  alignas(64) float z[kBlockRows * R];
  for (int64_t i0 = 0; i0 < n; i0 += kBlockRows) {
    const int64_t rows = std::min(kBlockRows, n - i0);
    const float* xb = x + i0 * ld;
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) zRows<4, R>(xb + r * ld, ld, cin, Ap, s, z + r * R);
    switch (rows - r) {
      case 3: zRows<3, R>(xb + r * ld, ld, cin, Ap, s, z + r * R); break;
      case 2: zRows<2, R>(xb + r * ld, ld, cin, Ap, s, z + r * R); break;
      case 1: zRows<1, R>(xb + r * ld, ld, cin, Ap, s, z + r * R); break;
      default: break;
    }
    outRows<R>(z, rows, Bt, bias, out + i0 * cout, cout, relu);
  }
}
}  // namespace

namespace lorkd {
bool pairRank(int64_t rank) { return rank == 4 || rank == 8 || rank == 16; }

at::Tensor lowRankPairs(const at::Tensor& A) {
  if (A.dim() != 3 || !pairRank(A.size(1))) return {};
  const int64_t R = A.size(1), G = 16 / R, cin = A.size(2), padded = (cin + G - 1) / G * G;
  at::Tensor a = A.to(at::kFloat).contiguous();
  if (padded != cin) a = at::constant_pad_nd(a, {0, padded - cin});
  // (T, R, G P) -> (T, R, P, G) -> (T, P, R, G)
  return a.view({A.size(0), R, padded / G, G}).permute({0, 2, 1, 3}).contiguous();
}

bool pairRowsAvailable() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}

void lowRankPairRows(const float* x, int64_t ld, int64_t n, int64_t cin, int64_t rank, const float* Ap, const float* Bt,
                     const float* bias, float* out, int64_t cout, float s, bool relu) {
  switch (rank) {
    case 4: return rowsAtRank<4>(x, ld, n, cin, Ap, Bt, bias, out, cout, s, relu);
    case 8: return rowsAtRank<8>(x, ld, n, cin, Ap, Bt, bias, out, cout, s, relu);
    case 16: return rowsAtRank<16>(x, ld, n, cin, Ap, Bt, bias, out, cout, s, relu);
    default: throw std::invalid_argument("lowRankPairRows: rank " + std::to_string(rank) + " has no grouped loop");
  }
}
}  // namespace lorkd
