#include "worker/model/self_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <cmath>
#include <vector>

#include "common/platform.h"
#include "worker/model/kernel_support.h"

#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

namespace difffit {
namespace {

// Training keeps B H N^2 float probabilities per block; above this per call, ATen's kernel
// (LibTorch 2.x's flash attention keeps only a log-sum-exp per row).
constexpr int64_t kMaxKeptProbabilityBytes = int64_t{64} << 20;

// The Fortran BLAS sgemm that LibTorch itself links (OpenBLAS here), found at run time; the
// two trailing lengths are the hidden ones gfortran-built BLAS expects for the char flags.
using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*, size_t, size_t);

Sgemm blas_sgemm() {
  static const Sgemm fn = reinterpret_cast<Sgemm>(blas_function("sgemm_"));
  return fn;
}

// C = alpha op(A) op(B) + beta C on row-major matrices (m x n result, inner size k), as the
// column-major BLAS computes C^T = op(B)^T op(A)^T.
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
          int ldb, float beta, float* c, int ldc) {
  const char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
  blas_sgemm()(&tb, &ta, &n, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc, 1, 1);
}

// Sum and maximum of a row in 16 independent lanes, so the loops vectorise without
// reassociating a single accumulator (which the compiler may not do for floats).
constexpr int kLanes = 16;

inline float row_max(const float* row, int cols) {
  float lane[kLanes];
  for (int l = 0; l < kLanes; ++l) lane[l] = row[0];
  int j = 0;
  for (; j + kLanes <= cols; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) lane[l] = row[j + l] > lane[l] ? row[j + l] : lane[l];
  }
  float top = lane[0];
  for (int l = 1; l < kLanes; ++l) top = lane[l] > top ? lane[l] : top;
  for (; j < cols; ++j) top = row[j] > top ? row[j] : top;
  return top;
}

inline float row_dot(const float* a, const float* b, int cols) {  // b == nullptr: the sum of a
  float lane[kLanes] = {};
  int j = 0;
  for (; j + kLanes <= cols; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) lane[l] += b ? a[j + l] * b[j + l] : a[j + l];
  }
  float total = 0.f;
  for (int l = 0; l < kLanes; ++l) total += lane[l];
  for (; j < cols; ++j) total += b ? a[j] * b[j] : a[j];
  return total;
}

// Rows of logits to probabilities in place: exp(x - max) / sum.
DIFFFIT_CPU_CLONES
void softmax_rows(float* s, int rows, int cols) {
  for (int r = 0; r < rows; ++r) {
    float* row = s + static_cast<int64_t>(r) * cols;
    const float top = row_max(row, cols);
    for (int j = 0; j < cols; ++j) row[j] = exp_clamped(row[j] - top);
    const float inv = 1.f / row_dot(row, nullptr, cols);
    for (int j = 0; j < cols; ++j) row[j] *= inv;
  }
}

// Softmax's backward in place: dS = P * (dP - rowsum(dP * P)).
DIFFFIT_CPU_CLONES
void softmax_backward_rows(const float* p, float* dp, int rows, int cols) {
  for (int r = 0; r < rows; ++r) {
    const float* prow = p + static_cast<int64_t>(r) * cols;
    float* drow = dp + static_cast<int64_t>(r) * cols;
    const float dot = row_dot(drow, prow, cols);
    for (int j = 0; j < cols; ++j) drow[j] = prow[j] * (drow[j] - dot);
  }
}

struct Shape {
  int64_t batch, tokens, channels, heads, head_dim;
  explicit Shape(const torch::Tensor& qkv, int64_t h)
      : batch(qkv.size(0)), tokens(qkv.size(1)), channels(qkv.size(2) / 3), heads(h), head_dim(channels / h) {}
  float scale() const { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim))); }
};

// Forward for every (sample, head); `probs` (B, H, N, N) keeps P for the backward, or is
// undefined and each thread uses scratch.
torch::Tensor attention_forward(const torch::Tensor& qkv, const Shape& s, const torch::Tensor& probs) {
  torch::Tensor out = at::empty({s.batch, s.tokens, s.channels}, qkv.options());
  const float* base = qkv.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  float* keep = probs.defined() ? probs.data_ptr<float>() : nullptr;
  const int n = static_cast<int>(s.tokens), d = static_cast<int>(s.head_dim);
  const int ld_qkv = static_cast<int>(3 * s.channels), ld_out = static_cast<int>(s.channels);
  at::parallel_for(0, s.batch * s.heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(keep ? 0 : static_cast<size_t>(n) * n);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / s.heads, h = i % s.heads;
      const float* q = base + b * s.tokens * 3 * s.channels + h * s.head_dim;
      const float* k = q + s.channels;
      const float* v = k + s.channels;
      float* p = keep ? keep + i * n * n : scratch.data();
      gemm(false, true, n, n, d, s.scale(), q, ld_qkv, k, ld_qkv, 0.f, p, n);
      softmax_rows(p, n, n);
      gemm(false, false, n, d, n, 1.f, p, n, v, ld_qkv, 0.f, dst + b * s.tokens * s.channels + h * s.head_dim, ld_out);
    }
  });
  return out;
}

