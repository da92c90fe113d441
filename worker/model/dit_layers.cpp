#include "worker/model/dit_layers.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>

#include <cmath>

#include "common/error.h"
#include "worker/model/fused_modulation.h"
#include "worker/model/gelu_tanh.h"
#include "worker/model/self_attention.h"


namespace difffit {
namespace {

torch::nn::Sequential silu_then(const PeftLinear& linear) {
  torch::nn::Sequential seq;
  seq->push_back(torch::nn::SiLU());
  seq->push_back(linear);
  return seq;
}

}  // namespace

torch::Tensor sincos_pos_embed_2d(int64_t hidden_size, int64_t grid_size, double coordinate_scale) {
  const int64_t quarter = hidden_size / 4;
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  // omega_k = 1 / 10000^(k / quarter), as the reference computes it in float64.
  torch::Tensor omega = 1.0 / at::pow(10000.0, at::arange(quarter, f64) / static_cast<double>(quarter));
  torch::Tensor coords = at::arange(grid_size, f64) * coordinate_scale;
  torch::Tensor rows = coords.repeat_interleave(grid_size);  // i for token n = i*G + j
  torch::Tensor cols = coords.repeat({grid_size});           // j
  torch::Tensor col_angles = at::outer(cols, omega);
  torch::Tensor row_angles = at::outer(rows, omega);
  // The column index comes first: [sin(jw), cos(jw), sin(iw), cos(iw)].
  return at::cat({col_angles.sin(), col_angles.cos(), row_angles.sin(), row_angles.cos()}, 1)
      .to(at::kFloat);
}

torch::Tensor timestep_frequency_embedding(const torch::Tensor& t, int64_t dim, double max_period) {
  const int64_t half = dim / 2;
  // Same float32 operations in the same order as the reference.
  torch::Tensor freqs =
      at::exp(at::arange(0, half, at::TensorOptions().dtype(at::kFloat).device(t.device())) *
              (-std::log(max_period)) / half);
  torch::Tensor args = t.unsqueeze(1).to(at::kFloat) * freqs.unsqueeze(0);
  torch::Tensor embedding = at::cat({at::cos(args), at::sin(args)}, -1);
  if (dim % 2) embedding = at::cat({embedding, at::zeros_like(embedding.narrow(1, 0, 1))}, -1);
  return embedding;
}

PatchEmbedImpl::PatchEmbedImpl(int64_t in_channels, int64_t hidden_size, int64_t patch_size) {
  proj = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, hidden_size, patch_size)
                                    .stride(patch_size)
                                    .bias(true)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
  // Token-major in memory: the transposed view would make every later op (and its result)
  // strided, and each layer norm and linear copy it back.
  torch::Tensor tokens = proj(x).flatten(2).transpose(1, 2).contiguous();
  if (gamma.defined()) tokens = tokens * gamma;
  return tokens;
}

void PatchEmbedImpl::enable_gamma() {
  if (!gamma.defined()) gamma = register_parameter("gamma", torch::ones({proj->options.out_channels()}));
}

TimestepEmbedderImpl::TimestepEmbedderImpl(int64_t hidden_size, int64_t frequency_size_)
    : frequency_size(frequency_size_) {
  fc_in = PeftLinear(frequency_size, hidden_size);
  fc_out = PeftLinear(hidden_size, hidden_size);
  torch::nn::Sequential seq;
  seq->push_back(fc_in);
  seq->push_back(torch::nn::SiLU());
  seq->push_back(fc_out);
  mlp = register_module("mlp", seq);
}

torch::Tensor TimestepEmbedderImpl::forward(const torch::Tensor& t) {
  torch::Tensor h = fc_in(timestep_frequency_embedding(t, frequency_size));
  return fc_out(at::silu(h));
}

LabelEmbedderImpl::LabelEmbedderImpl(int64_t num_classes_, int64_t hidden_size, double dropout_prob_)
    : num_classes(num_classes_), dropout_prob(dropout_prob_) {
  int64_t rows = num_classes + (dropout_prob > 0 ? 1 : 0);
  embedding_table = register_module("embedding_table", torch::nn::Embedding(rows, hidden_size));
}

torch::Tensor LabelEmbedderImpl::forward(const torch::Tensor& labels, const torch::Tensor& force_drop) {
  torch::Tensor ids = labels;
  if (force_drop.defined()) {
    ids = at::where(force_drop.to(labels.device()), at::full_like(labels, num_classes), labels);
  } else if (is_training() && dropout_prob > 0) {
    torch::Tensor drop = at::rand({labels.size(0)}, labels.options().dtype(at::kFloat)) < dropout_prob;
    ids = at::where(drop, at::full_like(labels, num_classes), labels);
  }
  return embedding_table(ids);
}

