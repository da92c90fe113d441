// The building blocks of DiT, registered under the reference state-dict names
// (x_embedder.proj, t_embedder.mlp.{0,2}, y_embedder.embedding_table,
// blocks.{i}.{attn.qkv,attn.proj,mlp.fc1,mlp.fc2,adaLN_modulation.1}, final_layer.*).
// Fine-tuning additions (gamma, LoRA, prompts, adapters) use names the reference
// does not have, so a plain DiT state dict never collides with them.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include "worker/model/peft_linear.h"

namespace difffit {

// Fixed 2D sin-cos position embedding (T, D), float32, computed in float64.
// Coordinates are multiplied by `coordinate_scale` (1.0 = the reference).
torch::Tensor sincos_pos_embed_2d(int64_t hidden_size, int64_t grid_size, double coordinate_scale = 1.0);

// Sinusoidal timestep features (N, dim): [cos(t f), sin(t f)], float32 as the reference.
torch::Tensor timestep_frequency_embedding(const torch::Tensor& t, int64_t dim = 256,
                                           double max_period = 10000.0);

class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t in_channels, int64_t hidden_size, int64_t patch_size);
  torch::Tensor forward(const torch::Tensor& x);  // (N,C,H,W) -> (N,T,D)
  void enable_gamma();                            // DiffFit site "patch_embed"
  torch::nn::Conv2d proj{nullptr};
  torch::Tensor gamma;
};
TORCH_MODULE(PatchEmbed);

class TimestepEmbedderImpl : public torch::nn::Module {
 public:
  explicit TimestepEmbedderImpl(int64_t hidden_size, int64_t frequency_size = 256);
  torch::Tensor forward(const torch::Tensor& t);
  int64_t frequency_size;
  torch::nn::Sequential mlp{nullptr};
  PeftLinear fc_in{nullptr}, fc_out{nullptr};  // mlp.0 and mlp.2
};
TORCH_MODULE(TimestepEmbedder);

class LabelEmbedderImpl : public torch::nn::Module {
 public:
  LabelEmbedderImpl(int64_t num_classes, int64_t hidden_size, double dropout_prob);
  // In training mode each label is replaced by the null class with probability dropout_prob;
  // a defined `force_drop` (bool, N) decides instead, as the reference's force_drop_ids.
  torch::Tensor forward(const torch::Tensor& labels, const torch::Tensor& force_drop = {});
  int64_t num_classes;
  double dropout_prob;
  torch::nn::Embedding embedding_table{nullptr};
};
TORCH_MODULE(LabelEmbedder);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t hidden_size, int64_t num_heads);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t num_heads;
  PeftLinear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t hidden_size, int64_t mlp_hidden);
  torch::Tensor forward(const torch::Tensor& x);  // fc2(gelu_tanh(fc1(x)))
  PeftLinear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// AdaptFormer bottleneck: up(relu(down(x))) * scale; `up` and both biases start at 0.
class AdapterImpl : public torch::nn::Module {
 public:
  AdapterImpl(int64_t hidden_size, int64_t bottleneck, double scale);
  torch::Tensor forward(const torch::Tensor& x);
  double scale;
  PeftLinear down{nullptr}, up{nullptr};
};
TORCH_MODULE(Adapter);

enum class AdapterMode { Parallel, Sequential };

class DiTBlockImpl : public torch::nn::Module {
 public:
  DiTBlockImpl(int64_t hidden_size, int64_t num_heads, int64_t mlp_hidden);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& c);

  void enable_branch_gammas();                   // gamma1 (attention), gamma2 (MLP)
  void enable_prompts(int64_t count, double init_bound);  // VPT-Deep: `prompts` [n, D]
  void enable_adapter(int64_t bottleneck, double scale, AdapterMode mode);

  int64_t hidden_size;
  Attention attn{nullptr};
  Mlp mlp{nullptr};
  torch::nn::Sequential adaLN_modulation{nullptr};
  PeftLinear ada_linear{nullptr};  // adaLN_modulation.1
  torch::Tensor gamma1, gamma2, prompts;
  Adapter adapter{nullptr};
  AdapterMode adapter_mode = AdapterMode::Parallel;
};
TORCH_MODULE(DiTBlock);

class FinalLayerImpl : public torch::nn::Module {
 public:
  FinalLayerImpl(int64_t hidden_size, int64_t patch_size, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& c);
  PeftLinear linear{nullptr};
  torch::nn::Sequential adaLN_modulation{nullptr};
  PeftLinear ada_linear{nullptr};
};
TORCH_MODULE(FinalLayer);

}  // namespace difffit
