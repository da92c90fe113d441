// The FID InceptionV3 exactly as pytorch-fid builds it (TF 2015-12-05 port):
// torchvision module names so `pt_inception-2015-12-05-6726825d.pth` loads by key,
// BN eps 1e-3, count_include_pad=False average pools in the A/C/E blocks, a max pool
// in Mixed_7c's pool branch, fc 2048 -> 1008 (its weight gives the IS logits), no aux logits.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

#include "common/state_dict.h"
#include "eval/eval_choices.h"
#include "eval/feature_network.h"

namespace difffit {

// The environment variable consulted when --inception-weights is not given.
constexpr const char* kInceptionWeightsEnv = "DIFFFIT_INCEPTION_WEIGHTS";
// `option` if set, else $DIFFFIT_INCEPTION_WEIGHTS. Throws difffit::Error (Data,
// exit 3) naming both when neither is set or the file does not exist; `option_name` is
// what the user sets it with (the flag, or a run's eval.inception_weights).
std::string resolve_inception_weights(const std::string& option,
                                      const std::string& option_name = "--inception-weights");

struct WeightLoadReport {
  std::vector<std::string> missing;     // expected keys the file lacks
  std::vector<std::string> unexpected;  // file keys the network does not have
};

class FidInceptionV3 {
 public:
  FidInceptionV3();  // weights uninitialised until load_weights
  ~FidInceptionV3();
  FidInceptionV3(const FidInceptionV3&) = delete;
  FidInceptionV3& operator=(const FidInceptionV3&) = delete;

  // Parameter and buffer names in torchvision's style, num_batches_tracked left out.
  std::vector<std::string> state_dict_keys() const;
  // Copies weights by key (num_batches_tracked ignored, present or not). Shape
  // mismatches always throw Data; with `strict`, so do missing or unexpected keys.
  WeightLoadReport load_weights(const StateDict& weights, bool strict = true);
  // "cpu" or "cuda[:k]"; on CUDA, TF32 is switched off (it changes FID features).
  void to_device(c10::Device device);

  // x: float (N, 3, H, W) in [0, 1]. Resized to 299x299 (bilinear, align_corners=False),
  // scaled to [-1, 1], run to the final average pool: (N, 2048) float32 on the CPU.
  at::Tensor pool3(const at::Tensor& x);
  // Same, but x is already (N, 3, 299, 299) in [-1, 1] (no resize).
  at::Tensor pool3_normalized(const at::Tensor& x);
  // pool3, the sFID features (Mixed_6d's 1x1 branch, channels 0-6, (H, W, C) order:
  // 2023 values) and the IS logits (pool3 x fc.weight^T, no bias, as the ADM evaluator).
  NetworkOutputs outputs(const at::Tensor& x);
  NetworkOutputs outputs_normalized(const at::Tensor& x);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The FID feature network: loads the weights file (any format load_state_dict_file
// reads), strictly; uint8 images -> pool3 features with the chosen resize.
class InceptionFeatureNet : public FeatureNetwork {
 public:
  InceptionFeatureNet(const std::string& weights_path, ResizeMode resize, c10::Device device = c10::Device(c10::kCPU));
  ~InceptionFeatureNet() override;
  std::string id() const override { return id_; }
  std::string metric_suffix() const override { return ""; }
  int64_t dim() const override { return 2048; }
  NetworkOutputs outputs(const at::Tensor& images) override;

 private:
  FidInceptionV3 net_;
  ResizeMode resize_;
  std::string id_;
};

}  // namespace difffit
