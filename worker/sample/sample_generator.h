// Generates samples from a DiT the way the reference's sample.py does: noise and
// labels from one seeded generator, CFG on a doubled batch, the first half kept.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>

#include "worker/diffusion/gaussian_diffusion.h"
#include "worker/diffusion/samplers.h"
#include "worker/model/dit.h"

namespace difffit {

struct SampleRequest {
  int64_t num = 16;                 // how many samples
  SamplerKind sampler = SamplerKind::Ddpm;
  int64_t steps = 250;              // respacing "K": K steps, first and last included
  double cfg_scale = 1.0;           // guidance is used when > 1, as the reference
  CfgChannels cfg_channels = CfgChannels::Reference;
  double eta = 0.0;                 // DDIM eta
  bool clip_denoised = false;       // clamp each predicted x0 to [-1, 1] (ADM's pixel-space default)
  uint64_t seed = 0;                // noise and labels
  int64_t batch_size = 0;           // 0 = all at once; batches draw from one generator in order
  int64_t timesteps = 1000;         // T of the base process
  at::Tensor init_noise;            // optional (N,C,H,W): x_T instead of drawn noise
  at::Tensor init_labels;           // optional (N): labels instead of drawn ones
  std::string device = "cpu";       // where the model runs (it is moved there)
};

struct SampleResult {
  at::Tensor latents;  // float32 (N,C,H,W), the model-space samples
  at::Tensor labels;   // int64 (N)
};

// `on_progress(samples_done, total)` after every sampler step batch.
SampleResult generate_samples(DiTImpl& model, const SampleRequest& request,
                              const std::function<void(int64_t, int64_t)>& on_step = nullptr);

// Model space [-1, 1] -> uint8 (N,H,W,C): clamp(127.5 x + 128, 0, 255), truncated.
at::Tensor to_uint8_images(const at::Tensor& samples);

}  // namespace difffit
