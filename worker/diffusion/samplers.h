// DDPM and DDIM sampling loops of the reference (p_sample_loop, ddim_sample_loop),
// drawing noise in the same order so a seed reproduces the reference's samples.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <functional>

#include "worker/diffusion/gaussian_diffusion.h"
#include "worker/diffusion/sampler_kind.h"

namespace difffit {

// The denoiser: x_t and the ORIGINAL timesteps (already mapped from respaced indices).
using DenoiserFn = std::function<at::Tensor(const at::Tensor& x_t, const at::Tensor& model_t)>;
// Called after each step with (steps done, total steps).
using StepCallback = std::function<void(int64_t, int64_t)>;
// Each step's noise for a batch of the given shape, float32 on the CPU.
using StepNoiseFn = std::function<at::Tensor(at::IntArrayRef shape)>;


struct SamplerOptions {
  SamplerKind kind = SamplerKind::Ddpm;
  double eta = 0.0;            // DDIM stochasticity (0 = deterministic)
  bool clip_denoised = false;  // DiT samples without clipping x0
};

// Runs the reverse process from `noise` (x_T) to x_0, drawing each step's noise after the
// model call as the reference does.
at::Tensor sample_loop(const GaussianDiffusion& diffusion, const DenoiserFn& model, const at::Tensor& noise,
                       const SamplerOptions& options, const StepNoiseFn& step_noise,
                       const StepCallback& on_step = nullptr);
// ... with the step noise from `generator` (the default one when undefined), one
// randn_like(x) per step as the reference.
at::Tensor sample_loop(const GaussianDiffusion& diffusion, const DenoiserFn& model, const at::Tensor& noise,
                       const SamplerOptions& options, c10::optional<at::Generator> generator = c10::nullopt,
                       const StepCallback& on_step = nullptr);

// One reverse step at process index `index` (tests use it directly).
at::Tensor sample_step(const GaussianDiffusion& diffusion, const DenoiserFn& model, const at::Tensor& x,
                       int64_t index, const SamplerOptions& options, const at::Tensor& step_noise);

}  // namespace difffit
