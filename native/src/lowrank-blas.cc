// The low-rank paths of the EKS inference pass on the GEMM route, as raw sgemm calls.
//
// On the GEMM route (1x1, stride 1, channels_last) each task's low-rank path is two skinny GEMMs
// on its contiguous rows. Through ATen each costs a dispatch, a few views and an output tensor:
// with 10 tasks and 36 such convolutions in ShuffleNetV2 that is about 3,000 ATen calls per
// forward, which cost more than the GEMMs' arithmetic at r = 8 (issue 22: the EKS pass at 1.4-1.9x
// the fused expert's time). Here each path is two calls of the BLAS that ATen's own mm uses
// (sgemm_, found in libtorch's dependencies at run time, so that a libtorch without one still
// loads), the second accumulating into the shared convolution's output (beta = 1). Row-major
// (m x n) data is column-major (n x m), so Z = X A^T is Z^T = A X^T: sgemm('T', 'N', r, m, Cin,
// 1, A, Cin, X, Cin, 0, Z, r); out += s Z B^T is out^T += s B Z^T: sgemm('T', 'N', Cout, m, r, s,
// B, r, Z, r, 1, out, Cout). OpenBLAS keeps the thread count libtorch leaves it (its own
// default): making it follow setNumThreads was tried and was slower at 2 threads on the quiet
// machine (EKS pass at 64 px, batch 8: 229-310 against 580-662 img/s), so it is not done.
#include "lowrank-blas.h"

#include "common.h"
#include "infer-kernels.h"

#include <ATen/native/CPUBlas.h>
#include <dlfcn.h>

#include <climits>

namespace {
using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*);

// sgemm_ from the objects libtorch_cpu was loaded with (found once; null where there is none).
Sgemm findSgemm() {
  static const Sgemm f = [] {
    Dl_info info;
    if (!dladdr(reinterpret_cast<const void*>(&at::native::cpublas::gemm_stub), &info) || !info.dli_fname) return Sgemm(nullptr);
    void* h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) return Sgemm(nullptr);
    auto* g = reinterpret_cast<Sgemm>(dlsym(h, "sgemm_"));
    dlclose(h);  // NOLOAD took a reference of a library that stays loaded
    return g;
  }();
  return f;
}

bool denseFloatCpu(const at::Tensor& t) { return t.is_cpu() && t.scalar_type() == at::kFloat && !t.requires_grad(); }
}  // namespace

namespace lorkd {
bool addLowRankBlas(const at::Tensor& x, at::Tensor& out, const at::Tensor& A, const at::Tensor& B,
                    const std::vector<int64_t>& counts, double s) {
  const Sgemm sgemm = findSgemm();
  if (!sgemm || !denseFloatCpu(x) || !denseFloatCpu(out) || !denseFloatCpu(A) || !denseFloatCpu(B)) return false;
  // x: pixel rows, a channel slice included (its rows `ld` apart); out: dense channels_last.
  PixelRows xr;
  if (!pixelRows(x, xr) || !out.is_contiguous(at::MemoryFormat::ChannelsLast) || !A.is_contiguous() || !B.is_contiguous()) return false;
  const int64_t hw = x.size(2) * x.size(3), cin = x.size(1), cout = out.size(1), r = A.size(1);
  if (x.size(0) * hw > INT_MAX || xr.ld > INT_MAX || cout > INT_MAX) return false;
  // Z: the largest task's rows x r, reused by every task (thread-local: worker threads run passes too).
  int64_t most = 0;
  for (auto c : counts) most = std::max(most, c);
  thread_local std::vector<float> Z;
  if (static_cast<int64_t>(Z.size()) < most * hw * r) Z.resize(most * hw * r);
  const int ri = static_cast<int>(r), cini = static_cast<int>(cin), couti = static_cast<int>(cout), ldi = static_cast<int>(xr.ld);
  const float one = 1.f, zero = 0.f, sf = static_cast<float>(s);
  const float *xp = xr.data, *ap = A.data_ptr<float>(), *bp = B.data_ptr<float>();
  float* op = out.data_ptr<float>();
  int64_t off = 0;
  for (size_t t = 0; t < counts.size(); t++) {
    if (counts[t] == 0) continue;
    const int m = static_cast<int>(counts[t] * hw);
    const float* xt = xp + off * hw * xr.ld;
    float* ot = op + off * hw * cout;
    sgemm("T", "N", &ri, &m, &cini, &one, ap + t * r * cin, &cini, xt, &ldi, &zero, Z.data(), &ri);
    sgemm("T", "N", &couti, &m, &ri, &sf, bp + t * cout * r, &ri, Z.data(), &ri, &one, ot, &couti);
    off += counts[t];
  }
  return true;
}
}  // namespace lorkd

// lowRankBlasAvailable() -> whether the EKS inference pass found sgemm_ (tests and diagnostics).
DEF("lowRankBlasAvailable", return Napi::Boolean::New(ENV, findSgemm() != nullptr);)
