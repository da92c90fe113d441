// What FID/KID need from a feature network: images in, feature vectors out, and
// names that say honestly which network produced a score.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace difffit {

class FeatureNetwork {
 public:
  virtual ~FeatureNetwork() = default;
  // Identifies the network, its weights and its preprocessing; part of every cache key.
  virtual std::string id() const = 0;
  // The metric's name in reports: "FID" only for the FID InceptionV3, else e.g. "FID (mini-CNN)".
  virtual std::string metric_name() const = 0;
  virtual int64_t dim() const = 0;
  // images: uint8 (N, H, W, C), C = 1 or 3 -> float32 (N, dim()).
  virtual at::Tensor features(const at::Tensor& images) = 0;
};

}  // namespace difffit
