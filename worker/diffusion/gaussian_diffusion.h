// Gaussian diffusion as DiT uses it (the ADM/IDDPM formulation): linear betas,
// epsilon prediction, learned-range variance, the hybrid loss, respaced processes.
// Tables are float64 and cast to float32 when gathered per timestep, as the reference.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

namespace difffit {

struct DiffusionConfig {
  int64_t timesteps = 1000;   // T of the base process
  std::string respacing;      // "" (all), "250", "ddim50", "10,20,..." (see respacing.h)
  bool learned_variance = true;  // the model predicts v (learn_sigma); else fixed-large variance
};

// The linear schedule's largest beta is its last, 0.02 * 1000 / T. Every beta must be below 1
// (alpha_t = 1 - beta_t > 0) or training diverges at once, so T > 20.
constexpr int64_t kMinLinearScheduleTimesteps = 21;
// Keeps a typo from allocating the machine away (a schedule of 10^9 steps takes tens of GB).
constexpr int64_t kMaxTimesteps = 1000000;

// Reference helpers, exposed for tests.
at::Tensor linear_beta_schedule(int64_t timesteps);  // float64
at::Tensor normal_kl(const at::Tensor& mean1, const at::Tensor& logvar1, const at::Tensor& mean2,
                     const at::Tensor& logvar2);
at::Tensor discretized_gaussian_log_likelihood(const at::Tensor& x, const at::Tensor& means,
                                               const at::Tensor& log_scales);
at::Tensor mean_flat(const at::Tensor& x);  // mean over every dim but the first

class GaussianDiffusion {
 public:
  explicit GaussianDiffusion(const DiffusionConfig& config);

  int64_t num_steps() const { return static_cast<int64_t>(timestep_map_.size()); }
  const std::vector<int64_t>& timestep_map() const { return timestep_map_; }
  // Indices of this (possibly respaced) process -> the original timesteps the model sees.
  at::Tensor model_timesteps(const at::Tensor& indices) const;

  at::Tensor q_sample(const at::Tensor& x_start, const at::Tensor& t, const at::Tensor& noise) const;

  struct Posterior {
    at::Tensor mean, variance, log_variance_clipped;
  };
  Posterior q_posterior(const at::Tensor& x_start, const at::Tensor& x_t, const at::Tensor& t) const;

  struct Prediction {
    at::Tensor mean, variance, log_variance, pred_xstart, eps;
  };
  // From the raw model output (eps [, v]) at x_t; clip_denoised clamps x0 to [-1, 1].
  Prediction p_mean_variance(const at::Tensor& model_output, const at::Tensor& x_t, const at::Tensor& t,
                             bool clip_denoised = false) const;

  at::Tensor predict_xstart_from_eps(const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& eps) const;
  at::Tensor predict_eps_from_xstart(const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& x0) const;

  struct Losses {
    at::Tensor mse, vb, loss;  // per sample
  };
  // The hybrid loss: mse on eps + VB in bits with eps detached (only v learns from VB).
  Losses training_losses(const at::Tensor& model_output, const at::Tensor& x_start, const at::Tensor& x_t,
                         const at::Tensor& t, const at::Tensor& noise) const;

  // Per-step tables (float64, one entry per step of this process).
  at::Tensor betas, alphas_cumprod, alphas_cumprod_prev, sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod,
      sqrt_recip_alphas_cumprod, sqrt_recipm1_alphas_cumprod, posterior_variance,
      posterior_log_variance_clipped, posterior_mean_coef1, posterior_mean_coef2;

  const DiffusionConfig& config() const { return config_; }

 private:
  DiffusionConfig config_;
  std::vector<int64_t> timestep_map_;
};

// table[t] as float32, shaped (N, 1, 1, ...) to broadcast over x.
at::Tensor extract(const at::Tensor& table, const at::Tensor& t, int64_t ndim);

}  // namespace difffit
