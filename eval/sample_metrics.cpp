#include "eval/sample_metrics.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <string>

#include "common/error.h"

namespace difffit {
namespace {

// (A, D) x (B, D) -> (A, B) squared distances, clamped at 0 against round-off.
at::Tensor squared_distances(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor na = a.pow(2).sum(1, true);
  const at::Tensor nb = b.pow(2).sum(1).unsqueeze(0);
  return (na - 2.0 * at::mm(a, b.t()) + nb).clamp_min(0.0);
}

// For each row of `points`: is it within radius r_j of some `centres` row j?
at::Tensor inside_any_ball(const at::Tensor& points, const at::Tensor& centres, const at::Tensor& radii,
                           int64_t block) {
  at::Tensor inside = at::zeros({points.size(0)}, at::TensorOptions().dtype(at::kBool));
  for (int64_t i = 0; i < points.size(0); i += block) {
    const at::Tensor rows = points.narrow(0, i, std::min(block, points.size(0) - i));
    at::Tensor hit = at::zeros({rows.size(0)}, at::TensorOptions().dtype(at::kBool));
    for (int64_t j = 0; j < centres.size(0); j += block) {
      const int64_t m = std::min(block, centres.size(0) - j);
      const at::Tensor d = squared_distances(rows, centres.narrow(0, j, m));
      hit.logical_or_(d.le(radii.narrow(0, j, m).unsqueeze(0)).any(1));
    }
    inside.narrow(0, i, rows.size(0)).copy_(hit);
  }
  return inside;
}

}  // namespace

InceptionScoreResult inception_score(const at::Tensor& logits, int64_t split_size) {
  if (logits.dim() != 2 || logits.size(0) < 1 || logits.size(1) < 2)
    throw_data("Inception Score: expected logits (N, classes) with N >= 1 and at least 2 classes, got " +
               c10::str(logits.sizes()));
  if (split_size < 1) throw_usage("Inception Score: split size must be positive");
  const at::Tensor log_p = at::log_softmax(logits.to(at::kDouble), 1);
  InceptionScoreResult r;
  r.split_size = split_size;
  double sum = 0.0;
  for (int64_t s = 0; s < log_p.size(0); s += split_size) {
    const at::Tensor part = log_p.narrow(0, s, std::min(split_size, log_p.size(0) - s));
    const at::Tensor p = part.exp();
    const at::Tensor log_mean = p.mean(0, true).log();
    // p (log p - log mean p), with 0 where p underflowed to 0.
    const at::Tensor kl = at::where(p.gt(0), p * (part - log_mean), at::zeros_like(p)).sum(1).mean();
    sum += std::exp(kl.item<double>());
    ++r.splits;
  }
  r.score = sum / static_cast<double>(r.splits);
  return r;
}

at::Tensor manifold_radii(const at::Tensor& features, int64_t k, int64_t block) {
  const at::Tensor x = features.to(at::kDouble);
  const int64_t n = x.size(0);
  at::Tensor radii = at::empty({n}, x.options());
  for (int64_t i = 0; i < n; i += block) {
    const at::Tensor rows = x.narrow(0, i, std::min(block, n - i));
    // k-th smallest counting the row itself (distance 0): index k of the sorted row.
    radii.narrow(0, i, rows.size(0)).copy_(std::get<0>(at::kthvalue(squared_distances(rows, x), k + 1, 1)));
  }
  return radii;
}

PrecisionRecall precision_recall(const at::Tensor& reference, const at::Tensor& samples, int64_t k, int64_t block) {
  if (reference.dim() != 2 || samples.dim() != 2 || reference.size(1) != samples.size(1))
    throw_data("precision/recall: expected feature matrices (N, D) of the same D, got " +
               c10::str(reference.sizes()) + " and " + c10::str(samples.sizes()));
  if (k < 1) throw_usage("precision/recall: k must be positive");
  if (reference.size(0) <= k || samples.size(0) <= k)
    throw_data("precision/recall: each set needs more than k = " + std::to_string(k) + " points (reference " +
               std::to_string(reference.size(0)) + ", samples " + std::to_string(samples.size(0)) + ")");
  const at::Tensor ref = reference.to(at::kDouble), gen = samples.to(at::kDouble);
  const at::Tensor ref_radii = manifold_radii(ref, k, block), gen_radii = manifold_radii(gen, k, block);
  PrecisionRecall r;
  r.k = k;
  r.precision = inside_any_ball(gen, ref, ref_radii, block).to(at::kDouble).mean().item<double>();
  r.recall = inside_any_ball(ref, gen, gen_radii, block).to(at::kDouble).mean().item<double>();
  return r;
}

}  // namespace difffit
