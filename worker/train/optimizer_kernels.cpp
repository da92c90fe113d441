#include "worker/train/optimizer_kernels.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>

#include "worker/model/kernel_support.h"

namespace difffit {
namespace {

constexpr int64_t kGrain = 32768;

DIFFFIT_CPU_CLONES
void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, float decay_factor, float b1,
                  float one_minus_b1, float b2, float one_minus_b2, float neg_step_size, float sqrt_bc2, float eps) {
  for (int64_t i = 0; i < n; ++i) {
    const float grad = g[i];
    const float mi = m[i] * b1 + one_minus_b1 * grad;
    const float vi = v[i] * b2 + one_minus_b2 * grad * grad;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / sqrt_bc2 + eps;
    p[i] = p[i] * decay_factor + neg_step_size * (mi / denom);
  }
}

DIFFFIT_CPU_CLONES
void ema_kernel(float* e, const float* p, int64_t n, float decay, float one_minus_decay) {
  for (int64_t i = 0; i < n; ++i) e[i] = e[i] * decay + one_minus_decay * p[i];
}

}  // namespace

bool fusable(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous();
}

void fused_adamw_update(torch::Tensor& param, const torch::Tensor& grad, torch::Tensor& exp_avg,
                        torch::Tensor& exp_avg_sq, const AdamWScalars& s) {
  float* p = param.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  float* m = exp_avg.data_ptr<float>();
  float* v = exp_avg_sq.data_ptr<float>();
  // The scalars as ATen passes them to float kernels: each rounded to float once.
  const float decay = static_cast<float>(s.decay_factor), b1 = static_cast<float>(s.beta1),
              b2 = static_cast<float>(s.beta2), one_minus_b1 = static_cast<float>(1 - s.beta1),
              one_minus_b2 = static_cast<float>(1 - s.beta2), neg_step = static_cast<float>(-s.step_size),
              sqrt_bc2 = static_cast<float>(s.sqrt_bias_correction2), eps = static_cast<float>(s.eps);
  at::parallel_for(0, param.numel(), kGrain, [&](int64_t begin, int64_t end) {
    adamw_kernel(p + begin, g + begin, m + begin, v + begin, end - begin, decay, b1, one_minus_b1, b2, one_minus_b2,
                 neg_step, sqrt_bc2, eps);
  });
  // As an in-place op would: a graph that saved these tensors now refuses to use them.
  for (auto* t : {&param, &exp_avg, &exp_avg_sq}) t->unsafeGetTensorImpl()->bump_version();
}

void fused_ema_update(torch::Tensor& average, const torch::Tensor& param, double decay) {
  float* e = average.data_ptr<float>();
  const float* p = param.data_ptr<float>();
  const float d = static_cast<float>(decay), rest = static_cast<float>(1 - decay);
  at::parallel_for(0, average.numel(), kGrain, [&](int64_t begin, int64_t end) {
    ema_kernel(e + begin, p + begin, end - begin, d, rest);
  });
  average.unsafeGetTensorImpl()->bump_version();
}

}  // namespace difffit
