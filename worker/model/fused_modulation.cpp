#include "worker/model/fused_modulation.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <vector>

#include "worker/model/kernel_support.h"

namespace difffit {
namespace {

constexpr double kNormEps = 1e-6;

bool cpu_float(const torch::Tensor& t) {
  return !t.defined() || (t.device().is_cpu() && t.scalar_type() == at::kFloat);
}

// The shapes the kernels index: x (B, N, C), per-sample vectors (B, C), gamma (C).
bool kernel_shapes(const torch::Tensor& x, std::initializer_list<torch::Tensor> per_sample,
                   const torch::Tensor& gamma = {}) {
  if (x.dim() != 3) return false;
  for (const auto& v : per_sample) {
    if (v.dim() != 2 || v.size(0) != x.size(0) || v.size(1) != x.size(2)) return false;
  }
  return !gamma.defined() || (gamma.dim() == 1 && gamma.size(0) == x.size(2));
}

// y = n * (1 + scale) + shift for one sample's tokens; t1 holds 1 + scale.
DIFFFIT_CPU_CLONES
void modulate_rows(const float* n, const float* t1, const float* shift, float* y, int64_t tokens, int64_t c) {
  for (int64_t i = 0; i < tokens; ++i) {
    const float* row = n + i * c;
    float* out = y + i * c;
    for (int64_t j = 0; j < c; ++j) out[j] = row[j] * t1[j] + shift[j];
  }
}

// One sample: dn = g * (1 + scale), dscale += g * n, dshift += g, with n = (x - mean) * rstd.
DIFFFIT_CPU_CLONES
void modulate_backward_rows(const float* g, const float* x, const float* mean, const float* rstd, const float* t1,
                            float* dn, float* dscale, float* dshift, int64_t tokens, int64_t c) {
  for (int64_t i = 0; i < tokens; ++i) {
    const float* grow = g + i * c;
    const float* xrow = x + i * c;
    float* drow = dn + i * c;
    const float m = mean[i], r = rstd[i];
    for (int64_t j = 0; j < c; ++j) {
      const float gv = grow[j];
      drow[j] = gv * t1[j];
      dscale[j] += gv * ((xrow[j] - m) * r);
      dshift[j] += gv;
    }
  }
}

// out = x + (gate * a) [* gamma] for one sample's tokens.
DIFFFIT_CPU_CLONES
void residual_rows(const float* x, const float* gate, const float* a, const float* gamma, float* out, int64_t tokens,
                   int64_t c) {
  for (int64_t i = 0; i < tokens; ++i) {
    const float* xrow = x + i * c;
    const float* arow = a + i * c;
    float* orow = out + i * c;
    if (gamma) {
      for (int64_t j = 0; j < c; ++j) orow[j] = xrow[j] + (gate[j] * arow[j]) * gamma[j];
    } else {
      for (int64_t j = 0; j < c; ++j) orow[j] = xrow[j] + gate[j] * arow[j];
    }
  }
}

// One sample: with h = g [* gamma]: da = h * gate, dgate += h * a, dgamma += g * (gate * a).
DIFFFIT_CPU_CLONES
void residual_backward_rows(const float* g, const float* gate, const float* a, const float* gamma, float* da,
                            float* dgate, float* dgamma, int64_t tokens, int64_t c) {
  for (int64_t i = 0; i < tokens; ++i) {
    const float* grow = g + i * c;
    const float* arow = a + i * c;
    float* drow = da + i * c;
    if (gamma) {
      for (int64_t j = 0; j < c; ++j) {
        const float h = grow[j] * gamma[j];
        drow[j] = h * gate[j];
        dgate[j] += h * arow[j];
        dgamma[j] += grow[j] * (gate[j] * arow[j]);
      }
    } else {
      for (int64_t j = 0; j < c; ++j) {
        drow[j] = grow[j] * gate[j];
        dgate[j] += grow[j] * arow[j];
      }
    }
  }
}

// fn(b) for every sample b, the samples split over the intra-op threads.
template <typename Fn>
void for_each_sample(int64_t batch, const Fn& fn) {
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) fn(b);
  });
}

struct Dims {
  int64_t batch, tokens, channels;
  explicit Dims(const torch::Tensor& x) : batch(x.size(0)), tokens(x.size(1)), channels(x.size(2)) {}
};

