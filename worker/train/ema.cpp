#include "worker/train/ema.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>

#include "common/error.h"
#include "worker/train/optimizer_kernels.h"

namespace difffit {

Ema::Ema(std::vector<std::string> names, std::vector<at::Tensor> params, double decay, bool warmup)
    : names_(std::move(names)), params_(std::move(params)), decay_(decay), warmup_(warmup) {
  if (decay < 0 || decay > 1) throw_usage("ema_decay must be in [0, 1]");
  for (const auto& p : params_) averages_.push_back(p.detach().clone());
}

void Ema::update(int64_t updates_done) {
  c10::NoGradGuard no_grad;
  const double k = static_cast<double>(updates_done);
  const double decay = warmup_ ? std::min(decay_, (1 + k) / (10 + k)) : decay_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor param = params_[i].detach();
    if (fusable(averages_[i]) && fusable(param)) {
      fused_ema_update(averages_[i], param, decay);
    } else {
      averages_[i].mul_(decay).add_(param, 1 - decay);
    }
  }
}

void Ema::copy_to_params() const {
  c10::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) params_[i].detach().copy_(averages_[i]);
}

void Ema::swap_with_params() {
  c10::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor live = params_[i].detach().clone();
    params_[i].detach().copy_(averages_[i]);
    averages_[i].copy_(live);
  }
}

StateDict Ema::state_dict() const {
  StateDict state;
  for (size_t i = 0; i < names_.size(); ++i) state[names_[i]] = averages_[i];
  return state;
}

void Ema::load_state_dict(const StateDict& state, const std::string& source) {
  c10::NoGradGuard no_grad;
  for (size_t i = 0; i < names_.size(); ++i) {
    auto it = state.find(names_[i]);
    if (it == state.end()) throw_data(source + ": EMA state for '" + names_[i] + "' missing");
    averages_[i].copy_(it->second);
  }
}

}  // namespace difffit