// The gradient of qkv, (B, N, 3C), written slot by slot: dQ = scale dS K, dK = scale dS^T Q,
// dV = P^T dO, with dS the softmax backward of dP = dO V^T.
torch::Tensor attention_backward(const torch::Tensor& grad_out, const torch::Tensor& qkv, const Shape& s,
                                 const torch::Tensor& probs) {
  torch::Tensor dqkv = at::empty_like(qkv);
  const float* base = qkv.data_ptr<float>();
  const float* d_out = grad_out.data_ptr<float>();
  const float* keep = probs.data_ptr<float>();
  float* d_base = dqkv.data_ptr<float>();
  const int n = static_cast<int>(s.tokens), d = static_cast<int>(s.head_dim);
  const int ld_qkv = static_cast<int>(3 * s.channels), ld_out = static_cast<int>(s.channels);
  at::parallel_for(0, s.batch * s.heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> ds(static_cast<size_t>(n) * n);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / s.heads, h = i % s.heads;
      const int64_t offset = b * s.tokens * 3 * s.channels + h * s.head_dim;
      const float* q = base + offset;
      const float* k = q + s.channels;
      const float* v = k + s.channels;
      float* dq = d_base + offset;
      float* dk = dq + s.channels;
      float* dv = dk + s.channels;
      const float* p = keep + i * n * n;
      const float* go = d_out + b * s.tokens * s.channels + h * s.head_dim;
      gemm(false, true, n, n, d, 1.f, go, ld_out, v, ld_qkv, 0.f, ds.data(), n);
      softmax_backward_rows(p, ds.data(), n, n);
      gemm(false, false, n, d, n, s.scale(), ds.data(), n, k, ld_qkv, 0.f, dq, ld_qkv);
      gemm(true, false, n, d, n, s.scale(), ds.data(), n, q, ld_qkv, 0.f, dk, ld_qkv);
      gemm(true, false, n, d, n, 1.f, p, n, go, ld_out, 0.f, dv, ld_qkv);
    }
  });
  return dqkv;
}

struct SelfAttention : public torch::autograd::Function<SelfAttention> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& qkv, int64_t heads) {
    const Shape s(qkv, heads);
    torch::Tensor probs = at::empty({s.batch, s.heads, s.tokens, s.tokens}, qkv.options());
    ctx->save_for_backward({qkv, probs});
    ctx->saved_data["heads"] = heads;
    return attention_forward(qkv, s, probs);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Shape s(saved[0], ctx->saved_data["heads"].toInt());
    return {attention_backward(grads[0].contiguous(), saved[0], s, saved[1]), torch::Tensor()};
  }
};

// ATen's attention on (B, H, N, D) heads.
torch::Tensor aten_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v);  // fused kernel (flash / memory-efficient)
#else
  // The plain maths, in the order of timm's non-fused path: (q * scale) @ k^T.
  double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  torch::Tensor attn = at::matmul(q * scale, k.transpose(-2, -1)).softmax(-1);
  return at::matmul(attn, v);
#endif
}

}  // namespace

torch::Tensor self_attention(const torch::Tensor& qkv_in, int64_t heads) {
  const int64_t batch = qkv_in.size(0), tokens = qkv_in.size(1), channels = qkv_in.size(2) / 3;
  const bool grad = torch::GradMode::is_enabled() && qkv_in.requires_grad();
  const bool fits = !grad || batch * heads * tokens * tokens * 4 <= kMaxKeptProbabilityBytes;
  // bf16 (autocast) on a CPU without AMX: ATen's bf16 attention has no fast matrix products
  // there (80% of a mini-model step, measured); the same bf16 inputs attended in float32 are
  // several times faster and round once, at the end.
  static const bool amx = detect_cpu_features().amx_bf16;
  if (qkv_in.device().is_cpu() && qkv_in.scalar_type() == at::kBFloat16 && !amx && fits) {
    return self_attention(qkv_in.to(at::kFloat), heads).to(at::kBFloat16);
  }
  const bool own_kernel = qkv_in.device().is_cpu() && qkv_in.scalar_type() == at::kFloat && blas_sgemm() && fits;
  if (own_kernel) {
    const torch::Tensor qkv = qkv_in.contiguous();
    if (grad) return SelfAttention::apply(qkv, heads);
    return attention_forward(qkv, Shape(qkv, heads), torch::Tensor());
  }
  auto parts = qkv_in.reshape({batch, tokens, 3, heads, channels / heads}).permute({2, 0, 3, 1, 4}).unbind(0);
  return aten_attention(parts[0], parts[1], parts[2]).transpose(1, 2).reshape({batch, tokens, channels});
}

}  // namespace difffit
