// The Stable Diffusion autoencoder (diffusers' AutoencoderKL, as stabilityai/sd-vae-ft-ema
// and -mse), with module and parameter names equal to diffusers' state-dict keys
// (encoder.*, decoder.*, quant_conv, post_quant_conv), so its weight files load by key
// (worker/model/vae_loader.h).
//
// DiT trains on latents = posterior sample * scaling_factor of images in [-1, 1];
// samples are decoded with decode(z) = decoder(z / scaling_factor).
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "worker/model/vae_config.h"
#include "worker/model/vae_layers.h"

namespace difffit {

// conv_in, down_blocks, mid_block, conv_norm_out, SiLU, conv_out (2 x latent channels).
class VaeEncoderImpl : public torch::nn::Module {
 public:
  explicit VaeEncoderImpl(const VaeConfig& config);
  torch::Tensor forward(torch::Tensor x);  // (N, in, H, W) -> (N, 2z, H/f, W/f): mean and logvar
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  std::vector<VaeDownBlock> down_blocks;
  VaeMidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VaeEncoder);

// conv_in, mid_block, up_blocks (channels reversed, one more resnet each), conv_norm_out, SiLU, conv_out.
class VaeDecoderImpl : public torch::nn::Module {
 public:
  explicit VaeDecoderImpl(const VaeConfig& config);
  torch::Tensor forward(torch::Tensor z);  // (N, z, h, w) -> (N, out, h*f, w*f)
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  VaeMidBlock mid_block{nullptr};
  std::vector<VaeUpBlock> up_blocks;
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VaeDecoder);

// The diagonal Gaussian posterior q(z | x): logvar already clamped to [-30, 20].
struct VaePosterior {
  at::Tensor mean;    // (N, z, h, w)
  at::Tensor logvar;  // (N, z, h, w)
};

// How encode/decode run: inputs are split into batches, each moved to the module's
// device and back (results are float32 on the CPU), under NoGradGuard.
struct VaeRunOptions {
  int64_t batch_size = 8;  // images per forward pass (memory grows with it: ~0.2 GB per 256 px image on decode)
  bool bf16 = false;       // bf16 autocast (faster, not bit-exact); float32 otherwise
};

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  // Weights stay as LibTorch's default initialisation: load a file (vae_loader.h) for real use.
  explicit AutoencoderKLImpl(const VaeConfig& config);

  // x: images in [-1, 1] (N, in, H, W), H and W multiples of downsample_factor().
  VaePosterior encode(const at::Tensor& x);
  // mean + exp(0.5 logvar) * noise, times scaling_factor; the noise is one randn of the
  // latents' shape drawn from `generator` (a CPU generator), so a seed fixes the result.
  at::Tensor sample_latents(const at::Tensor& x, at::Generator& generator);
  // Scaled latents (N, z, h, w) -> images (N, out, h*f, w*f), about [-1, 1] (not clamped).
  at::Tensor decode(const at::Tensor& latents);

  const VaeConfig& config() const { return config_; }
  VaeRunOptions& run_options() { return run_options_; }

  VaeEncoder encoder{nullptr};
  VaeDecoder decoder{nullptr};
  torch::nn::Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};  // null when the config has none

 private:
  VaePosterior encode_batch(const at::Tensor& x);
  at::Tensor decode_batch(const at::Tensor& z);

  VaeConfig config_;
  VaeRunOptions run_options_;
};
TORCH_MODULE(AutoencoderKL);

// A posterior sample times `scale`: mean + exp(0.5 logvar) * randn (drawn on the CPU from `generator`).
at::Tensor sample_posterior(const VaePosterior& posterior, at::Generator& generator, double scale);

}  // namespace difffit
