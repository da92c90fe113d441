#include "worker/train/adamw.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

#include "common/error.h"
#include "worker/model/peft_method.h"
#include "worker/train/optimizer_kernels.h"

namespace difffit {

AdamW::AdamW(std::vector<AdamWGroup> groups, const AdamWOptions& options)
    : groups_(std::move(groups)), options_(options) {
  for (const auto& group : groups_) {
    std::vector<ParamState> states(group.params.size());
    for (size_t i = 0; i < group.params.size(); ++i) {
      states[i].exp_avg = at::zeros_like(group.params[i]);
      states[i].exp_avg_sq = at::zeros_like(group.params[i]);
    }
    state_.push_back(std::move(states));
  }
}

void AdamW::step() {
  c10::NoGradGuard no_grad;
  const double b1 = options_.beta1, b2 = options_.beta2;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const double lr = groups_[g].lr;
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      at::Tensor param = groups_[g].params[i];
      const at::Tensor& grad = param.grad();
      if (!grad.defined()) continue;
      ParamState& s = state_[g][i];
      s.step += 1;
      const double bias_correction1 = 1 - std::pow(b1, static_cast<double>(s.step));
      const double bias_correction2 = 1 - std::pow(b2, static_cast<double>(s.step));
      const double step_size = lr / bias_correction1;
      if (fusable(param) && fusable(grad) && fusable(s.exp_avg) && fusable(s.exp_avg_sq)) {
        fused_adamw_update(param, grad, s.exp_avg, s.exp_avg_sq,
                           {1 - lr * options_.weight_decay, b1, b2, step_size, std::sqrt(bias_correction2),
                            options_.eps});
        continue;
      }
      // The order of operations of torch.optim.AdamW (1.13, single-tensor).
      param.mul_(1 - lr * options_.weight_decay);
      s.exp_avg.mul_(b1).add_(grad, 1 - b1);
      s.exp_avg_sq.mul_(b2).addcmul_(grad, grad, 1 - b2);
      at::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(bias_correction2)).add_(options_.eps);
      param.addcdiv_(s.exp_avg, denom, -step_size);
    }
  }
}

void AdamW::zero_grad() {
  for (auto& group : groups_) {
    for (auto& param : group.params) {
      if (param.grad().defined()) param.mutable_grad() = at::Tensor();
    }
  }
}

StateDict AdamW::state_dict() const {
  StateDict state;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const std::string& name = groups_[g].names[i];
      state[name + ".exp_avg"] = state_[g][i].exp_avg;
      state[name + ".exp_avg_sq"] = state_[g][i].exp_avg_sq;
      state[name + ".step"] = at::scalar_tensor(state_[g][i].step, at::kLong);
    }
  }
  return state;
}

void AdamW::load_state_dict(const StateDict& state, const std::string& source) {
  c10::NoGradGuard no_grad;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const std::string& name = groups_[g].names[i];
      for (const char* suffix : {".exp_avg", ".exp_avg_sq", ".step"}) {
        if (!state.count(name + suffix)) throw_data(source + ": optimizer state for '" + name + suffix + "' missing");
      }
      const at::Tensor& m = state.at(name + ".exp_avg");
      if (!m.sizes().equals(groups_[g].params[i].sizes())) {
        throw_data(source + ": optimizer state for '" + name + "' has the wrong shape");
      }
      state_[g][i].exp_avg.copy_(m);
      state_[g][i].exp_avg_sq.copy_(state.at(name + ".exp_avg_sq"));
      state_[g][i].step = state.at(name + ".step").item<int64_t>();
    }
  }
}

int64_t AdamW::state_bytes() const {
  int64_t bytes = 0;
  for (const auto& group : state_) {
    for (const auto& s : group) bytes += 2 * s.exp_avg.numel() * static_cast<int64_t>(s.exp_avg.element_size());
  }
  return bytes;
}

std::vector<AdamWGroup> method_adamw_groups(const MethodSetup& setup, double base_lr) {
  std::vector<AdamWGroup> groups;
  for (const auto& g : setup.groups) groups.push_back({g.name, base_lr * g.lr_mult, g.names, g.params});
  return groups;
}

}  // namespace difffit