struct NormModulate : public torch::autograd::Function<NormModulate> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& shift_in, const torch::Tensor& scale_in) {
    const torch::Tensor x = x_in.contiguous(), shift = shift_in.contiguous();
    const torch::Tensor t1 = 1 + scale_in.contiguous();  // as the reference: 1 + scale, then the product
    auto [n, mean, rstd] = at::native_layer_norm(x, {x.size(-1)}, {}, {}, kNormEps);
    const Dims d(x);
    torch::Tensor y = at::empty_like(x);
    const float *pn = n.data_ptr<float>(), *pt = t1.data_ptr<float>(), *ps = shift.data_ptr<float>();
    float* py = y.data_ptr<float>();
    const int64_t plane = d.tokens * d.channels;
    for_each_sample(d.batch, [&](int64_t b) {
      modulate_rows(pn + b * plane, pt + b * d.channels, ps + b * d.channels, py + b * plane, d.tokens, d.channels);
    });
    ctx->save_for_backward({x, mean, rstd, t1});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &mean = saved[1], &rstd = saved[2], &t1 = saved[3];
    const torch::Tensor g = grads[0].contiguous();
    const Dims d(x);
    torch::Tensor dn = at::empty_like(x);
    torch::Tensor dscale = at::zeros({d.batch, d.channels}, x.options());
    torch::Tensor dshift = at::zeros({d.batch, d.channels}, x.options());
    const float *pg = g.data_ptr<float>(), *px = x.data_ptr<float>(), *pm = mean.data_ptr<float>(),
                *pr = rstd.data_ptr<float>(), *pt = t1.data_ptr<float>();
    float *pdn = dn.data_ptr<float>(), *pdscale = dscale.data_ptr<float>(), *pdshift = dshift.data_ptr<float>();
    const int64_t plane = d.tokens * d.channels;
    for_each_sample(d.batch, [&](int64_t b) {
      modulate_backward_rows(pg + b * plane, px + b * plane, pm + b * d.tokens, pr + b * d.tokens,
                             pt + b * d.channels, pdn + b * plane, pdscale + b * d.channels,
                             pdshift + b * d.channels, d.tokens, d.channels);
    });
    torch::Tensor dx = std::get<0>(at::native_layer_norm_backward(dn, x, {d.channels}, mean, rstd, {}, {},
                                                                  {true, false, false}));
    return {dx, dshift, dscale};
  }
};

struct GatedResidual : public torch::autograd::Function<GatedResidual> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& gate_in, const torch::Tensor& branch_in,
                               const torch::Tensor& gamma_in) {
    const torch::Tensor x = x_in.contiguous(), gate = gate_in.contiguous(), a = branch_in.contiguous();
    const torch::Tensor gamma = gamma_in.numel() ? gamma_in.contiguous() : torch::Tensor();
    const Dims d(x);
    torch::Tensor out = at::empty_like(x);
    const float *px = x.data_ptr<float>(), *pgate = gate.data_ptr<float>(), *pa = a.data_ptr<float>();
    const float* pgamma = gamma.defined() ? gamma.data_ptr<float>() : nullptr;
    float* pout = out.data_ptr<float>();
    const int64_t plane = d.tokens * d.channels;
    for_each_sample(d.batch, [&](int64_t b) {
      residual_rows(px + b * plane, pgate + b * d.channels, pa + b * plane, pgamma, pout + b * plane, d.tokens,
                    d.channels);
    });
    ctx->save_for_backward({gate, a, gamma});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &gate = saved[0], &a = saved[1], &gamma = saved[2];
    const torch::Tensor g = grads[0].contiguous();
    const Dims d(a);
    torch::Tensor da = at::empty_like(a);
    torch::Tensor dgate = at::zeros({d.batch, d.channels}, a.options());
    // Per-sample partial sums of gamma's gradient, added up after the parallel loop.
    torch::Tensor dgamma_rows = gamma.defined() ? at::zeros({d.batch, d.channels}, a.options()) : torch::Tensor();
    const float *pg = g.data_ptr<float>(), *pgate = gate.data_ptr<float>(), *pa = a.data_ptr<float>();
    const float* pgamma = gamma.defined() ? gamma.data_ptr<float>() : nullptr;
    float *pda = da.data_ptr<float>(), *pdgate = dgate.data_ptr<float>();
    float* pdgamma = gamma.defined() ? dgamma_rows.data_ptr<float>() : nullptr;
    const int64_t plane = d.tokens * d.channels;
    for_each_sample(d.batch, [&](int64_t b) {
      residual_backward_rows(pg + b * plane, pgate + b * d.channels, pa + b * plane, pgamma, pda + b * plane,
                             pdgate + b * d.channels, pdgamma ? pdgamma + b * d.channels : nullptr, d.tokens,
                             d.channels);
    });
    return {grads[0], dgate, da, gamma.defined() ? dgamma_rows.sum(0) : torch::Tensor()};
  }
};

}  // namespace

torch::Tensor norm_modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale) {
  if (!cpu_float(x) || !cpu_float(shift) || !cpu_float(scale) || !kernel_shapes(x, {shift, scale})) {
    return at::layer_norm(x, {x.size(-1)}, {}, {}, kNormEps) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
  }
  return NormModulate::apply(x, shift, scale);
}

torch::Tensor gated_residual(const torch::Tensor& x, const torch::Tensor& gate, const torch::Tensor& branch,
                             const torch::Tensor& gamma) {
  if (!cpu_float(x) || !cpu_float(gate) || !cpu_float(branch) || !cpu_float(gamma) ||
      !kernel_shapes(x, {gate}, gamma) || !branch.sizes().equals(x.sizes())) {
    torch::Tensor b = gate.unsqueeze(1) * branch;
    if (gamma.defined()) b = b * gamma;
    return x + b;
  }
  // An autograd function's inputs must be defined tensors: no gamma travels as an empty one.
  return GatedResidual::apply(x, gate, branch, gamma.defined() ? gamma : at::empty({0}, x.options()));
}

}  // namespace difffit
