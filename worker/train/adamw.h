// AdamW with parameter groups, computing what torch.optim.AdamW (single-tensor path)
// computes, in its order of operations (CPU float32 in one fused pass per parameter), with
// state that saves to and loads from named tensors.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "common/state_dict.h"

namespace difffit {

struct MethodSetup;

struct AdamWOptions {
  double lr = 1e-4;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // DiT trains with 0
};

struct AdamWGroup {
  std::string name;
  double lr = 1e-4;  // this group's learning rate (base lr x multiplier)
  std::vector<std::string> names;
  std::vector<at::Tensor> params;
};

// A method's optimizer groups: one per trainable group, lr = base_lr x its multiplier.
std::vector<AdamWGroup> method_adamw_groups(const MethodSetup& setup, double base_lr);

class AdamW {
 public:
  AdamW(std::vector<AdamWGroup> groups, const AdamWOptions& options);

  // One update from the current .grad() of every parameter (missing grads are skipped).
  void step();
  void zero_grad();

  // State as named tensors: "<param>.exp_avg", "<param>.exp_avg_sq", "<param>.step".
  StateDict state_dict() const;
  void load_state_dict(const StateDict& state, const std::string& source);
  int64_t state_bytes() const;  // memory held by the moments
  const std::vector<AdamWGroup>& groups() const { return groups_; }

 private:
  struct ParamState {
    at::Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  std::vector<AdamWGroup> groups_;
  std::vector<std::vector<ParamState>> state_;
  AdamWOptions options_;
};

}  // namespace difffit
