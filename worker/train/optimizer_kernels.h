#pragma once

#include <torch/types.h>

namespace difffit {

// One AdamW update of a CPU float32 parameter in a single pass over p, grad, exp_avg and
// exp_avg_sq, in the order of operations of torch.optim.AdamW's single-tensor path:
// p *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p -= step_size m / (sqrt(v) / sqrt(bias_correction2) + eps).
struct AdamWScalars {
  double decay_factor, beta1, beta2, step_size, sqrt_bias_correction2, eps;
};
void fused_adamw_update(torch::Tensor& param, const torch::Tensor& grad, torch::Tensor& exp_avg,
                        torch::Tensor& exp_avg_sq, const AdamWScalars& s);

// ema = decay ema + (1 - decay) param, one pass, CPU float32.
void fused_ema_update(torch::Tensor& average, const torch::Tensor& param, double decay);

// Whether the fused updates take these tensors: CPU float32, contiguous.
bool fusable(const torch::Tensor& t);

}  // namespace difffit
