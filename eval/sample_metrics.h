// The ADM evaluator's sample metrics besides FID: Inception Score from class
// probabilities and improved Precision/Recall from a k-NN estimate of each set's
// feature manifold (Kynkaanniemi et al. 2019, as guided-diffusion's evaluations/).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace difffit {

// ADM's split scheme: softmax(logits) row by row, consecutive splits of `split_size`
// rows (the last may be shorter), IS of a split = exp(mean_i KL(p_i || mean p)); the
// result is the mean over splits. In float64; p log p is taken as 0 where p = 0 (ADM,
// in float32, would give NaN there).
struct InceptionScoreResult {
  double score = 0.0;
  int64_t splits = 0;
  int64_t split_size = 0;
};
InceptionScoreResult inception_score(const at::Tensor& logits, int64_t split_size = 5000);

// Each set's manifold is the union of balls around its points with the radius of the
// k-th nearest other point (ADM: k = 3; the k-th smallest distance counting the point
// itself at 0). Precision: the share of samples inside the reference manifold; recall:
// the share of reference points inside the samples' manifold. Squared Euclidean
// distances (|u|^2 - 2 u.v + |v|^2, clamped at 0, as ADM), in float64 and in blocks of
// `block` rows and columns; ADM computes them in float16 first, which can move points
// on a ball's edge.
struct PrecisionRecall {
  double precision = 0.0;
  double recall = 0.0;
  int64_t k = 3;
};
PrecisionRecall precision_recall(const at::Tensor& reference, const at::Tensor& samples, int64_t k = 3,
                                 int64_t block = 10000);

// (N, D) -> the squared distance of each row to its k-th nearest row (itself at 0 included).
at::Tensor manifold_radii(const at::Tensor& features, int64_t k, int64_t block = 10000);

}  // namespace difffit
