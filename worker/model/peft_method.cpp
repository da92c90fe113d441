#include "worker/model/peft_method.h"

#include <cmath>
#include <map>

#include "common/error.h"

namespace difffit {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_gamma(const std::string& name) {
  return ends_with(name, "gamma") || ends_with(name, "gamma1") || ends_with(name, "gamma2");
}

// The method's additions to the model (all trained).
void add_method_tensors(DiTImpl& model, const MethodConfig& config) {
  const DiTConfig& arch = model.config();
  const std::vector<int64_t> blocks = config.blocks.resolve(arch.depth);
  switch (config.kind) {
    case MethodKind::Full:
    case MethodKind::BitFit:
      return;
    case MethodKind::DiffFit: {
      const auto& sites = config.gamma_sites;
      for (int64_t i : blocks) {
        auto& block = model.block_list[i];
        if (sites.count(GammaSite::Branches)) block->enable_branch_gammas();
        if (sites.count(GammaSite::Qkv)) block->attn->qkv->enable_gamma();
        if (sites.count(GammaSite::Proj)) block->attn->proj->enable_gamma();
      }
      if (sites.count(GammaSite::PatchEmbed)) model.x_embedder->enable_gamma();
      if (sites.count(GammaSite::TimeEmbed)) model.t_embedder->fc_out->enable_gamma();
      if (sites.count(GammaSite::FinalLayer)) model.final_layer->linear->enable_gamma();
      return;
    }
    case MethodKind::LoRA:
      for (int64_t i : blocks) {
        auto& block = model.block_list[i];
        for (const auto& target : config.lora_targets) {
          PeftLinear layer = target == "qkv"   ? block->attn->qkv
                             : target == "proj" ? block->attn->proj
                             : target == "fc1"  ? block->mlp->fc1
                             : target == "fc2"  ? block->mlp->fc2
                                                : block->ada_linear;
          layer->enable_lora(config.lora_rank, config.lora_alpha);
        }
      }
      return;
    case MethodKind::VptDeep: {
      // VPT's uniform init bound: sqrt(6 / (patch pixels * channels + D)).
      double fan = static_cast<double>(arch.patch_size * arch.patch_size * arch.in_channels + arch.hidden_size);
      for (int64_t i : blocks) model.block_list[i]->enable_prompts(config.vpt_prompts, std::sqrt(6.0 / fan));
      return;
    }
    case MethodKind::AdaptFormer:
      for (int64_t i : blocks) {
        model.block_list[i]->enable_adapter(config.adapter_bottleneck, config.adapter_scale, config.adapter_mode);
      }
      return;
  }
}

// Whether a base-model tensor (not an addition) is trained by the method.
bool trains_base_tensor(const MethodConfig& config, const std::string& name) {
  if (name == "pos_embed") return false;  // fixed sin-cos, never trained
  if (config.kind == MethodKind::Full) return true;
  if (name == "y_embedder.embedding_table.weight") return config.train_class_table;
  if (ends_with(name, ".bias")) {
    return config.kind == MethodKind::BitFit || (config.kind == MethodKind::DiffFit && config.train_bias);
  }
  return false;
}

bool is_addition(const std::string& name) {
  return is_gamma(name) || name.find("lora_") != std::string::npos || ends_with(name, ".prompts") ||
         name.find(".adapter.") != std::string::npos;
}

}  // namespace

MethodSetup apply_method(DiTImpl& model, const MethodConfig& config) {
  for (const auto& item : model.named_parameters()) {
    if (is_addition(item.key())) throw_usage("apply_method: a method was already applied to this model");
  }
  add_method_tensors(model, config);

  MethodSetup setup;
  setup.config = config;
  std::map<std::string, TrainableGroup> groups;
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor param = item.value();
    bool trained = is_addition(name) || trains_base_tensor(config, name);
    param.set_requires_grad(trained);
    setup.total_params += param.numel();
    if (!trained) continue;
    setup.trainable_params += param.numel();
    bool gamma_group = config.kind == MethodKind::DiffFit && is_gamma(name);
    TrainableGroup& group = groups[gamma_group ? "gamma" : "base"];
    group.name = gamma_group ? "gamma" : "base";
    group.lr_mult = gamma_group ? config.gamma_lr_mult : config.lr_mult;
    group.names.push_back(name);
    group.params.push_back(param);
  }
  for (auto& [name, group] : groups) setup.groups.push_back(std::move(group));
  return setup;
}

std::vector<std::string> MethodSetup::trainable_names() const {
  std::vector<std::string> names;
  for (const auto& g : groups) names.insert(names.end(), g.names.begin(), g.names.end());
  return names;
}

std::vector<at::Tensor> MethodSetup::trainable_tensors() const {
  std::vector<at::Tensor> params;
  for (const auto& g : groups) params.insert(params.end(), g.params.begin(), g.params.end());
  return params;
}

}  // namespace difffit
