#include "worker/model/vae_layers.h"

#include <ATen/ATen.h>

#include <cmath>

#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

namespace difffit {
namespace {

torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels, double eps) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(eps).affine(true));
}

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(true));
}

torch::nn::Linear linear(int64_t channels) {
  return torch::nn::Linear(torch::nn::LinearOptions(channels, channels).bias(true));
}

// softmax(q k^T / sqrt(d)) v over (B, T, d) tensors.
torch::Tensor single_head_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v);  // fused kernel where available
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  torch::Tensor scores = at::baddbmm(at::empty({q.size(0), q.size(1), k.size(1)}, q.options()), q,
                                     k.transpose(1, 2), /*beta=*/0.0, /*alpha=*/scale);
  return at::bmm(scores.softmax(-1, at::kFloat).to(v.scalar_type()), v);  // softmax in float32, as diffusers
#endif
}

}  // namespace

torch::Tensor group_norm_f32(torch::nn::GroupNorm norm, const torch::Tensor& x) {
  return norm->forward(x.scalar_type() == at::kFloat ? x : x.to(at::kFloat));
}

VaeResnetBlockImpl::VaeResnetBlockImpl(int64_t in_channels, int64_t out_channels, int64_t groups, double eps) {
  norm1 = register_module("norm1", group_norm(groups, in_channels, eps));
  conv1 = register_module("conv1", conv(in_channels, out_channels, 3, 1, 1));
  norm2 = register_module("norm2", group_norm(groups, out_channels, eps));
  conv2 = register_module("conv2", conv(out_channels, out_channels, 3, 1, 1));
  if (in_channels != out_channels) conv_shortcut = register_module("conv_shortcut", conv(in_channels, out_channels, 1));
}

torch::Tensor VaeResnetBlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = conv1->forward(at::silu(group_norm_f32(norm1, x)));
  h = conv2->forward(at::silu(group_norm_f32(norm2, h)));
  return (conv_shortcut ? conv_shortcut->forward(x) : x) + h;
}

VaeAttentionImpl::VaeAttentionImpl(int64_t channels, int64_t groups, double eps) {
  group_norm = register_module("group_norm", difffit::group_norm(groups, channels, eps));
  to_q = register_module("to_q", linear(channels));
  to_k = register_module("to_k", linear(channels));
  to_v = register_module("to_v", linear(channels));
  out_proj = linear(channels);
  to_out = register_module("to_out", torch::nn::ModuleList(out_proj));
}

torch::Tensor VaeAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  torch::Tensor tokens = group_norm_f32(group_norm, x).view({b, c, h * w}).transpose(1, 2);  // (B, HW, C)
  torch::Tensor out = single_head_attention(to_q->forward(tokens), to_k->forward(tokens), to_v->forward(tokens));
  out = out_proj->forward(out).transpose(1, 2).reshape({b, c, h, w});
  return out + x;
}

VaeDownsampleImpl::VaeDownsampleImpl(int64_t channels) {
  conv = register_module("conv", difffit::conv(channels, channels, 3, 2, 0));
}

torch::Tensor VaeDownsampleImpl::forward(const torch::Tensor& x) {
  return conv->forward(at::constant_pad_nd(x, {0, 1, 0, 1}, 0.0));
}

VaeUpsampleImpl::VaeUpsampleImpl(int64_t channels) {
  conv = register_module("conv", difffit::conv(channels, channels, 3, 1, 1));
}

torch::Tensor VaeUpsampleImpl::forward(const torch::Tensor& x) {
  return conv->forward(at::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2}));
}

namespace {

// Registers `resnets` (the first maps in -> out channels) on `block`; returns them typed.
std::vector<VaeResnetBlock> add_resnets(torch::nn::Module& block, int64_t in_channels, int64_t out_channels,
                                        int64_t num_layers, int64_t groups, double eps) {
  std::vector<VaeResnetBlock> list;
  torch::nn::ModuleList resnets;
  for (int64_t i = 0; i < num_layers; ++i) {
    list.emplace_back(i == 0 ? in_channels : out_channels, out_channels, groups, eps);
    resnets->push_back(list.back());
  }
  block.register_module("resnets", resnets);
  return list;
}

}  // namespace

VaeDownBlockImpl::VaeDownBlockImpl(int64_t in_channels, int64_t out_channels, int64_t num_layers, bool downsample,
                                   int64_t groups, double eps) {
  resnet_list = add_resnets(*this, in_channels, out_channels, num_layers, groups, eps);
  if (downsample) {
    downsampler = VaeDownsample(out_channels);
    register_module("downsamplers", torch::nn::ModuleList(downsampler));
  }
}

torch::Tensor VaeDownBlockImpl::forward(torch::Tensor x) {
  for (auto& resnet : resnet_list) x = resnet->forward(x);
  return downsampler ? downsampler->forward(x) : x;
}

VaeUpBlockImpl::VaeUpBlockImpl(int64_t in_channels, int64_t out_channels, int64_t num_layers, bool upsample,
                               int64_t groups, double eps) {
  resnet_list = add_resnets(*this, in_channels, out_channels, num_layers, groups, eps);
  if (upsample) {
    upsampler = VaeUpsample(out_channels);
    register_module("upsamplers", torch::nn::ModuleList(upsampler));
  }
}

torch::Tensor VaeUpBlockImpl::forward(torch::Tensor x) {
  for (auto& resnet : resnet_list) x = resnet->forward(x);
  return upsampler ? upsampler->forward(x) : x;
}

VaeMidBlockImpl::VaeMidBlockImpl(int64_t channels, bool with_attention, int64_t groups, double eps) {
  first = VaeResnetBlock(channels, channels, groups, eps);
  second = VaeResnetBlock(channels, channels, groups, eps);
  register_module("resnets", torch::nn::ModuleList(first, second));
  if (with_attention) {
    attention = VaeAttention(channels, groups, eps);
    register_module("attentions", torch::nn::ModuleList(attention));
  }
}

torch::Tensor VaeMidBlockImpl::forward(torch::Tensor x) {
  x = first->forward(x);
  if (attention) x = attention->forward(x);
  return second->forward(x);
}

}  // namespace difffit
