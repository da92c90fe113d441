#pragma once

#include <torch/types.h>

namespace difffit {

// DiT's MLP activation, GELU with the tanh approximation, as an autograd function with
// difffit's own vectorised CPU kernels. It is the same function in float32
// (0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3)), within a
// few ulp of it computed in double; ATen evaluates it through a scalar libm tanhf where
// PyTorch is built without SLEEF (Debian's), which made it ~15% of a training step.
// CPU float32 and bfloat16 (computed in float32) use the kernels; anything else at::gelu.
torch::Tensor gelu_tanh(const torch::Tensor& x);

}  // namespace difffit
