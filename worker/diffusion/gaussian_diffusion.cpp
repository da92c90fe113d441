#include "worker/diffusion/gaussian_diffusion.h"

#include <ATen/ATen.h>

#include <cmath>

#include "common/error.h"
#include "worker/diffusion/respacing.h"

namespace difffit {

at::Tensor linear_beta_schedule(int64_t timesteps) {
  // numpy.linspace(start, end, T): i * step + start, with the last entry exactly `end`.
  const double scale = 1000.0 / static_cast<double>(timesteps);
  const double start = scale * 0.0001, end = scale * 0.02;
  at::Tensor betas = at::empty({timesteps}, at::kDouble);
  auto b = betas.accessor<double, 1>();
  const double step = (end - start) / static_cast<double>(timesteps - 1);
  for (int64_t i = 0; i < timesteps; ++i) b[i] = static_cast<double>(i) * step + start;
  b[timesteps - 1] = end;
  return betas;
}

at::Tensor normal_kl(const at::Tensor& mean1, const at::Tensor& logvar1, const at::Tensor& mean2,
                     const at::Tensor& logvar2) {
  return 0.5 * (-1.0 + logvar2 - logvar1 + at::exp(logvar1 - logvar2) +
                (mean1 - mean2).pow(2) * at::exp(-logvar2));
}

namespace {
at::Tensor approx_standard_normal_cdf(const at::Tensor& x) {
  return 0.5 * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * at::pow(x, 3))));
}
}  // namespace

at::Tensor discretized_gaussian_log_likelihood(const at::Tensor& x, const at::Tensor& means,
                                               const at::Tensor& log_scales) {
  at::Tensor centered = x - means;
  at::Tensor inv_stdv = at::exp(-log_scales);
  at::Tensor cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0));
  at::Tensor cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0));
  at::Tensor log_cdf_plus = at::log(cdf_plus.clamp_min(1e-12));
  at::Tensor log_one_minus_cdf_min = at::log((1.0 - cdf_min).clamp_min(1e-12));
  at::Tensor cdf_delta = cdf_plus - cdf_min;
  return at::where(x < -0.999, log_cdf_plus,
                   at::where(x > 0.999, log_one_minus_cdf_min, at::log(cdf_delta.clamp_min(1e-12))));
}

at::Tensor mean_flat(const at::Tensor& x) {
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < x.dim(); ++d) dims.push_back(d);
  return x.mean(dims);
}

at::Tensor extract(const at::Tensor& table, const at::Tensor& t, int64_t ndim) {
  std::vector<int64_t> shape(ndim, 1);
  shape[0] = t.size(0);
  return table.index_select(0, t.to(at::kLong).cpu()).to(at::kFloat).to(t.device()).view(shape);
}

GaussianDiffusion::GaussianDiffusion(const DiffusionConfig& config) : config_(config) {
  if (config.timesteps < kMinLinearScheduleTimesteps || config.timesteps > kMaxTimesteps)
    throw_usage("diffusion: timesteps must be in " + std::to_string(kMinLinearScheduleTimesteps) + ".." +
                std::to_string(kMaxTimesteps) + " (the linear schedule's betas reach 20 / T)");
  // The reference always builds a SpacedDiffusion: even with every step kept, the betas
  // are recomputed from the cumulative products (which changes their last bits).
  at::Tensor base_betas = linear_beta_schedule(config.timesteps);
  at::Tensor base_abar = at::cumprod(1.0 - base_betas, 0);
  timestep_map_ = space_timesteps(config.timesteps, config.respacing);
  std::vector<double> new_betas;
  double last = 1.0;
  auto abar = base_abar.accessor<double, 1>();
  for (int64_t t : timestep_map_) {
    new_betas.push_back(1.0 - abar[t] / last);
    last = abar[t];
  }
  const int64_t K = static_cast<int64_t>(new_betas.size());
  betas = at::from_blob(new_betas.data(), {K}, at::kDouble).clone();
  at::Tensor alphas = 1.0 - betas;
  // Sequential cumulative product (numpy.cumprod order).
  alphas_cumprod = at::empty({K}, at::kDouble);
  {
    auto a = alphas.accessor<double, 1>();
    auto c = alphas_cumprod.accessor<double, 1>();
    double running = 1.0;
    for (int64_t i = 0; i < K; ++i) c[i] = running = running * a[i];
  }
  alphas_cumprod_prev = at::cat({at::ones({1}, at::kDouble), alphas_cumprod.narrow(0, 0, K - 1)});
  sqrt_alphas_cumprod = at::sqrt(alphas_cumprod);
  sqrt_one_minus_alphas_cumprod = at::sqrt(1.0 - alphas_cumprod);
  sqrt_recip_alphas_cumprod = at::sqrt(1.0 / alphas_cumprod);
  sqrt_recipm1_alphas_cumprod = at::sqrt(1.0 / alphas_cumprod - 1.0);
  posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod);
  // log(0) at t = 0 is replaced by the value at t = 1.
  posterior_log_variance_clipped =
      K > 1 ? at::log(at::cat({posterior_variance.narrow(0, 1, 1), posterior_variance.narrow(0, 1, K - 1)}))
            : at::log(posterior_variance.clamp_min(1e-20));
  posterior_mean_coef1 = betas * at::sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod);
  posterior_mean_coef2 = (1.0 - alphas_cumprod_prev) * at::sqrt(alphas) / (1.0 - alphas_cumprod);
}

