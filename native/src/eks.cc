// The fused efficient-knowledge-separation (EKS) expert convolution: one native autograd
// function per expert conv (the "fused" strategy of the LoRKD core).
//
// Inputs: x (N, Cin, H, W) with its rows sorted by task, counts[t] = rows of task t (sum N),
// W0 (Cout, Cin, k, k), A (T, r*k, Cin*k), B (T, Cout*k, r*k), scale s.
// Sample b of task t sees W_t = W0 + s * reshape(B_t A_t, [Cout, Cin, k, k]).
// Forward runs one convolution per task present, on that task's contiguous rows, with the merged
// weight W_t: the same multiply-adds as a plain convolution plus T tiny GEMMs. Backward gives
// dW_t per task; dW0 = sum_t dW_t, dA_t = s B_t^T dW_t, dB_t = s dW_t A_t^T (dW_t seen as
// (Cout*k) x (Cin*k)); tasks without rows get exactly zero gradients.
// 1x1 stride-1 convolutions on channels_last inputs (36 of ShuffleNetV2's 37 expert convs) take
// another route with the same result: the shared convolution with W0 over the whole batch
// (oneDNN, exactly a plain layer's cost, forward and backward), plus each task's low-rank path
// as skinny GEMMs on its contiguous rows of the (N*H*W, C) channels_last view:
//   Z_t = X_t A_t^T, out_t += s Z_t B_t^T;  backward: GB_t = G_t B_t, dX_t += s GB_t A_t,
//   dB_t = s G_t^T Z_t, dA_t = s GB_t^T X_t.
// The op is device-agnostic (ATen calls only, no raw pointers): it runs on CUDA as on the CPU;
// only the inference pass on the CPU calls BLAS directly (lowrank-blas.cc), with ATen as fallback.
// Under autocast it acts as torch.cuda.amp.custom_fwd(cast_inputs=<the autocast dtype>): x, W0,
// A and B are cast (with autocast's weight cache) before the autograd function, so forward and
// backward run in that dtype and the gradients reach the float32 parameters through the casts.
#include "common.h"
#include "eks-pointwise.h"
#include "infer-kernels.h"
#include "lowrank-blas.h"
#include "prepacked.h"

