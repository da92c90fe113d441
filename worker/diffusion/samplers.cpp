#include "worker/diffusion/samplers.h"

#include <ATen/ATen.h>

#include "common/error.h"

namespace difffit {

SamplerKind parse_sampler(const std::string& name, const std::string& where) {
  if (name == "ddpm") return SamplerKind::Ddpm;
  if (name == "ddim") return SamplerKind::Ddim;
  throw_config(where + ": unknown sampler '" + name + "' (expected ddpm or ddim)");
}

std::string sampler_name(SamplerKind sampler) { return sampler == SamplerKind::Ddim ? "ddim" : "ddpm"; }

at::Tensor sample_step(const GaussianDiffusion& diffusion, const DenoiserFn& model, const at::Tensor& x,
                       int64_t index, const SamplerOptions& options, const at::Tensor& step_noise) {
  const int64_t n = x.dim();
  at::Tensor t = at::full({x.size(0)}, index, at::TensorOptions().dtype(at::kLong).device(x.device()));
  at::Tensor output = model(x, diffusion.model_timesteps(t));
  GaussianDiffusion::Prediction p = diffusion.p_mean_variance(output, x, t, options.clip_denoised);
  std::vector<int64_t> mask_shape(n, 1);
  mask_shape[0] = x.size(0);
  at::Tensor nonzero = (t != 0).to(at::kFloat).view(mask_shape);
  if (options.kind == SamplerKind::Ddpm) {
    return p.mean + nonzero * at::exp(0.5 * p.log_variance) * step_noise;
  }
  at::Tensor eps = diffusion.predict_eps_from_xstart(x, t, p.pred_xstart);
  at::Tensor abar = extract(diffusion.alphas_cumprod, t, n);
  at::Tensor abar_prev = extract(diffusion.alphas_cumprod_prev, t, n);
  at::Tensor sigma = options.eta * at::sqrt((1 - abar_prev) / (1 - abar)) * at::sqrt(1 - abar / abar_prev);
  at::Tensor mean = p.pred_xstart * at::sqrt(abar_prev) + at::sqrt(1 - abar_prev - sigma.pow(2)) * eps;
  return mean + nonzero * sigma * step_noise;
}

at::Tensor sample_loop(const GaussianDiffusion& diffusion, const DenoiserFn& model, const at::Tensor& noise,
                       const SamplerOptions& options, const StepNoiseFn& step_noise, const StepCallback& on_step) {
  at::Tensor x = noise;
  const int64_t steps = diffusion.num_steps();
  for (int64_t i = steps - 1; i >= 0; --i) {
    at::Tensor next;
    {
      // The reference draws the step noise after the model call; same order here.
      at::Tensor t = at::full({x.size(0)}, i, at::TensorOptions().dtype(at::kLong).device(x.device()));
      at::Tensor output = model(x, diffusion.model_timesteps(t));
      // Drawn on the CPU so a seed gives the same samples on every device.
      at::Tensor z = step_noise(x.sizes()).to(x.device(), x.scalar_type());
      DenoiserFn cached = [&output](const at::Tensor&, const at::Tensor&) { return output; };
      next = sample_step(diffusion, cached, x, i, options, z);
    }
    x = next;
    if (on_step) on_step(steps - i, steps);
  }
  return x;
}

at::Tensor sample_loop(const GaussianDiffusion& diffusion, const DenoiserFn& model, const at::Tensor& noise,
                       const SamplerOptions& options, c10::optional<at::Generator> generator,
                       const StepCallback& on_step) {
  StepNoiseFn from_generator = [&generator](at::IntArrayRef shape) {
    return at::randn(shape, generator, at::TensorOptions().dtype(at::kFloat));
  };
  return sample_loop(diffusion, model, noise, options, from_generator, on_step);
}

}  // namespace difffit
