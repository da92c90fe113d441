#include "worker/model/gelu_tanh.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <cstdint>

#include "worker/model/kernel_support.h"

namespace difffit {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kKappa = 0.044715f;
constexpr int64_t kGrain = 16384;

DIFFFIT_CPU_CLONES
void gelu_forward_kernel(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float u = kSqrt2OverPi * (v + kKappa * v * v * v);
    y[i] = v / (1.f + exp_clamped(-2.f * u));
  }
}

// d/dx x s(2u) = s + 2 x s (1 - s) u', with s = 1 / (1 + e), 1 - s = e s, e = exp(-2u).
DIFFFIT_CPU_CLONES
void gelu_backward_kernel(const float* grad, const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float v2 = v * v;
    const float u = kSqrt2OverPi * (v + kKappa * v2 * v);
    const float e = exp_clamped(-2.f * u);
    const float s = 1.f / (1.f + e);
    const float du = kSqrt2OverPi * (1.f + 3.f * kKappa * v2);
    out[i] = grad[i] * (s + 2.f * v * s * (e * s) * du);
  }
}

bool uses_kernels(const torch::Tensor& x) {
  return x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16);
}

torch::Tensor tanh_gelu_forward(const torch::Tensor& x_in) {
  const torch::Tensor x = x_in.to(at::kFloat).contiguous();
  torch::Tensor y = at::empty_like(x);
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
  at::parallel_for(0, x.numel(), kGrain, [&](int64_t begin, int64_t end) {
    gelu_forward_kernel(src + begin, dst + begin, end - begin);
  });
  return y.to(x_in.scalar_type());
}

torch::Tensor tanh_gelu_backward(const torch::Tensor& grad_in, const torch::Tensor& x_in) {
  const torch::Tensor x = x_in.to(at::kFloat).contiguous();
  const torch::Tensor grad = grad_in.to(at::kFloat).contiguous();
  torch::Tensor out = at::empty_like(x);
  const float* g = grad.data_ptr<float>();
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, x.numel(), kGrain, [&](int64_t begin, int64_t end) {
    gelu_backward_kernel(g + begin, src + begin, dst + begin, end - begin);
  });
  return out.to(x_in.scalar_type());
}

struct GeluTanh : public torch::autograd::Function<GeluTanh> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return tanh_gelu_forward(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    return {tanh_gelu_backward(grads[0], ctx->get_saved_variables()[0])};
  }
};

}  // namespace

torch::Tensor gelu_tanh(const torch::Tensor& x) {
  if (!uses_kernels(x)) return at::gelu(x, "tanh");
  return GeluTanh::apply(x);
}

}  // namespace difffit
