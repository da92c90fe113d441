// Turns a loaded DiT into a fine-tuning setup: adds the method's tensors (gamma,
// LoRA, prompts, adapters), freezes everything else, and groups the trainable
// tensors by learning-rate multiplier.
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

#include "worker/model/dit.h"
#include "worker/model/method_config.h"

namespace difffit {

struct TrainableGroup {
  std::string name;     // "gamma", "base", ...
  double lr_mult = 1;   // multiplies the run's learning rate
  std::vector<std::string> names;
  std::vector<torch::Tensor> params;
};

struct MethodSetup {
  MethodConfig config;
  std::vector<TrainableGroup> groups;
  int64_t trainable_params = 0;
  int64_t total_params = 0;  // every parameter of the model, pos_embed and additions included
  double trainable_percent() const { return total_params ? 100.0 * trainable_params / total_params : 0; }
  // Every trainable tensor and its name, group after group (the EMA's and checkpoint's order).
  std::vector<std::string> trainable_names() const;
  std::vector<at::Tensor> trainable_tensors() const;
};

// Call once, after the base weights are loaded. Frozen tensors get requires_grad=false,
// so backward does no weight-gradient work for them.
MethodSetup apply_method(DiTImpl& model, const MethodConfig& config);

}  // namespace difffit
