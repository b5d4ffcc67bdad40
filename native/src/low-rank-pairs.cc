// The EKS row path at rank 8 on AVX-512 (issue 22: at 64 px the row path, run one row at a time
// in AVX2, was 16% of a 10-task ShuffleNetV2 pass at batch 8). Rows of one task go in blocks of
// 16, in two steps:
//   - z = s x A^T, four rows at a time: one 16-float register holds two input channels' eight
//     coefficients (lowRankPairs), and the row's two values x[2p], x[2p + 1] come as one 8-byte
//     broadcast, so one FMA covers two input channels (AVX2 took one);
//   - out += z B^T, 16 output channels at a time (masked at the edge): B's eight 16-channel
//     pieces stay in registers for every row of the block, and each z_j comes as a broadcast
//     operand, so B is read once per block instead of once per row.
#include "low-rank-pairs.h"

// GCC 12's AVX-512 headers make their "undefined" operands by self-assignment, which its own
// -Wuninitialized then reports at every permute and cast; nothing here reads such a value.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace {
constexpr int64_t kBlockRows = 16;

#define LORKD_AVX512 __attribute__((target("avx512f"), optimize("O3")))

// The pair x[0], x[1] in every 8-byte lane.
LORKD_AVX512 inline __m512 pairBroadcast(const float* x) {
  double d;
  std::memcpy(&d, x, sizeof d);
  return _mm512_castpd_ps(_mm512_set1_pd(d));
}

// z (R rows, 8 floats each) = s x A^T for R consecutive rows.
template <int R>
LORKD_AVX512 void zRows(const float* x, int64_t ld, int64_t cin, const float* Ap, float s, float* z) {
  __m512 even[R], odd[R];  // two sums per row: 2R independent FMA chains
  for (int r = 0; r < R; r++) even[r] = odd[r] = _mm512_setzero_ps();
  const int64_t pairs = cin / 2;
  int64_t p = 0;
  for (; p + 2 <= pairs; p += 2) {
    const __m512 a0 = _mm512_loadu_ps(Ap + p * 16), a1 = _mm512_loadu_ps(Ap + (p + 1) * 16);
    for (int r = 0; r < R; r++) {
      even[r] = _mm512_fmadd_ps(a0, pairBroadcast(x + r * ld + 2 * p), even[r]);
      odd[r] = _mm512_fmadd_ps(a1, pairBroadcast(x + r * ld + 2 * p + 2), odd[r]);
    }
  }
  if (p < pairs) {
    const __m512 a = _mm512_loadu_ps(Ap + p * 16);
    for (int r = 0; r < R; r++) even[r] = _mm512_fmadd_ps(a, pairBroadcast(x + r * ld + 2 * p), even[r]);
    p++;
  }
  if (cin % 2) {  // the last channel alone: its pair's second coefficient is zero
    const __m512 a = _mm512_loadu_ps(Ap + p * 16);
    for (int r = 0; r < R; r++) even[r] = _mm512_fmadd_ps(a, _mm512_set1_ps(x[r * ld + cin - 1]), even[r]);
  }
  // Lane 2j + e holds term j over channels of parity e: add the neighbours, keep the even lanes.
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
  const __m512 sv = _mm512_set1_ps(s);
  for (int r = 0; r < R; r++) {
    __m512 v = _mm512_add_ps(even[r], odd[r]);
    v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));
    v = _mm512_mul_ps(_mm512_permutexvar_ps(evens, v), sv);
    _mm256_storeu_ps(z + r * 8, _mm512_castps512_ps256(v));
  }
}

// out (n rows) += z B^T (+ bias), then the ReLU.
LORKD_AVX512 void outRows(const float* z, int64_t n, const float* Bt, const float* bias, float* out, int64_t cout, bool relu) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t c = 0; c < cout; c += 16) {
    const __mmask16 m = cout - c >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (cout - c)) - 1);
    __m512 b[8];
    for (int j = 0; j < 8; j++) b[j] = _mm512_maskz_loadu_ps(m, Bt + j * cout + c);
    const __m512 bb = bias ? _mm512_maskz_loadu_ps(m, bias + c) : zero;
    for (int64_t i = 0; i < n; i++) {
      float* o = out + i * cout + c;
      const float* zi = z + i * 8;
      __m512 acc0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), bb), acc1 = zero;
      for (int j = 0; j < 8; j += 2) {
        acc0 = _mm512_fmadd_ps(b[j], _mm512_set1_ps(zi[j]), acc0);
        acc1 = _mm512_fmadd_ps(b[j + 1], _mm512_set1_ps(zi[j + 1]), acc1);
      }
      acc0 = _mm512_add_ps(acc0, acc1);
      if (relu) acc0 = _mm512_max_ps(acc0, zero);
      _mm512_mask_storeu_ps(o, m, acc0);
    }
  }
}
}  // namespace

namespace lorkd {
at::Tensor lowRankPairs(const at::Tensor& A) {
  if (A.dim() != 3 || A.size(1) != 8) return {};
  const int64_t cin = A.size(2), padded = cin + cin % 2;
  at::Tensor a = A.to(at::kFloat).contiguous();
  if (padded != cin) a = at::constant_pad_nd(a, {0, 1});
  // (T, 8, 2P) -> (T, 8, P, 2) -> (T, P, 8, 2)
  return a.view({A.size(0), 8, padded / 2, 2}).permute({0, 2, 1, 3}).contiguous();
}

bool pairRowsAvailable() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}

void lowRankPairRows(const float* x, int64_t ld, int64_t n, int64_t cin, const float* Ap, const float* Bt, const float* bias,
                     float* out, int64_t cout, float s, bool relu) {
  alignas(64) float z[kBlockRows * 8];
  for (int64_t i0 = 0; i0 < n; i0 += kBlockRows) {
    const int64_t rows = std::min(kBlockRows, n - i0);
    const float* xb = x + i0 * ld;
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) zRows<4>(xb + r * ld, ld, cin, Ap, s, z + r * 8);
    switch (rows - r) {
      case 3: zRows<3>(xb + r * ld, ld, cin, Ap, s, z + r * 8); break;
      case 2: zRows<2>(xb + r * ld, ld, cin, Ap, s, z + r * 8); break;
      case 1: zRows<1>(xb + r * ld, ld, cin, Ap, s, z + r * 8); break;
      default: break;
    }
    outRows(z, rows, Bt, bias, out + i0 * cout, cout, relu);
  }
}
}  // namespace lorkd
