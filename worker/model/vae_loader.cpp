#include "worker/model/vae_loader.h"

#include <ATen/ATen.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"
#include "common/input_file.h"
#include "common/key_mismatch.h"
#include "common/logging.h"
#include "common/sha256.h"
#include "common/state_dict_file.h"

namespace difffit {
namespace {

namespace fs = std::filesystem;

// "a.attentions.0.query.weight" -> "a.attentions.0.to_q.weight"; unchanged when not an old name.
std::string renamed_attention_key(const std::string& key) {
  static const std::map<std::string, std::string> names = {
      {"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"}};
  const std::string marker = ".attentions.";
  const size_t at = key.find(marker);
  if (at == std::string::npos) return key;
  const size_t index_end = key.find('.', at + marker.size());
  if (index_end == std::string::npos) return key;
  const size_t name_end = key.find('.', index_end + 1);
  if (name_end == std::string::npos) return key;
  auto it = names.find(key.substr(index_end + 1, name_end - index_end - 1));
  if (it == names.end()) return key;
  return key.substr(0, index_end + 1) + it->second + key.substr(name_end);
}

bool is_attention_projection(const std::string& key) {
  for (const char* name : {".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight"}) {
    const std::string suffix = name;
    if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        key.find(".attentions.") != std::string::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

StateDict rename_legacy_vae_keys(const StateDict& state, std::vector<std::string>* renamed) {
  StateDict out;
  for (const auto& [key, tensor] : state) {
    std::string name = renamed_attention_key(key);
    at::Tensor value = tensor;
    // Some conversions keep the attention projections as 1x1 convolutions (C, C, 1, 1).
    if (is_attention_projection(name) && value.dim() == 4 && value.size(2) == 1 && value.size(3) == 1) {
      value = value.reshape({value.size(0), value.size(1)});
    }
    if (renamed && (name != key || !value.sizes().equals(tensor.sizes()))) renamed->push_back(key);
    if (out.count(name)) throw_data("VAE weights hold both " + key + " and its current name " + name);
    out[name] = value;
  }
  return out;
}

void load_vae_state_dict(AutoencoderKLImpl& model, const StateDict& state, const std::string& source) {
  StateDict targets;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) targets[item.key()] = item.value();
  KeyMismatch keys;
  for (const auto& [name, target] : targets) {
    auto it = state.find(name);
    if (it == state.end()) {
      keys.missing.push_back(name + " " + shape_string(target));
    } else if (!it->second.sizes().equals(target.sizes())) {
      keys.mismatched.push_back(name + ": file " + shape_string(it->second) + ", model " + shape_string(target));
    } else {
      note_if_not_floating(keys, name, it->second);
    }
  }
  for (const auto& [name, tensor] : state) {
    if (!targets.count(name)) keys.unexpected.push_back(name + " " + shape_string(tensor));
  }
  if (!keys.empty()) {
    throw_data(source + ": VAE weights do not match the model (" + model.config().describe() + ")" + keys.describe());
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) target.copy_(state.at(name));
}

LoadedVae load_vae(const std::string& path, const VaeLoadOptions& options) {
  if (!fs::exists(path)) throw_io(path + ": VAE weight file not found");
  LoadedVae result;
  result.path = path;
  StateDict state = rename_legacy_vae_keys(load_state_dict_file(path), &result.renamed);

  VaeConfig config = VaeConfig::stable_diffusion();
  std::string config_json = options.config_json;
  if (config_json == "auto") {
    const fs::path beside = fs::path(path).parent_path() / "config.json";
    config_json = fs::exists(beside) ? beside.string() : "";
  }
  if (!config_json.empty()) read_diffusers_vae_config(config_json, config);
  config = infer_vae_config(state, config, path);
  if (options.norm_num_groups > 0) config.norm_num_groups = options.norm_num_groups;
  if (options.scaling_factor > 0) config.scaling_factor = options.scaling_factor;
  try {
    config.validate();
  } catch (const Error& e) {
    throw_data(path + ": " + e.what());
  }

  result.model = AutoencoderKL(config);
  result.model->eval();
  load_vae_state_dict(*result.model, state, path);
  result.model->to(options.device);
  result.sha256 = sha256_of_file(path);
  log()->info("[vae] {} ({}{}{}), sha256 {}", path, config.describe(),
              config_json.empty() ? "" : "; config " + config_json,
              result.renamed.empty() ? "" : "; " + std::to_string(result.renamed.size()) + " old attention keys renamed",
              result.sha256.substr(0, 16));
  return result;
}

std::string resolve_vae_weights(const std::string& configured) {
  if (!configured.empty()) return configured;
  const char* env = std::getenv("DIFFFIT_VAE_WEIGHTS");
  return env ? env : "";
}

}  // namespace difffit
