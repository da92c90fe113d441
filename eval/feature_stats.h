// Streaming float64 statistics of feature vectors (count, mean, sum of centred
// outer products) that merge exactly across batches and ranks, and their files.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

namespace difffit {

class Communicator;

// Batches are folded in with the pairwise (Chan et al.) update, which stays
// accurate for large N where sum(x x^T) - N mu mu^T would cancel.
class FeatureStats {
 public:
  FeatureStats() = default;

  void add(const at::Tensor& features);     // (B, D), any floating dtype
  void merge(const FeatureStats& other);    // as if other's rows had been added here

  int64_t count() const { return n_; }
  int64_t dim() const;
  at::Tensor mean() const;        // (D) float64
  at::Tensor covariance() const;  // (D, D) float64, unbiased (N - 1); needs N >= 2

  // Rebuilds statistics from (N, mean, unbiased covariance) as a stats file holds them
  // (datasets 'n', 'mu', 'sigma'), checked: shapes that match, N >= 2, a covariance that is
  // symmetric with a non-negative diagonal. Errors are Data errors naming `source`.
  static FeatureStats from_moments(int64_t n, const at::Tensor& mean, const at::Tensor& covariance,
                                   const std::string& source);
  // One flat float64 buffer [N, mean, M2] for sending over MPI, and back.
  at::Tensor pack() const;
  static FeatureStats unpack(const at::Tensor& packed);
  // The statistics of every rank's rows together, identical on every rank (merged in rank order).
  FeatureStats merged_across(Communicator& communicator) const;

 private:
  int64_t n_ = 0;
  at::Tensor mean_;  // (D) float64
  at::Tensor m2_;    // (D, D) float64: sum of (x - mean)(x - mean)^T
};

// A stats file (HDF5): `mu` (D) and `sigma` (D, D) float64 (pytorch-fid's names),
// `n` int64 (1), optional raw `features` (N, D) float32 (KID needs them), and string
// attributes describing what produced it (feature_net, resize, dataset_hash, ...).
using StatsAttributes = std::map<std::string, std::string>;
void save_feature_stats(const std::string& path, const FeatureStats& stats, const StatsAttributes& attributes,
                        const at::Tensor& features = at::Tensor());
FeatureStats load_feature_stats(const std::string& path, StatsAttributes* attributes = nullptr,
                                at::Tensor* features = nullptr);

// Feature matrices and moments read from files must be finite: a NaN would surface later
// as a misleading linear-algebra error. Throws a data error naming `where` and the first row.
void require_finite(const at::Tensor& values, const std::string& where);

}  // namespace difffit
