#include "worker/model/peft_linear.h"

#include <torch/nn/functional/linear.h>
#include <torch/nn/init.h>

#include <cmath>

#include "common/error.h"

namespace difffit {

PeftLinearImpl::PeftLinearImpl(int64_t in, int64_t out) : in_features(in), out_features(out) {
  weight = register_parameter("weight", torch::empty({out, in}));
  bias = register_parameter("bias", torch::empty({out}));
  // Left uninitialised: the owner initialises (DiT::initialize_weights, Adapter), and a
  // model built only to count parameters never touches the memory.
}

void PeftLinearImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(weight);
  bias.zero_();
}

void PeftLinearImpl::enable_gamma() {
  if (has_gamma()) return;
  gamma = register_parameter("gamma", torch::ones({out_features}, weight.options()));
}

void PeftLinearImpl::enable_lora(int64_t rank, double alpha) {
  if (rank <= 0) throw_usage("lora: rank must be positive, got " + std::to_string(rank));
  if (has_lora()) throw_usage("lora: already enabled on this layer");
  lora_A = register_parameter("lora_A", torch::empty({rank, in_features}, weight.options()));
  lora_B = register_parameter("lora_B", torch::zeros({out_features, rank}, weight.options()));
  {
    torch::NoGradGuard no_grad;
    // kaiming_uniform(a=sqrt(5)), as torch.nn.Linear and HF peft initialise A.
    torch::nn::init::kaiming_uniform_(lora_A, std::sqrt(5.0));
  }
  lora_scale = alpha / static_cast<double>(rank);
}

torch::Tensor PeftLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = torch::nn::functional::linear(x, weight, bias);
  if (has_lora()) {
    y = y + torch::nn::functional::linear(torch::nn::functional::linear(x, lora_A), lora_B) * lora_scale;
  }
  if (has_gamma()) y = y * gamma;
  return y;
}

std::pair<torch::Tensor, torch::Tensor> PeftLinearImpl::merged_weight_and_bias() const {
  torch::NoGradGuard no_grad;
  torch::Tensor w = weight.detach().clone();
  torch::Tensor b = bias.detach().clone();
  if (has_lora()) w += torch::matmul(lora_B.detach(), lora_A.detach()) * lora_scale;
  if (has_gamma()) {
    w *= gamma.detach().unsqueeze(1);
    b *= gamma.detach();
  }
  return {w, b};
}

}  // namespace difffit
