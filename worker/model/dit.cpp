#include "worker/model/dit.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>

#include "common/error.h"
#include "worker/model/block_checkpoint.h"

namespace difffit {

CfgChannels parse_cfg_channels(const std::string& name) {
  if (name == "reference") return CfgChannels::Reference;
  if (name == "eps") return CfgChannels::Eps;
  if (name == "all") return CfgChannels::All;
  throw_usage("unknown CFG channel mode '" + name + "' (reference | eps | all)");
}

DiTImpl::DiTImpl(const DiTConfig& config, bool initialize) : config_(config) {
  config_.validate();
  const int64_t D = config_.hidden_size;
  x_embedder = register_module("x_embedder", PatchEmbed(config_.in_channels, D, config_.patch_size));
  t_embedder = register_module("t_embedder", TimestepEmbedder(D));
  y_embedder = register_module("y_embedder",
                               LabelEmbedder(config_.num_classes, D, config_.class_dropout_prob));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, config_.num_tokens(), D}),
                                 /*requires_grad=*/false);
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.depth; ++i) {
    DiTBlock block(D, config_.num_heads, config_.mlp_hidden());
    blocks->push_back(block);
    block_list.push_back(block);
  }
  final_layer = register_module("final_layer",
                                FinalLayer(D, config_.patch_size, config_.out_channels()));
  if (initialize) {
    initialize_weights();
  } else {
    reset_pos_embed();  // pos_embed is never loaded blindly: keep it valid
  }
}

void DiTImpl::reset_pos_embed() {
  torch::NoGradGuard no_grad;
  pos_embed.copy_(
      sincos_pos_embed_2d(config_.hidden_size, config_.grid_size(), config_.pos_embed_scale).unsqueeze(0));
}

void DiTImpl::initialize_weights() {
  torch::NoGradGuard no_grad;
  for (auto& [name, linear] : linear_layers()) linear->reset_parameters();  // xavier, bias 0
  reset_pos_embed();
  // Patch conv: xavier-uniform on its (D, C*p*p) view, as a Linear would be.
  auto& conv_weight = x_embedder->proj->weight;
  int64_t fan_in = conv_weight[0].numel(), fan_out = conv_weight.size(0);
  double bound = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  conv_weight.uniform_(-bound, bound);
  x_embedder->proj->bias.zero_();
  torch::nn::init::normal_(y_embedder->embedding_table->weight, 0.0, 0.02);
  torch::nn::init::normal_(t_embedder->fc_in->weight, 0.0, 0.02);
  torch::nn::init::normal_(t_embedder->fc_out->weight, 0.0, 0.02);
  // adaLN-Zero: every block starts as the identity; the output layer starts at zero.
  for (auto& block : block_list) {
    block->ada_linear->weight.zero_();
    block->ada_linear->bias.zero_();
  }
  final_layer->ada_linear->weight.zero_();
  final_layer->ada_linear->bias.zero_();
  final_layer->linear->weight.zero_();
  final_layer->linear->bias.zero_();
}

std::vector<std::pair<std::string, PeftLinear>> DiTImpl::linear_layers() const {
  std::vector<std::pair<std::string, PeftLinear>> layers = {
      {"t_embedder.mlp.0", t_embedder->fc_in},
      {"t_embedder.mlp.2", t_embedder->fc_out},
  };
  for (size_t i = 0; i < block_list.size(); ++i) {
    const std::string prefix = "blocks." + std::to_string(i) + ".";
    const auto& block = block_list[i];
    layers.emplace_back(prefix + "attn.qkv", block->attn->qkv);
    layers.emplace_back(prefix + "attn.proj", block->attn->proj);
    layers.emplace_back(prefix + "mlp.fc1", block->mlp->fc1);
    layers.emplace_back(prefix + "mlp.fc2", block->mlp->fc2);
    layers.emplace_back(prefix + "adaLN_modulation.1", block->ada_linear);
  }
  layers.emplace_back("final_layer.linear", final_layer->linear);
  layers.emplace_back("final_layer.adaLN_modulation.1", final_layer->ada_linear);
  return layers;
}

torch::Tensor DiTImpl::unpatchify(const torch::Tensor& tokens) const {
  const int64_t c = config_.out_channels(), p = config_.patch_size, g = config_.grid_size();
  return tokens.reshape({tokens.size(0), g, g, p, p, c})
      .permute({0, 5, 1, 3, 2, 4})  // n h w p q c -> n c h p w q
      .reshape({tokens.size(0), c, g * p, g * p});
}

torch::Tensor DiTImpl::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                               const torch::Tensor& force_drop) {
  const int64_t n = x.size(0);
  if (x.dim() != 4 || x.size(1) != config_.in_channels || x.size(2) != config_.input_size ||
      x.size(3) != config_.input_size) {
    throw_data("DiT input must be (N, " + std::to_string(config_.in_channels) + ", " +
               std::to_string(config_.input_size) + ", " + std::to_string(config_.input_size) +
               "), got " + c10::str(x.sizes()));
  }
  if (t.dim() != 1 || t.size(0) != n || y.dim() != 1 || y.size(0) != n) {
    throw_data("DiT: t and y must be 1-D with N = " + std::to_string(n) + " entries");
  }
  torch::Tensor h = x_embedder(x) + pos_embed;
  torch::Tensor c = t_embedder(t) + y_embedder(y, force_drop);
  const bool checkpoint = run_options_.checkpoint_blocks && is_training() && torch::GradMode::is_enabled();
  for (auto& block : block_list) h = checkpoint ? checkpointed_block(*block, h, c) : block(h, c);
  return unpatchify(final_layer(h, c));
}

torch::Tensor DiTImpl::forward_with_cfg(const torch::Tensor& x, const torch::Tensor& t,
                                        const torch::Tensor& y, double cfg_scale, CfgChannels channels) {
  if (x.size(0) % 2) throw_data("forward_with_cfg needs an even batch ([cond; uncond])");
  torch::Tensor half = x.narrow(0, 0, x.size(0) / 2);
  torch::Tensor out = forward(at::cat({half, half}, 0), t, y);
  int64_t guided = channels == CfgChannels::Reference ? 3
                   : channels == CfgChannels::Eps     ? config_.in_channels
                                                      : config_.out_channels();
  guided = std::min(guided, out.size(1));
  torch::Tensor eps = out.narrow(1, 0, guided);
  torch::Tensor rest = out.narrow(1, guided, out.size(1) - guided);
  auto halves = eps.split(eps.size(0) / 2, 0);
  torch::Tensor half_eps = halves[1] + cfg_scale * (halves[0] - halves[1]);
  return at::cat({at::cat({half_eps, half_eps}, 0), rest}, 1);
}

}  // namespace difffit
