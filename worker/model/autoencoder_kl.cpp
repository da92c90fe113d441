#include "worker/model/autoencoder_kl.h"

#include <ATen/ATen.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "common/error.h"
#include "worker/model/autocast_guard.h"

namespace difffit {
namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t padding) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).padding(padding).bias(true));
}

torch::nn::GroupNorm norm(const VaeConfig& c, int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(c.norm_num_groups, channels).eps(c.norm_eps));
}

// `input` in batches of rows, each moved to `device` and run through `fn`; every output of `fn` is
// concatenated over the batches, float32 on the CPU.
template <typename Fn>
std::vector<at::Tensor> in_batches(const at::Tensor& input, int64_t batch_size, const at::Device& device, Fn fn) {
  std::vector<std::vector<at::Tensor>> parts;
  const int64_t n = input.size(0), step = std::max<int64_t>(1, batch_size);
  if (n == 0) throw_data("VAE: empty input (no images or latents)");
  for (int64_t start = 0; start < n; start += step) {
    at::Tensor batch = input.narrow(0, start, std::min(step, n - start)).to(device, at::kFloat);
    std::vector<at::Tensor> outs = fn(batch);
    if (parts.empty()) parts.resize(outs.size());
    for (size_t i = 0; i < outs.size(); ++i) parts[i].push_back(outs[i].to(at::kCPU, at::kFloat));
  }
  std::vector<at::Tensor> result;
  for (auto& p : parts) result.push_back(at::cat(p));
  return result;
}

}  // namespace

VaeEncoderImpl::VaeEncoderImpl(const VaeConfig& c) {
  const auto& ch = c.block_out_channels;
  conv_in = register_module("conv_in", conv(c.in_channels, ch.front(), 3, 1));
  torch::nn::ModuleList blocks;
  int64_t channels = ch.front();
  for (size_t i = 0; i < ch.size(); ++i) {
    const bool last = i + 1 == ch.size();
    down_blocks.emplace_back(channels, ch[i], c.layers_per_block, !last, c.norm_num_groups, c.norm_eps);
    blocks->push_back(down_blocks.back());
    channels = ch[i];
  }
  register_module("down_blocks", blocks);
  mid_block = register_module("mid_block", VaeMidBlock(ch.back(), c.mid_block_attention, c.norm_num_groups, c.norm_eps));
  conv_norm_out = register_module("conv_norm_out", norm(c, ch.back()));
  conv_out = register_module("conv_out", conv(ch.back(), 2 * c.latent_channels, 3, 1));
}

torch::Tensor VaeEncoderImpl::forward(torch::Tensor x) {
  x = conv_in->forward(x);
  for (auto& block : down_blocks) x = block->forward(x);
  x = mid_block->forward(x);
  return conv_out->forward(at::silu(group_norm_f32(conv_norm_out, x)));
}

VaeDecoderImpl::VaeDecoderImpl(const VaeConfig& c) {
  const std::vector<int64_t> reversed(c.block_out_channels.rbegin(), c.block_out_channels.rend());
  conv_in = register_module("conv_in", conv(c.latent_channels, reversed.front(), 3, 1));
  mid_block =
      register_module("mid_block", VaeMidBlock(reversed.front(), c.mid_block_attention, c.norm_num_groups, c.norm_eps));
  torch::nn::ModuleList blocks;
  int64_t channels = reversed.front();
  for (size_t i = 0; i < reversed.size(); ++i) {
    const bool last = i + 1 == reversed.size();
    up_blocks.emplace_back(channels, reversed[i], c.layers_per_block + 1, !last, c.norm_num_groups, c.norm_eps);
    blocks->push_back(up_blocks.back());
    channels = reversed[i];
  }
  register_module("up_blocks", blocks);
  conv_norm_out = register_module("conv_norm_out", norm(c, reversed.back()));
  conv_out = register_module("conv_out", conv(reversed.back(), c.out_channels, 3, 1));
}

torch::Tensor VaeDecoderImpl::forward(torch::Tensor z) {
  z = conv_in->forward(z);
  z = mid_block->forward(z);
  for (auto& block : up_blocks) z = block->forward(z);
  return conv_out->forward(at::silu(group_norm_f32(conv_norm_out, z)));
}

AutoencoderKLImpl::AutoencoderKLImpl(const VaeConfig& config) : config_(config) {
  config_.validate();
  encoder = register_module("encoder", VaeEncoder(config_));
  decoder = register_module("decoder", VaeDecoder(config_));
  const int64_t z = config_.latent_channels;
  if (config_.use_quant_conv) quant_conv = register_module("quant_conv", conv(2 * z, 2 * z, 1, 0));
  if (config_.use_post_quant_conv) post_quant_conv = register_module("post_quant_conv", conv(z, z, 1, 0));
}

VaePosterior AutoencoderKLImpl::encode_batch(const at::Tensor& x) {
  at::Tensor moments = encoder->forward(x);
  if (quant_conv) moments = quant_conv->forward(moments);
  moments = moments.to(at::kFloat);
  std::vector<at::Tensor> halves = moments.chunk(2, 1);
  return {halves[0], halves[1].clamp(-30.0, 20.0)};
}

at::Tensor AutoencoderKLImpl::decode_batch(const at::Tensor& z) {
  at::Tensor h = z / config_.scaling_factor;
  if (post_quant_conv) h = post_quant_conv->forward(h);
  return decoder->forward(h).to(at::kFloat);
}

VaePosterior AutoencoderKLImpl::encode(const at::Tensor& x) {
  const int64_t f = config_.downsample_factor();
  if (x.dim() != 4 || x.size(1) != config_.in_channels || x.size(2) % f != 0 || x.size(3) % f != 0) {
    throw_data("VAE encode: input of shape " + c10::str(x.sizes()) + ", expected (N, " +
               std::to_string(config_.in_channels) + ", H, W) with H and W multiples of " + std::to_string(f));
  }
  torch::NoGradGuard no_grad;
  const at::Device device = encoder->conv_in->weight.device();
  std::vector<at::Tensor> out = in_batches(x, run_options_.batch_size, device, [&](const at::Tensor& batch) {
    AutocastGuard autocast(run_options_.bf16, device.type());
    VaePosterior p = encode_batch(batch);
    return std::vector<at::Tensor>{p.mean, p.logvar};
  });
  return {out[0], out[1]};
}

at::Tensor AutoencoderKLImpl::sample_latents(const at::Tensor& x, at::Generator& generator) {
  return sample_posterior(encode(x), generator, config_.scaling_factor);
}

at::Tensor AutoencoderKLImpl::decode(const at::Tensor& latents) {
  if (latents.dim() != 4 || latents.size(1) != config_.latent_channels) {
    throw_data("VAE decode: latents of shape " + c10::str(latents.sizes()) + ", expected (N, " +
               std::to_string(config_.latent_channels) + ", h, w)");
  }
  torch::NoGradGuard no_grad;
  const at::Device device = decoder->conv_in->weight.device();
  return in_batches(latents, run_options_.batch_size, device, [&](const at::Tensor& batch) {
           AutocastGuard autocast(run_options_.bf16, device.type());
           return std::vector<at::Tensor>{decode_batch(batch)};
         })
      .front();
}

at::Tensor sample_posterior(const VaePosterior& posterior, at::Generator& generator, double scale) {
  at::Tensor noise = at::randn(posterior.mean.sizes(), generator, at::TensorOptions().dtype(at::kFloat));
  at::Tensor std = at::exp(0.5 * posterior.logvar);
  return (posterior.mean + std * noise.to(posterior.mean.device())) * scale;
}

}  // namespace difffit
