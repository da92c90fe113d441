#include "worker/model/checkpoint_loader.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <set>
#include <sstream>

#include "common/error.h"
#include "common/key_mismatch.h"
#include "common/logging.h"
#include "common/state_dict_file.h"

namespace difffit {
namespace {

const char* kPosEmbed = "pos_embed";
const char* kClassTable = "y_embedder.embedding_table.weight";

// Names added by fine-tuning methods: never part of a plain DiT state dict.
bool is_peft_name(const std::string& name) {
  for (const char* marker : {"gamma", "lora_A", "lora_B", "prompts", ".adapter."}) {
    if (name.find(marker) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

StateDict dit_reference_state_dict(const DiTImpl& model) {
  StateDict state;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    if (!is_peft_name(item.key())) state[item.key()] = item.value().detach();
  }
  return state;
}

LoadReport load_dit_state_dict(DiTImpl& model, const StateDict& state, const LoadOptions& options,
                               const std::string& source) {
  LoadReport report;
  StateDict targets = dit_reference_state_dict(model);
  KeyMismatch keys;
  std::vector<std::pair<std::string, at::Tensor>> to_copy;

  for (const auto& [name, target] : targets) {
    auto it = state.find(name);
    const bool is_pos = name == kPosEmbed;
    if (is_pos && options.rebuild_pos_embed &&
        (it == state.end() || !it->second.sizes().equals(target.sizes()) ||
         model.config().pos_embed_scale != 1.0)) {
      report.rebuilt.push_back(name);  // already computed from the config
      continue;
    }
    if (it == state.end()) {
      keys.missing.push_back(name + " " + shape_string(target));
      continue;
    }
    if (!it->second.sizes().equals(target.sizes())) {
      if (name == kClassTable && options.reinit_class_table) {
        torch::NoGradGuard no_grad;
        torch::nn::init::normal_(target, 0.0, 0.02);
        report.reinitialised.push_back(name);
        continue;
      }
      keys.mismatched.push_back(name + ": checkpoint " + shape_string(it->second) + ", model " +
                           shape_string(target));
      continue;
    }
    if (!note_if_not_floating(keys, name, it->second)) to_copy.emplace_back(name, it->second);
  }
  for (const auto& [name, tensor] : state) {
    if (!targets.count(name)) keys.unexpected.push_back(name + " " + shape_string(tensor));
  }
  if (!keys.empty()) {
    std::ostringstream out;
    out << source << ": checkpoint does not match the model (" << model.config().describe() << ")" << keys.describe();
    if (!keys.mismatched.empty()) out << "\n  check --model, --input-size, --num-classes, --learn-sigma";
    throw_data(out.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : to_copy) {
    targets[name].copy_(tensor);
    ++report.loaded;
  }
  return report;
}

LoadReport load_dit_checkpoint(DiTImpl& model, const std::string& path, const LoadOptions& options) {
  StateDict state = load_state_dict_file(path, options.select);
  LoadReport report = load_dit_state_dict(model, state, options, path);
  log()->info("[model] loaded {} tensors from {}{}{}", report.loaded, path,
              report.rebuilt.empty() ? "" : " (pos_embed rebuilt for the model's grid)",
              report.reinitialised.empty() ? "" : " (class table re-initialised)");
  return report;
}

}  // namespace difffit
