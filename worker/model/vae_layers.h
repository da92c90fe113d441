// The building blocks of the SD autoencoder, registered under diffusers' state-dict
// names: ResnetBlock2D (norm1, conv1, norm2, conv2, conv_shortcut), the mid-block
// self-attention (group_norm, to_q, to_k, to_v, to_out.0), Downsample2D / Upsample2D
// (`conv`), DownEncoderBlock2D / UpDecoderBlock2D (resnets, downsamplers / upsamplers)
// and UNetMidBlock2D (resnets, attentions).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <vector>

namespace difffit {

// GroupNorm in float32 whatever the input's dtype (under bf16 autocast the convolutions
// produce bf16, and LibTorch 1.13's CPU group_norm does not take bf16 with float weights).
torch::Tensor group_norm_f32(torch::nn::GroupNorm norm, const torch::Tensor& x);

// norm1 -> SiLU -> conv1 -> norm2 -> SiLU -> conv2, plus the input (through a 1x1
// conv_shortcut when the channel count changes). Dropout is 0 in the SD VAE.
class VaeResnetBlockImpl : public torch::nn::Module {
 public:
  VaeResnetBlockImpl(int64_t in_channels, int64_t out_channels, int64_t groups, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};  // shortcut may stay null
};
TORCH_MODULE(VaeResnetBlock);

// Single-head self-attention over the H*W positions, with a residual connection.
class VaeAttentionImpl : public torch::nn::Module {
 public:
  VaeAttentionImpl(int64_t channels, int64_t groups, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::GroupNorm group_norm{nullptr};
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, out_proj{nullptr};  // out_proj = to_out.0
  torch::nn::ModuleList to_out{nullptr};
};
TORCH_MODULE(VaeAttention);

// Zero pad (left 0, right 1, top 0, bottom 1), then a 3x3 conv with stride 2.
class VaeDownsampleImpl : public torch::nn::Module {
 public:
  explicit VaeDownsampleImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(VaeDownsample);

// Nearest-neighbour x2, then a 3x3 conv.
class VaeUpsampleImpl : public torch::nn::Module {
 public:
  explicit VaeUpsampleImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(VaeUpsample);

// resnets[0..n) then, unless it is the last block, downsamplers[0].
class VaeDownBlockImpl : public torch::nn::Module {
 public:
  VaeDownBlockImpl(int64_t in_channels, int64_t out_channels, int64_t num_layers, bool downsample, int64_t groups,
                   double eps);
  torch::Tensor forward(torch::Tensor x);
  std::vector<VaeResnetBlock> resnet_list;
  VaeDownsample downsampler{nullptr};
};
TORCH_MODULE(VaeDownBlock);

// resnets[0..n) then, unless it is the last block, upsamplers[0].
class VaeUpBlockImpl : public torch::nn::Module {
 public:
  VaeUpBlockImpl(int64_t in_channels, int64_t out_channels, int64_t num_layers, bool upsample, int64_t groups,
                 double eps);
  torch::Tensor forward(torch::Tensor x);
  std::vector<VaeResnetBlock> resnet_list;
  VaeUpsample upsampler{nullptr};
};
TORCH_MODULE(VaeUpBlock);

// resnets[0], attentions[0] (optional), resnets[1].
class VaeMidBlockImpl : public torch::nn::Module {
 public:
  VaeMidBlockImpl(int64_t channels, bool attention, int64_t groups, double eps);
  torch::Tensor forward(torch::Tensor x);
  VaeResnetBlock first{nullptr}, second{nullptr};
  VaeAttention attention{nullptr};
};
TORCH_MODULE(VaeMidBlock);

}  // namespace difffit
