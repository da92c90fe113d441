#include "eval/kid.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "common/error.h"

namespace difffit {
namespace {

// m distinct indices out of n (partial Fisher-Yates).
at::Tensor sample_indices(int64_t n, int64_t m, std::mt19937_64& rng) {
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  for (int64_t i = 0; i < m; ++i) {
    std::uniform_int_distribution<int64_t> pick(i, n - 1);
    std::swap(idx[i], idx[pick(rng)]);
  }
  return at::tensor(std::vector<int64_t>(idx.begin(), idx.begin() + m), at::TensorOptions().dtype(at::kLong));
}

at::Tensor poly_kernel(const at::Tensor& a, const at::Tensor& b) {
  const double d = static_cast<double>(a.size(1));
  return (at::mm(a, b.t()) / d + 1.0).pow(3);
}

}  // namespace

KidResult kernel_inception_distance(const at::Tensor& x_in, const at::Tensor& y_in, const KidOptions& options) {
  if (x_in.dim() != 2 || y_in.dim() != 2 || x_in.size(1) != y_in.size(1))
    throw_data("KID: features must be (N, D) with the same D, got " + c10::str(x_in.sizes()) + " and " +
               c10::str(y_in.sizes()));
  if (options.subsets < 1 || options.subset_size < 2) throw_usage("KID: need >= 1 subset of size >= 2");
  const at::Tensor x = x_in.to(at::kCPU, at::kDouble);
  const at::Tensor y = y_in.to(at::kCPU, at::kDouble);
  const int64_t m = std::min({x.size(0), y.size(0), options.subset_size});
  if (m < 2) throw_data("KID: needs at least 2 feature vectors in each set");

  std::mt19937_64 rng(options.seed);
  std::vector<double> values;
  const double mm1 = static_cast<double>(m) * static_cast<double>(m - 1);
  for (int64_t s = 0; s < options.subsets; ++s) {
    const at::Tensor xs = x.index_select(0, sample_indices(x.size(0), m, rng));
    const at::Tensor ys = y.index_select(0, sample_indices(y.size(0), m, rng));
    const at::Tensor kxx = poly_kernel(xs, xs), kyy = poly_kernel(ys, ys), kxy = poly_kernel(xs, ys);
    // Unbiased: the diagonals of Kxx and Kyy are left out.
    const double sxx = (kxx.sum() - kxx.diagonal().sum()).item<double>() / mm1;
    const double syy = (kyy.sum() - kyy.diagonal().sum()).item<double>() / mm1;
    const double sxy = kxy.sum().item<double>() / (static_cast<double>(m) * static_cast<double>(m));
    values.push_back(sxx + syy - 2.0 * sxy);
  }
  KidResult r;
  r.subset_size = m;
  r.subsets = options.subsets;
  r.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  double var = 0.0;
  for (double v : values) var += (v - r.mean) * (v - r.mean);
  r.std = std::sqrt(var / static_cast<double>(values.size()));
  return r;
}

}  // namespace difffit