AttentionImpl::AttentionImpl(int64_t hidden_size, int64_t num_heads_) : num_heads(num_heads_) {
  qkv = register_module("qkv", PeftLinear(hidden_size, 3 * hidden_size));
  proj = register_module("proj", PeftLinear(hidden_size, hidden_size));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x) { return proj(self_attention(qkv(x), num_heads)); }

MlpImpl::MlpImpl(int64_t hidden_size, int64_t mlp_hidden) {
  fc1 = register_module("fc1", PeftLinear(hidden_size, mlp_hidden));
  fc2 = register_module("fc2", PeftLinear(mlp_hidden, hidden_size));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return fc2(gelu_tanh(fc1(x))); }

AdapterImpl::AdapterImpl(int64_t hidden_size, int64_t bottleneck, double scale_) : scale(scale_) {
  down = register_module("down", PeftLinear(hidden_size, bottleneck));
  up = register_module("up", PeftLinear(bottleneck, hidden_size));
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(down->weight, std::sqrt(5.0));
  down->bias.zero_();
  up->weight.zero_();
  up->bias.zero_();
}

torch::Tensor AdapterImpl::forward(const torch::Tensor& x) { return up(at::relu(down(x))) * scale; }

DiTBlockImpl::DiTBlockImpl(int64_t hidden_size_, int64_t num_heads, int64_t mlp_hidden)
    : hidden_size(hidden_size_) {
  attn = register_module("attn", Attention(hidden_size, num_heads));
  mlp = register_module("mlp", Mlp(hidden_size, mlp_hidden));
  ada_linear = PeftLinear(hidden_size, 6 * hidden_size);
  adaLN_modulation = register_module("adaLN_modulation", silu_then(ada_linear));
}

void DiTBlockImpl::enable_branch_gammas() {
  if (gamma1.defined()) return;
  gamma1 = register_parameter("gamma1", torch::ones({hidden_size}));
  gamma2 = register_parameter("gamma2", torch::ones({hidden_size}));
}

void DiTBlockImpl::enable_prompts(int64_t count, double init_bound) {
  if (count <= 0) throw_usage("vpt-deep: prompt count must be positive, got " + std::to_string(count));
  prompts = register_parameter("prompts", torch::empty({count, hidden_size}));
  torch::NoGradGuard no_grad;
  prompts.uniform_(-init_bound, init_bound);
}

void DiTBlockImpl::enable_adapter(int64_t bottleneck, double scale, AdapterMode mode) {
  if (bottleneck <= 0) throw_usage("adaptformer: bottleneck must be positive");
  adapter = register_module("adapter", Adapter(hidden_size, bottleneck, scale));
  adapter_mode = mode;
}

torch::Tensor DiTBlockImpl::forward(const torch::Tensor& x_in, const torch::Tensor& c) {
  auto mod = ada_linear(at::silu(c)).chunk(6, 1);
  const auto &shift_msa = mod[0], &scale_msa = mod[1], &gate_msa = mod[2];
  const auto &shift_mlp = mod[3], &scale_mlp = mod[4], &gate_mlp = mod[5];

  torch::Tensor x = x_in;
  int64_t num_prompts = prompts.defined() ? prompts.size(0) : 0;
  if (num_prompts) {
    // VPT-Deep: this block's prompts are prepended, and dropped again after the block.
    x = at::cat({prompts.unsqueeze(0).expand({x.size(0), num_prompts, hidden_size}), x}, 1);
  }

  x = gated_residual(x, gate_msa, attn(norm_modulate(x, shift_msa, scale_msa)), gamma1);
  torch::Tensor h = norm_modulate(x, shift_mlp, scale_mlp);
  torch::Tensor m = mlp(h);
  // Adapters live inside the gated MLP branch, so they are modulated like the branch.
  if (!adapter.is_empty()) {
    m = adapter_mode == AdapterMode::Parallel ? m + adapter(h) : m + adapter(m);
  }
  x = gated_residual(x, gate_mlp, m, gamma2);

  if (num_prompts) x = x.narrow(1, num_prompts, x.size(1) - num_prompts);
  return x;
}

FinalLayerImpl::FinalLayerImpl(int64_t hidden_size, int64_t patch_size, int64_t out_channels) {
  linear = register_module("linear", PeftLinear(hidden_size, patch_size * patch_size * out_channels));
  ada_linear = PeftLinear(hidden_size, 2 * hidden_size);
  adaLN_modulation = register_module("adaLN_modulation", silu_then(ada_linear));
}

torch::Tensor FinalLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& c) {
  auto mod = ada_linear(at::silu(c)).chunk(2, 1);
  return linear(norm_modulate(x, mod[0], mod[1]));
}

}  // namespace difffit