at::Tensor GaussianDiffusion::model_timesteps(const at::Tensor& indices) const {
  at::Tensor map = at::tensor(timestep_map_, at::kLong).to(indices.device());
  return map.index_select(0, indices.to(at::kLong));
}

at::Tensor GaussianDiffusion::q_sample(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise) const {
  return extract(sqrt_alphas_cumprod, t, x0.dim()) * x0 + extract(sqrt_one_minus_alphas_cumprod, t, x0.dim()) * noise;
}

GaussianDiffusion::Posterior GaussianDiffusion::q_posterior(const at::Tensor& x0, const at::Tensor& xt,
                                                            const at::Tensor& t) const {
  const int64_t n = xt.dim();
  return {extract(posterior_mean_coef1, t, n) * x0 + extract(posterior_mean_coef2, t, n) * xt,
          extract(posterior_variance, t, n), extract(posterior_log_variance_clipped, t, n)};
}

at::Tensor GaussianDiffusion::predict_xstart_from_eps(const at::Tensor& xt, const at::Tensor& t,
                                                      const at::Tensor& eps) const {
  const int64_t n = xt.dim();
  return extract(sqrt_recip_alphas_cumprod, t, n) * xt - extract(sqrt_recipm1_alphas_cumprod, t, n) * eps;
}

at::Tensor GaussianDiffusion::predict_eps_from_xstart(const at::Tensor& xt, const at::Tensor& t,
                                                      const at::Tensor& x0) const {
  const int64_t n = xt.dim();
  return (extract(sqrt_recip_alphas_cumprod, t, n) * xt - x0) / extract(sqrt_recipm1_alphas_cumprod, t, n);
}

GaussianDiffusion::Prediction GaussianDiffusion::p_mean_variance(const at::Tensor& model_output,
                                                                 const at::Tensor& xt, const at::Tensor& t,
                                                                 bool clip_denoised) const {
  const int64_t c = xt.size(1), n = xt.dim();
  Prediction out;
  if (config_.learned_variance) {
    if (model_output.size(1) != 2 * c) {
      throw_data("diffusion: a learned-variance model must output " + std::to_string(2 * c) + " channels, got " +
                 std::to_string(model_output.size(1)));
    }
    out.eps = model_output.narrow(1, 0, c);
    at::Tensor v = model_output.narrow(1, c, c);
    at::Tensor min_log = extract(posterior_log_variance_clipped, t, n);
    at::Tensor max_log = extract(at::log(betas), t, n);
    at::Tensor frac = (v + 1) / 2;
    out.log_variance = frac * max_log + (1 - frac) * min_log;
    out.variance = at::exp(out.log_variance);
  } else {
    out.eps = model_output.narrow(1, 0, c);
    // Fixed-large variance: [posterior_variance[1], betas[1:]].
    at::Tensor large = at::cat({posterior_variance.narrow(0, 1, 1), betas.narrow(0, 1, betas.size(0) - 1)});
    out.variance = extract(large, t, n) * at::ones_like(xt);
    out.log_variance = extract(at::log(large), t, n) * at::ones_like(xt);
  }
  out.pred_xstart = predict_xstart_from_eps(xt, t, out.eps);
  if (clip_denoised) out.pred_xstart = out.pred_xstart.clamp(-1, 1);
  out.mean = q_posterior(out.pred_xstart, xt, t).mean;
  return out;
}

GaussianDiffusion::Losses GaussianDiffusion::training_losses(const at::Tensor& model_output,
                                                             const at::Tensor& x_start, const at::Tensor& x_t,
                                                             const at::Tensor& t, const at::Tensor& noise) const {
  const int64_t c = x_t.size(1);
  Losses losses;
  losses.mse = mean_flat((noise - model_output.narrow(1, 0, c)).pow(2));
  if (!config_.learned_variance) {
    losses.vb = at::zeros_like(losses.mse);
    losses.loss = losses.mse;
    return losses;
  }
  // VB with the mean frozen: gradients reach only the variance channels.
  at::Tensor frozen = at::cat({model_output.narrow(1, 0, c).detach(), model_output.narrow(1, c, c)}, 1);
  Posterior truth = q_posterior(x_start, x_t, t);
  Prediction p = p_mean_variance(frozen, x_t, t);
  at::Tensor kl = mean_flat(normal_kl(truth.mean, truth.log_variance_clipped, p.mean, p.log_variance)) / std::log(2.0);
  at::Tensor nll =
      mean_flat(-discretized_gaussian_log_likelihood(x_start, p.mean, 0.5 * p.log_variance)) / std::log(2.0);
  losses.vb = at::where(t == 0, nll, kl);
  losses.loss = losses.mse + losses.vb;
  return losses;
}

}  // namespace difffit
