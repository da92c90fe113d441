// The Frechet distance between two Gaussians (the FID formula), in float64.
#pragma once

#include <ATen/core/Tensor.h>

namespace difffit {

class FeatureStats;

// d^2 = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr sqrt(S1 S2), where
// Tr sqrt(S1 S2) = sum sqrt(max(eig(S1^1/2 S2 S1^1/2), 0)), evaluated as the sum of
// the singular values of S1^1/2 S2^1/2 (the same numbers, without squaring the
// condition number) with S^1/2 from symmetric eigendecompositions: the value of
// pytorch-fid's scipy sqrtm form, but no complex matrix square root and no eps retry.
// Tiny negative results are round-off and are returned as they are (clamp only for display).
double frechet_distance(const at::Tensor& mu1, const at::Tensor& sigma1, const at::Tensor& mu2,
                        const at::Tensor& sigma2);
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

}  // namespace difffit
