// What the sample metrics need from a feature network: images in; pooled features
// (FID, KID, precision/recall), spatial features (sFID) and class logits (IS) out;
// and names that say honestly which network produced a score.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace difffit {

struct NetworkOutputs {
  at::Tensor pool;     // float32 (N, dim())
  at::Tensor spatial;  // float32 (N, S): a few channels of an intermediate feature map, flattened (sFID)
  at::Tensor logits;   // float32 (N, classes) (Inception Score)
};

class FeatureNetwork {
 public:
  virtual ~FeatureNetwork() = default;
  // Identifies the network, its weights and its preprocessing; part of every cache key.
  virtual std::string id() const = 0;
  // The suffix of every metric's name: "" for the FID InceptionV3 ("FID", "IS", ...),
  // " (mini-CNN)" for the mini benchmark's network ("FID (mini-CNN)", ...).
  virtual std::string metric_suffix() const = 0;
  std::string metric_name() const { return "FID" + metric_suffix(); }
  virtual int64_t dim() const = 0;
  // images: uint8 (N, H, W, C), C = 1 or 3.
  virtual NetworkOutputs outputs(const at::Tensor& images) = 0;
  at::Tensor features(const at::Tensor& images) { return outputs(images).pool; }
};

}  // namespace difffit
