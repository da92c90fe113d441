// Exponential moving average of the trainable tensors (the reference keeps an EMA
// of all parameters; frozen ones never change, so tracking them is wasted memory).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "common/state_dict.h"

namespace difffit {

class Ema {
 public:
  // Starts as a copy of `params` (named by `names`). With `warmup`, update k uses
  // min(decay, (1 + k) / (10 + k)) so short runs are not dominated by the initial weights.
  Ema(std::vector<std::string> names, std::vector<at::Tensor> params, double decay, bool warmup = false);

  // ema = d * ema + (1 - d) * param; `updates_done` is the number of earlier updates.
  void update(int64_t updates_done = 0);
  void copy_to_params() const;   // write the averages into the live parameters
  void swap_with_params();       // exchange averages and live values (swap twice to undo)
  StateDict state_dict() const;  // "<param>" -> average
  void load_state_dict(const StateDict& state, const std::string& source);
  double decay() const { return decay_; }

 private:
  std::vector<std::string> names_;
  std::vector<at::Tensor> params_, averages_;
  double decay_;
  bool warmup_;
};

}  // namespace difffit
