// Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel,
// averaged over random subsets (the torch-fidelity / clean-fid protocol).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace difffit {

struct KidOptions {
  int64_t subsets = 100;       // number of random subsets
  int64_t subset_size = 1000;  // m = min(n_x, n_y, subset_size)
  uint64_t seed = 0;           // subset sampling seed (std::mt19937_64)
};

struct KidResult {
  double mean = 0.0;  // mean of the per-subset MMD^2
  double std = 0.0;   // their standard deviation (population, ddof 0, as torch-fidelity)
  int64_t subset_size = 0;
  int64_t subsets = 0;
};

// x (n_x, D), y (n_y, D) raw features; k(a, b) = (a.b / D + 1)^3, in float64.
// Subsets are drawn without replacement, independently for x and y.
KidResult kernel_inception_distance(const at::Tensor& x, const at::Tensor& y, const KidOptions& options = {});

}  // namespace difffit
