// A Linear layer (parameters `weight` [out,in] and `bias` [out], the same keys as
// torch.nn.Linear) that fine-tuning methods can extend in place:
//   gamma  [out]      DiffFit scale on the output, init 1
//   lora_A [r,in], lora_B [out,r]   LoRA, y += (alpha/r) * B A x, B init 0
// With neither enabled it computes exactly torch.nn.Linear.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <utility>

namespace difffit {

class PeftLinearImpl : public torch::nn::Module {
 public:
  // Weights start uninitialised; call reset_parameters() (DiT does for all its layers).
  PeftLinearImpl(int64_t in_features, int64_t out_features);

  torch::Tensor forward(const torch::Tensor& x);

  // DiT's init: xavier-uniform weight, zero bias.
  void reset_parameters();
  void enable_gamma();
  void enable_lora(int64_t rank, double alpha);
  bool has_gamma() const { return gamma.defined(); }
  bool has_lora() const { return lora_A.defined(); }

  // Weight and bias with gamma and LoRA folded in: a plain Linear computing the same map.
  std::pair<torch::Tensor, torch::Tensor> merged_weight_and_bias() const;

  int64_t in_features, out_features;
  torch::Tensor weight, bias;
  torch::Tensor gamma, lora_A, lora_B;  // undefined until enabled
  double lora_scale = 0.0;
};
TORCH_MODULE(PeftLinear);

}  // namespace difffit
