// The one way generated samples are scored: `difffit eval`, `difffit run` and a sweep's
// runs each describe what they want in an EvaluationRequest and get an Evaluation.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "eval/eval_choices.h"
#include "eval/kid.h"
#include "eval/mini_cnn.h"
#include "eval/sample_metrics.h"

namespace difffit {

class Communicator;
class FeatureNetwork;

struct FeatureNetChoice {
  FeatureNetKind kind = FeatureNetKind::Auto;  // Auto: mini-CNN for 1-channel images, else Inception
  std::string inception_weights;               // "" = $DIFFFIT_INCEPTION_WEIGHTS
  std::string inception_weights_from = "--inception-weights";  // what set it, named in errors
  ResizeMode resize = ResizeMode::PytorchFid;  // Inception input resize
  c10::Device device = c10::Device(c10::kCPU); // Inception only
  std::string mini_cnn_train;                  // labelled images the mini-CNN trains on (once; cached)
  std::string mini_cnn_weights;                // ... or a trained mini-CNN used as is
  MiniCnnTrainOptions mini_cnn;                // its training
  std::string cache_dir;                       // where trained mini-CNNs are kept
};
// The network `choice` names for images of `image_channels` channels; nullptr for None.
// Throws Data when the Inception weights are missing, Usage when the mini-CNN has no data.
// With `ranks` every rank gets its own copy: rank 0 builds it first (a mini-CNN it has to
// train lands in the cache), then the others (from that cache when they share it).
std::unique_ptr<FeatureNetwork> make_feature_network(const FeatureNetChoice& choice, int64_t image_channels,
                                                     Communicator* ranks = nullptr);

struct EvaluationRequest {
  std::string samples;          // HDF5 `images` uint8 (N, H, W, C) [+ `y`] (with sample_images: their name)
  at::Tensor sample_images;     // uint8 (N, H, W, C) in memory instead of the file (optional) ...
  at::Tensor sample_labels;     // ... and the class each was drawn for (optional)
  // sample_images may be a rank's share: rows [first, first + rows) of total (-1: all of them)
  int64_t sample_images_first = 0, sample_images_total = -1;
  std::string reference;        // reference images (statistics cached in cache_dir), or ...
  std::string reference_stats;  // ... a statistics file (FID; KID and P/R when it holds features)
  MetricSet metrics = {Metric::Fid};
  int64_t num_samples = 0;      // the first N samples (0 = all)
  int64_t num_reference = 0;    // the first N reference images (0 = all)
  int64_t batch_size = 50;      // images per forward pass
  KidOptions kid;
  int64_t is_split_size = 5000; // ADM's Inception Score splits
  int64_t pr_k = 3;             // ADM's k-NN neighbourhood for precision/recall
  std::string cache_dir;        // reference statistics cache ("" = none)
  std::string save_reference_stats;  // also write the reference statistics here (optional)
  std::string export_reference_npz;  // ... and its mu, sigma as .npz for the ADM evaluator (optional)
  // Share the feature extraction over these ranks (all of them call evaluate_samples with
  // the same request): each runs the network on its share of the samples (and of the
  // reference when it is not cached), the statistics merge across ranks and the rows KID,
  // IS and precision/recall need are gathered. Rank 0 computes the scores and writes any
  // file; the other ranks get an Evaluation without scores. Null: one process does it all.
  Communicator* ranks = nullptr;
  std::function<void()> after_batch;  // one process only: after each feature batch (ExtractOptions)
  bool warn_small_set = true;  // warn when the samples are no more than the feature dimensions
};

struct Evaluation {
  std::string feature_net;    // the network's id (weights, resize)
  std::string metric_suffix;  // "" (Inception) or " (mini-CNN)": every metric's name ends with it
  std::string samples, reference;
  int64_t num_samples = 0, num_reference = 0;
  bool reference_from_cache = false;
  std::optional<double> fid, sfid;
  std::optional<KidResult> kid;
  std::optional<InceptionScoreResult> inception_score;
  std::optional<PrecisionRecall> precision_recall;
  std::optional<double> class_accuracy;  // mini-CNN, labelled samples: share drawn as the class they show
  double seconds = 0.0;
};

Evaluation evaluate_samples(const EvaluationRequest& request, FeatureNetwork& net);

// FID, KID and precision/recall of precomputed feature matrices (N, D) of the samples and
// the reference, as request.metrics names them (named by request.samples and
// request.reference); sFID and IS need images (Usage error).
Evaluation evaluate_features(const at::Tensor& samples, const at::Tensor& reference, const EvaluationRequest& request);

// The same keys everywhere (metrics.json, `difffit eval --json`): metric, feature_net,
// reference, fid, fid_samples, fid_reference, kid, kid_std, kid_subset_size, kid_subsets,
// sfid, inception_score, inception_score_splits, precision, recall, precision_recall_k,
// class_accuracy, and metric_names (key -> the metric's full name). Non-finite -> null.
void add_evaluation_json(const Evaluation& evaluation, nlohmann::ordered_json& out);
// One line per metric, for people.
std::string evaluation_text(const Evaluation& evaluation);

}  // namespace difffit