#include <ATen/autocast_mode.h>

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool gemmPath(const at::Tensor& x, const at::Tensor& w0, c10::IntArrayRef stride, c10::IntArrayRef padding) {
  return w0.size(2) == 1 && w0.size(3) == 1 && stride[0] == 1 && stride[1] == 1 && padding[0] == 0 &&
         padding[1] == 0 && x.dim() == 4 && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// All T merged weights at once: W_all[t] = W0 + s * reshape(B_t A_t), shape (T, Cout, Cin, k, k).
at::Tensor mergedAll(const at::Tensor& w0, const at::Tensor& A, const at::Tensor& B, double s) {
  std::vector<int64_t> shape{A.size(0)};
  for (auto d : w0.sizes()) shape.push_back(d);
  return at::bmm(B, A).view(shape).mul_(s).add_(w0.contiguous().unsqueeze(0));
}

// (N, C, H, W) channels_last -> (N*H*W, C) view of the same memory.
at::Tensor rows(const at::Tensor& x) { return x.permute({0, 2, 3, 1}).reshape({-1, x.size(1)}); }

// The GEMM route's low-rank paths, added in place to out (the shared convolution's output,
// channels_last): Z_t = X_t A_t^T, out_t += s Z_t B_t^T on each task's rows. Returns Z.
at::Tensor addLowRank(const at::Tensor& x, at::Tensor& out, const at::Tensor& A, const at::Tensor& B, const std::vector<int64_t>& counts, double s) {
  auto X = rows(x), O = rows(out);
  const int64_t hw = x.size(2) * x.size(3), r = A.size(1);
  auto Z = at::empty({X.size(0), r}, x.options());
  int64_t off = 0;
  for (int64_t t = 0; t < A.size(0); t++) {
    if (counts[t] == 0) continue;
    auto Zt = Z.narrow(0, off * hw, counts[t] * hw);
    at::mm_out(Zt, X.narrow(0, off * hw, counts[t] * hw), A[t].t());
    O.narrow(0, off * hw, counts[t] * hw).addmm_(Zt, B[t].t(), 1, s);
    off += counts[t];
  }
  return Z;
}

// The forward of the expert convolution (see the top of this file), with an optional bias added
// by the convolutions themselves (the inference path's folded BatchNorm). Returns the output and
// what the backward needs besides the inputs: Z = X A^T on the GEMM path, the merged weights
// W_all otherwise.
std::pair<at::Tensor, at::Tensor> eksForward(const at::Tensor& x, const at::Tensor& w0, const at::Tensor& A, const at::Tensor& B,
                                             const std::vector<int64_t>& counts, double s, const std::vector<int64_t>& stride,
                                             const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation,
                                             const c10::optional<at::Tensor>& bias) {
  const int64_t T = A.size(0);
  if (gemmPath(x, w0, stride, padding) && dilation[0] == 1 && dilation[1] == 1) {
    auto out = at::conv2d(x, w0, bias, stride, padding, dilation, 1).contiguous(at::MemoryFormat::ChannelsLast);
    return {out, addLowRank(x, out, A, B, counts, s)};
  }
  auto W = mergedAll(w0, A, B, s);
  std::vector<at::Tensor> outs;
  int64_t off = 0;
  for (int64_t t = 0; t < T; t++) {
    if (counts[t] == 0) continue;
    outs.push_back(at::conv2d(x.narrow(0, off, counts[t]), W[t], bias, stride, padding, dilation, 1));
    off += counts[t];
  }
  return {outs.size() == 1 ? outs[0] : at::cat(outs, 0), W};
}

// Checks the routing counts and the factor shapes against x and W0.
void checkEks(const at::Tensor& x, const at::Tensor& w0, const at::Tensor& A, const at::Tensor& B, const std::vector<int64_t>& counts) {
  const int64_t T = A.size(0);
  TORCH_CHECK(static_cast<int64_t>(counts.size()) == T, "eksConv: counts has ", counts.size(), " entries for ", T, " tasks");
  int64_t total = 0;
  for (auto c : counts) {
    TORCH_CHECK(c >= 0, "eksConv: negative task count");
    total += c;
  }
  TORCH_CHECK(total == x.size(0), "eksConv: task counts sum to ", total, " but the batch has ", x.size(0), " rows");
  const int64_t k = w0.size(2);
  TORCH_CHECK(A.dim() == 3 && B.dim() == 3 && A.size(2) == w0.size(1) * k && B.size(1) == w0.size(0) * k &&
                  B.size(0) == T && B.size(2) == A.size(1),
              "eksConv: expert factor shapes A ", A.sizes(), " B ", B.sizes(), " do not fit weight ", w0.sizes());
}

struct EksConv : public torch::autograd::Function<EksConv> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& xin, const at::Tensor& w0, const at::Tensor& A,
                            const at::Tensor& B, std::vector<int64_t> counts, double s, std::vector<int64_t> stride,
                            std::vector<int64_t> padding, std::vector<int64_t> dilation) {
    // A channel slice of a channels_last tensor (ShuffleNetV2's split) is made dense again, so
    // that its rows are contiguous.
    const at::Tensor x = xin.dim() == 4 && xin.suggest_memory_format() == at::MemoryFormat::ChannelsLast
                             ? xin.contiguous(at::MemoryFormat::ChannelsLast)
                             : xin;
    checkEks(x, w0, A, B, counts);
    ctx->saved_data["counts"] = counts;
    ctx->saved_data["s"] = s;
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    auto r = eksForward(x, w0, A, B, counts, s, stride, padding, dilation, c10::nullopt);
    // slot 4: Z = X A^T on the GEMM path, the merged weights W_all otherwise
    ctx->save_for_backward({x, w0, A, B, r.second});
    return r.first;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x = saved[0], w0 = saved[1], A = saved[2], B = saved[3], W = saved[4];
    auto counts = ctx->saved_data["counts"].toIntVector();
    double s = ctx->saved_data["s"].toDouble();
    auto stride = ctx->saved_data["stride"].toIntVector();
    auto padding = ctx->saved_data["padding"].toIntVector();
    auto dilation = ctx->saved_data["dilation"].toIntVector();
    const int64_t T = A.size(0), cout = w0.size(0), cin = w0.size(1), k = w0.size(2);
    const bool needX = ctx->needs_input_grad(0), needW = ctx->needs_input_grad(1);
    const bool needA = ctx->needs_input_grad(2), needB = ctx->needs_input_grad(3);
    const bool needFactors = needW || needA || needB;
    auto g = grads[0];
    at::Tensor dx;
    if (gemmPath(x, w0, stride, padding) && dilation[0] == 1 && dilation[1] == 1) {
      auto Z = W;  // saved slot 4 holds Z = X A^T on this path
      auto gc = g.contiguous(at::MemoryFormat::ChannelsLast);
      auto r = at::convolution_backward(gc, x, w0, c10::nullopt, stride, padding, dilation, false, {0, 0}, 1, {needX, needW, false});
      at::Tensor dw0 = needW ? std::get<1>(r) : at::Tensor();
      at::Tensor dA = needA ? at::zeros_like(A) : at::Tensor(), dB = needB ? at::zeros_like(B) : at::Tensor();
      if (needX) dx = std::get<0>(r).contiguous(at::MemoryFormat::ChannelsLast);
      auto G = rows(gc), X = rows(x);
      at::Tensor DX = needX ? rows(dx) : at::Tensor();
      const int64_t hw = x.size(2) * x.size(3);
      int64_t off = 0;
      for (int64_t t = 0; t < T; t++) {
        if (counts[t] == 0) continue;
        const int64_t o = off * hw, n = counts[t] * hw;
        auto Gt = G.narrow(0, o, n);
        if (needX || needA) {
          auto GB = at::mm(Gt, B[t]);
          if (needX) DX.narrow(0, o, n).addmm_(GB, A[t], 1, s);
          if (needA) {
            auto d = dA[t];
            at::mm_out(d, GB.t(), X.narrow(0, o, n));
          }
        }
        if (needB) {
          auto d = dB[t];
          at::mm_out(d, Gt.t(), Z.narrow(0, o, n));
        }
        off += counts[t];
      }
      if (needA) dA.mul_(s);
      if (needB) dB.mul_(s);
      return {dx, dw0, dA, dB, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    // dW_all[t]: gradient of task t's merged weight (zero for absent tasks).
    at::Tensor dWall = needFactors ? at::empty_like(W, at::MemoryFormat::Contiguous) : at::Tensor();
    for (int64_t t = 0; t < T && needFactors; t++)
      if (counts[t] == 0) dWall[t].zero_();
    {
      std::vector<at::Tensor> dxs;
      int64_t off = 0;
      for (int64_t t = 0; t < T; t++) {
        if (counts[t] == 0) continue;
        auto r = at::convolution_backward(g.narrow(0, off, counts[t]), x.narrow(0, off, counts[t]), W[t], c10::nullopt,
                                          stride, padding, dilation, false, {0, 0}, 1, {needX, needFactors, false});
        if (needX) dxs.push_back(std::get<0>(r));
        if (needFactors) dWall[t].copy_(std::get<1>(r));
        off += counts[t];
      }
      if (needX) dx = dxs.size() == 1 ? dxs[0] : at::cat(dxs, 0);
    }
    at::Tensor dw0, dA, dB;
    if (needFactors) {
      // d(B_t A_t) = s * dW_t seen as (Cout*k) x (Cin*k): dA_t = B_t^T (.), dB_t = (.) A_t^T.
      auto d = dWall.view({T, cout * k, cin * k});
      if (needW) dw0 = dWall.sum(0).view(w0.sizes());
      if (needA) dA = at::bmm(B.transpose(1, 2), d).mul_(s);
      if (needB) dB = at::bmm(d, A.transpose(1, 2)).mul_(s);
    }
    return {dx, dw0, dA, dB, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};
// Under autocast the op acts as custom_fwd(cast_inputs=<the autocast dtype>): its tensors are
// cast (with autocast's weight cache) before it runs. Undefined tensors stay undefined.
void autocastInputs(const at::Tensor& x, std::initializer_list<at::Tensor*> ts) {
  const auto dev = x.device().type();
  if (!((dev == c10::DeviceType::CPU || dev == c10::DeviceType::CUDA) && lorkd::autocastEnabled(dev))) return;
  const auto dt = lorkd::autocastDtype(dev);
  for (auto* t : ts)
    if (t->defined()) *t = at::autocast::cached_cast(dt, *t, dev);
}
}  // namespace

// eksConv(x, w0, A, B, counts[T], scale, stride[2], padding[2], dilation[2])
DEF("eksConv", {
  at::Tensor x = T(0), w0 = T(1), A = T(2), B = T(3);
  autocastInputs(x, {&x, &w0, &A, &B});
  R(EksConv::apply(x, w0, A, B, IV(4), D(5), IV(6), IV(7), IV(8)));
})

// The EKS pass of the inference path (src/infer): the same forward with no autograd record, a
// folded BatchNorm's bias added by the convolutions and, where the network has one, the ReLU
// applied in place. On the GEMM route, with the factors arranged by lowRankRowFactors (At, Bt),
// tasks with many rows go through their merged weight (eks-pointwise.cc); otherwise the shared
// convolution runs pre-packed by oneDNN where `packed` (convPrepack of W0' and the bias, without
// ReLU) is given, and the low-rank paths row by row (or as sgemm calls without At, Bt).
// eksConvInfer(x, w0, A, B, counts, scale, stride, padding, dilation, bias|null, relu, packed|null, At|null, Bt|null, Ap|null,
//              w0T|null), w0T: W0' as (Cin, Cout) for pointwiseConv.
DEF("eksConvInfer", {
  at::Tensor xin = T(0), w0 = T(1), A = T(2), B = T(3);
  auto given = OT(9);
  at::Tensor bias = given ? *given : at::Tensor();
  autocastInputs(xin, {&xin, &w0, &A, &B, &bias});
  const at::Tensor x = xin.dim() == 4 && xin.suggest_memory_format() == at::MemoryFormat::ChannelsLast
                           ? xin.contiguous(at::MemoryFormat::ChannelsLast)
                           : xin;
  auto counts = IV(4);
  checkEks(x, w0, A, B, counts);
  at::NoGradGuard ng;
  const auto stride = IV(6), padding = IV(7), dilation = IV(8);
  const bool relu = B(10);
  auto At = OT(12), Bt = OT(13);
  const bool rows = At && Bt;
  auto pairs = OT(14);
  const at::Tensor Ap = pairs ? *pairs : at::Tensor();
  at::Tensor out;
  bool reluDone = false;
  if (gemmPath(x, w0, stride, padding) && dilation[0] == 1 && dilation[1] == 1) {
    if (rows) out = eksPointwise(x, w0, bias, *At, *Bt, Ap, counts, D(5), relu);
    reluDone = out.defined();
    if (!out.defined()) {
      // The shared convolution: few output pixels over a large weight through the few-rows
      // packing (ShuffleNetV2's conv5 at batch 1), one GEMM on the dense weight over few pixel
      // rows (pointwiseConv says when), else oneDNN's pre-packed convolution.
      const c10::optional<at::Tensor> b = bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt;
      out = runFewRows(info[11], x, w0, b, stride, padding, dilation, 1, false);
      auto w0T = OT(15);
      if (!out.defined()) out = pointwiseConv(x, w0, bias, false, w0T ? *w0T : at::Tensor());
      if (!out.defined()) out = runPrepacked(info[11], x);
      if (out.defined()) {
        out = out.contiguous(at::MemoryFormat::ChannelsLast);
        reluDone = rows && addLowRankRows(x, out, *At, *Bt, Ap, at::Tensor(), counts, D(5), relu);
        const at::Tensor Ad = A.contiguous(), Bd = B.contiguous();
        if (!reluDone && !addLowRankBlas(x, out, Ad, Bd, counts, D(5))) addLowRank(x, out, A, B, counts, D(5));
      }
    }
  }
  if (!out.defined()) out = eksForward(x, w0, A, B, counts, D(5), stride, padding, dilation, given ? c10::optional<at::Tensor>(bias) : c10::nullopt).first;
  if (relu && !reluDone) out.relu_();
  R(out);
})
