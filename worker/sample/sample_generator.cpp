#include "worker/sample/sample_generator.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>

#include "common/error.h"

namespace difffit {

at::Tensor to_uint8_images(const at::Tensor& samples) {
  return (127.5 * samples + 128.0).clamp(0, 255).to(at::kByte).permute({0, 2, 3, 1}).contiguous();
}

SampleResult generate_samples(DiTImpl& model, const SampleRequest& request,
                              const std::function<void(int64_t, int64_t)>& on_step) {
  const DiTConfig& config = model.config();
  const int64_t n = request.num;
  if (n <= 0) throw_usage("sample: --num must be positive");
  const bool use_cfg = request.cfg_scale > 1.0;
  if (use_cfg && config.class_dropout_prob <= 0) {
    throw_usage("sample: CFG needs a model with a null class (class_dropout_prob > 0)");
  }
  if (request.init_noise.defined()) {
    std::vector<int64_t> want = {n, config.in_channels, config.input_size, config.input_size};
    if (!request.init_noise.sizes().equals(want)) {
      throw_data("sample: init noise has shape " + c10::str(request.init_noise.sizes()) + ", expected " +
                 c10::str(at::IntArrayRef(want)));
    }
  }
  if (request.init_labels.defined() && request.init_labels.numel() &&
      (request.init_labels.size(0) != n || request.init_labels.min().item<int64_t>() < 0 ||
       request.init_labels.max().item<int64_t>() >= config.num_classes)) {
    throw_data("sample: labels must be N = " + std::to_string(n) + " values in 0.." +
               std::to_string(config.num_classes - 1));
  }

  DiffusionConfig diffusion_config;
  diffusion_config.timesteps = request.timesteps;
  diffusion_config.respacing = std::to_string(request.steps);
  diffusion_config.learned_variance = config.learn_sigma;
  GaussianDiffusion diffusion(diffusion_config);
  SamplerOptions options;
  options.kind = request.sampler;
  options.eta = request.eta;
  options.clip_denoised = request.clip_denoised;

  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(request.seed);
  const at::Device device(request.device);
  model.to(device);
  model.eval();
  torch::NoGradGuard no_grad;
  const int64_t batch = request.batch_size > 0 ? std::min(request.batch_size, n) : n;
  std::vector<at::Tensor> all_samples, all_labels;
  int64_t done = 0;
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t b = std::min(batch, n - start);
    const auto shape = std::vector<int64_t>{b, config.in_channels, config.input_size, config.input_size};
    // sample_ddp.py order: z first, then y.
    at::Tensor z = request.init_noise.defined() ? request.init_noise.narrow(0, start, b).contiguous()
                                                : at::randn(shape, generator, at::kFloat);
    at::Tensor y = request.init_labels.defined() && request.init_labels.numel()
                       ? request.init_labels.narrow(0, start, b).contiguous()
                       : at::randint(0, config.num_classes, {b}, generator, at::kLong);
    DenoiserFn denoiser;
    z = z.to(device);
    y = y.to(device);
    at::Tensor x_T = z;
    if (use_cfg) {
      x_T = at::cat({z, z});
      at::Tensor y2 = at::cat({y, at::full_like(y, model.null_class())});
      denoiser = [&model, y2, &request](const at::Tensor& x, const at::Tensor& t) {
        return model.forward_with_cfg(x, t, y2, request.cfg_scale, request.cfg_channels);
      };
    } else {
      denoiser = [&model, y](const at::Tensor& x, const at::Tensor& t) { return model.forward(x, t, y); };
    }
    at::Tensor out = sample_loop(diffusion, denoiser, x_T, options, generator, [&](int64_t step, int64_t steps) {
      if (on_step) on_step(done + b * step / steps, n);
    });
    done += b;
    all_samples.push_back((use_cfg ? out.narrow(0, 0, b) : out).cpu());
    all_labels.push_back(y.cpu());
  }
  return {at::cat(all_samples), at::cat(all_labels)};
}

}  // namespace difffit
