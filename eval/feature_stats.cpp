#include "eval/feature_stats.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "common/communicator.h"
#include "common/error.h"
#include "common/hdf5_tensors.h"

namespace difffit {

int64_t FeatureStats::dim() const { return mean_.defined() ? mean_.size(0) : 0; }

void FeatureStats::add(const at::Tensor& features) {
  if (features.dim() != 2) throw_data("feature statistics: features must be (N, D), got " + c10::str(features.sizes()));
  if (features.size(0) == 0) return;
  FeatureStats batch;
  const at::Tensor x = features.detach().to(at::kCPU, at::kDouble);
  batch.n_ = x.size(0);
  batch.mean_ = x.mean(0);
  const at::Tensor centred = x - batch.mean_;
  batch.m2_ = at::mm(centred.t(), centred);
  merge(batch);
}

void FeatureStats::merge(const FeatureStats& other) {
  if (other.n_ == 0) return;
  if (n_ == 0) {
    n_ = other.n_;
    mean_ = other.mean_.clone();
    m2_ = other.m2_.clone();
    return;
  }
  if (other.dim() != dim())
    throw_data("feature statistics: cannot merge dimension " + std::to_string(other.dim()) + " into " +
               std::to_string(dim()));
  // Chan et al.: M2 = M2a + M2b + delta delta^T * na nb / n.
  const double na = static_cast<double>(n_), nb = static_cast<double>(other.n_), n = na + nb;
  const at::Tensor delta = other.mean_ - mean_;
  m2_ = m2_ + other.m2_ + at::outer(delta, delta) * (na * nb / n);
  mean_ = mean_ + delta * (nb / n);
  n_ += other.n_;
}

at::Tensor FeatureStats::mean() const {
  if (n_ == 0) throw_data("feature statistics: no samples");
  return mean_;
}

at::Tensor FeatureStats::covariance() const {
  if (n_ < 2) throw_data("feature statistics: a covariance needs at least 2 samples, have " + std::to_string(n_));
  return m2_ / static_cast<double>(n_ - 1);
}

FeatureStats FeatureStats::from_moments(int64_t n, const at::Tensor& mean, const at::Tensor& covariance,
                                        const std::string& source) {
  if (mean.dim() != 1 || mean.numel() == 0)
    throw_data(source + ": dataset 'mu' is " + (mean.numel() == 0 ? "empty" : c10::str(mean.sizes())));
  if (covariance.dim() != 2 || covariance.size(0) != mean.size(0) || covariance.size(1) != mean.size(0))
    throw_data(source + ": dataset 'sigma' is " + c10::str(covariance.sizes()) + ", expected [" +
               std::to_string(mean.size(0)) + ", " + std::to_string(mean.size(0)) + "] for 'mu' " +
               c10::str(mean.sizes()));
  // A covariance is symmetric with a non-negative diagonal; anything else scores nonsense.
  // (Symmetric to float32 rounding: files written by numpy in float32 are accepted.)
  const double scale = std::max(1.0, covariance.abs().max().item<double>());
  if ((covariance - covariance.t()).abs().max().item<double>() > 1e-5 * scale)
    throw_data(source + ": dataset 'sigma' is not symmetric: not a covariance matrix");
  if (covariance.diagonal().min().item<double>() < 0)
    throw_data(source + ": dataset 'sigma' has a negative variance on its diagonal: not a covariance matrix");
  if (n < 2) throw_data(source + ": dataset 'n' is " + std::to_string(n) + "; statistics need N >= 2 features");
  FeatureStats s;
  s.n_ = n;
  s.mean_ = mean.to(at::kDouble).clone();
  s.m2_ = covariance.to(at::kDouble) * static_cast<double>(n - 1);
  return s;
}

at::Tensor FeatureStats::pack() const {
  const int64_t d = dim();
  at::Tensor out = at::empty({1 + d + d * d}, at::TensorOptions().dtype(at::kDouble));
  out[0] = static_cast<double>(n_);
  if (d > 0) {
    out.narrow(0, 1, d).copy_(mean_);
    out.narrow(0, 1 + d, d * d).copy_(m2_.reshape({-1}));
  }
  return out;
}

FeatureStats FeatureStats::merged_across(Communicator& communicator) const {
  // Buffers must have one size everywhere: a rank without rows sends zeros with N = 0.
  int64_t d = 0;
  for (const at::Tensor& dims : communicator.allgather(at::full({1}, dim(), at::kLong))) {
    d = std::max(d, dims.item<int64_t>());
  }
  at::Tensor mine = n_ > 0 ? pack() : at::zeros({1 + d + d * d}, at::TensorOptions().dtype(at::kDouble));
  FeatureStats total;
  for (const at::Tensor& packed : communicator.allgather(mine)) total.merge(unpack(packed));
  return total;
}

FeatureStats FeatureStats::unpack(const at::Tensor& packed) {
  const at::Tensor p = packed.to(at::kCPU, at::kDouble).reshape({-1});
  const int64_t size = p.size(0);
  int64_t d = 0;
  while (1 + d + d * d < size) ++d;
  if (size < 1 || 1 + d + d * d != size) throw_data("feature statistics: packed buffer has a bad size");
  FeatureStats s;
  s.n_ = static_cast<int64_t>(p[0].item<double>());
  if (s.n_ > 0) {
    s.mean_ = p.narrow(0, 1, d).clone();
    s.m2_ = p.narrow(0, 1 + d, d * d).reshape({d, d}).clone();
  }
  return s;
}

void save_feature_stats(const std::string& path, const FeatureStats& stats, const StatsAttributes& attributes,
                        const at::Tensor& features) {
  Hdf5Writer out(path);
  out.write("mu", stats.mean());
  out.write("sigma", stats.covariance());
  out.write("n", at::full({1}, stats.count(), at::TensorOptions().dtype(at::kLong)));
  if (features.defined()) out.write("features", features.to(at::kFloat));
  for (const auto& [key, value] : attributes) out.write_string_attribute(key, value);
  out.commit();
}

void require_finite(const at::Tensor& values, const std::string& where) {
  const at::Tensor bad = values.isfinite().logical_not();
  if (!bad.any().item<bool>()) return;
  const int64_t row = values.dim() == 0 ? 0 : bad.reshape({values.size(0), -1}).any(1).nonzero()[0][0].item<int64_t>();
  throw_data(where + ": holds NaN or infinite values (first in row " + std::to_string(row) + ")");
}

FeatureStats load_feature_stats(const std::string& path, StatsAttributes* attributes, at::Tensor* features) {
  Hdf5Reader in(path);
  const at::Tensor mu = in.read("mu", at::kDouble, 1);
  const at::Tensor sigma = in.read("sigma", at::kDouble, 2);
  require_finite(mu, path + ": dataset 'mu'");
  require_finite(sigma, path + ": dataset 'sigma'");
  // pytorch-fid style files carry no N; 2 keeps the covariance as stored.
  const int64_t n = in.has("n") ? in.read("n", at::kLong, 1)[0].item<int64_t>() : 2;
  const FeatureStats stats = FeatureStats::from_moments(n, mu, sigma, path);
  if (attributes) {
    for (const char* key : {"feature_net", "metric", "resize", "dataset_hash", "source"})
      if (in.has_attribute(key)) (*attributes)[key] = in.read_string_attribute(key);
  }
  if (features && in.has("features")) {
    *features = in.read("features", at::kFloat, 2);
    require_finite(*features, path + ": dataset 'features'");
  }
  return stats;
}

}  // namespace difffit
