#include "eval/frechet_distance.h"

#include <ATen/ATen.h>

#include <limits>
#include <tuple>

#include "common/error.h"
#include "eval/feature_stats.h"

namespace difffit {
namespace {

// S^1/2 = V diag(sqrt(l)) V^T; eigenvalues below the numerical-rank tolerance
// (D * eps * max l, as numpy's matrix_rank) are round-off of a rank-deficient S and are zeroed.
at::Tensor psd_sqrt(const at::Tensor& s) {
  at::Tensor evals, evecs;
  std::tie(evals, evecs) = at::linalg_eigh(s);
  const double tol = static_cast<double>(s.size(0)) * std::numeric_limits<double>::epsilon() *
                     std::max(evals.max().item<double>(), 0.0);
  const at::Tensor root = at::where(evals > tol, evals, at::zeros_like(evals)).sqrt();
  return at::mm(evecs * root.unsqueeze(0), evecs.t());
}

}  // namespace

double frechet_distance(const at::Tensor& mu1_in, const at::Tensor& sigma1_in, const at::Tensor& mu2_in,
                        const at::Tensor& sigma2_in) {
  const at::Tensor mu1 = mu1_in.to(at::kCPU, at::kDouble).reshape({-1});
  const at::Tensor mu2 = mu2_in.to(at::kCPU, at::kDouble).reshape({-1});
  const int64_t d = mu1.size(0);
  auto check = [d](const at::Tensor& s, const char* what) {
    if (s.dim() != 2 || s.size(0) != d || s.size(1) != d)
      throw_data(std::string("Frechet distance: ") + what + " has shape " + c10::str(s.sizes()) +
                 ", expected (" + std::to_string(d) + ", " + std::to_string(d) + ")");
  };
  if (mu2.size(0) != d)
    throw_data("Frechet distance: feature dimensions differ (" + std::to_string(d) + " vs " +
               std::to_string(mu2.size(0)) + ")");
  check(sigma1_in, "sigma1");
  check(sigma2_in, "sigma2");
  // Symmetrise: stored covariances can carry round-off asymmetry.
  at::Tensor s1 = sigma1_in.to(at::kCPU, at::kDouble);
  at::Tensor s2 = sigma2_in.to(at::kCPU, at::kDouble);
  s1 = (s1 + s1.t()) * 0.5;
  s2 = (s2 + s2.t()) * 0.5;
  for (const auto& [s, what] : {std::pair{&s1, "sigma1"}, std::pair{&s2, "sigma2"}})
    if (!s->isfinite().all().item<bool>())
      throw_data(std::string("Frechet distance: ") + what + " is not finite (features too large for a covariance, "
                 "or a damaged statistics file)");

  // Tr sqrt(S1 S2) = sum sqrt(eig(S1^1/2 S2 S1^1/2)) = sum of the singular values of
  // S1^1/2 S2^1/2 (their squares are those eigenvalues). Taking singular values of the
  // product of square roots avoids squaring the condition number: forming
  // S1^1/2 S2 S1^1/2 leaves round-off eigenvalues ~eps*|S|^2 whose square roots add up
  // to a visible bias when N < D (e.g. FID(A, A) = -0.08 instead of 0 for 3 images).
  const at::Tensor product = at::mm(psd_sqrt(s1), psd_sqrt(s2));
  const double tr_covmean = at::linalg_svdvals(product).sum().item<double>();

  const at::Tensor diff = mu1 - mu2;
  return at::dot(diff, diff).item<double>() + s1.trace().item<double>() + s2.trace().item<double>() -
         2.0 * tr_covmean;
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  return frechet_distance(a.mean(), a.covariance(), b.mean(), b.covariance());
}

}  // namespace difffit
