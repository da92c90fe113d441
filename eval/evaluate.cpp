#include "eval/evaluate.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/communicator.h"
#include "common/error.h"
#include "common/logging.h"
#include "eval/feature_network.h"
#include "eval/feature_stats.h"
#include "eval/fid_inception.h"
#include "eval/frechet_distance.h"
#include "eval/image_features.h"
#include "eval/image_set.h"
#include "eval/npz_export.h"

namespace difffit {
namespace {

// The reference side read from a statistics file, checked against the network in use.
ExtractResult stats_file_reference(const EvaluationRequest& request, const FeatureNetwork& net, bool features) {
  const std::string& path = request.reference_stats;
  if (request.metrics.count(Metric::Sfid))
    throw_usage(path + ": sFID needs the reference images (a statistics file holds pooled features only)");
  ExtractResult reference;
  StatsAttributes attributes;
  reference.stats = load_feature_stats(path, &attributes, features ? &reference.features : nullptr);
  reference.images = reference.stats.count();
  const auto it = attributes.find("feature_net");
  if (it == attributes.end())
    log()->warn("[eval] {} does not say which feature network made it; assuming {}", path, net.id());
  else if (it->second != net.id())
    throw_data(path + ": statistics were computed with feature network '" + it->second + "', not '" + net.id() +
               "': scores across networks are meaningless");
  if (features && !reference.features.defined())
    throw_usage("KID and precision/recall need the reference's raw features, which " + path +
                " does not hold: give the reference images instead");
  return reference;
}

// FID, KID and precision/recall: what pooled features alone give, as request.metrics names them.
void add_pooled_feature_scores(const EvaluationRequest& request, const FeatureStats& samples,
                               const FeatureStats& reference, const at::Tensor& sample_rows,
                               const at::Tensor& reference_rows, Evaluation& e) {
  const MetricSet& metrics = request.metrics;
  if (metrics.count(Metric::Fid)) e.fid = frechet_distance(samples, reference);
  if (metrics.count(Metric::Kid)) e.kid = kernel_inception_distance(sample_rows, reference_rows, request.kid);
  if (metrics.count(Metric::PrecisionRecall)) e.precision_recall = precision_recall(reference_rows, sample_rows, request.pr_k);
}

// The reference's statistics must come from this network; then written where asked.
void check_and_save_reference(const EvaluationRequest& request, const FeatureNetwork& net,
                              const ExtractResult& reference, const std::string& reference_name) {
  if (reference.stats.dim() != net.dim())
    throw_data(reference_name + ": statistics have dimension " + std::to_string(reference.stats.dim()) +
               ", the feature network gives " + std::to_string(net.dim()));
  if (!request.save_reference_stats.empty())
    save_feature_stats(request.save_reference_stats, reference.stats,
                       {{"feature_net", net.id()}, {"metric", net.metric_name()}, {"source", reference_name}},
                       reference.features);
  if (!request.export_reference_npz.empty()) export_stats_npz(reference.stats, request.export_reference_npz);
}

std::unique_ptr<FeatureNetwork> network_for(const FeatureNetChoice& choice, int64_t image_channels) {
  switch (resolved_feature_net(choice.kind, image_channels)) {
    case FeatureNetKind::None:
    case FeatureNetKind::Auto:
      return nullptr;
    case FeatureNetKind::Inception:
      // Resolved before any images are read, so a missing file is reported at once.
      return std::make_unique<InceptionFeatureNet>(
          resolve_inception_weights(choice.inception_weights, choice.inception_weights_from), choice.resize,
          choice.device);
    case FeatureNetKind::MiniCnn:
      if (!choice.mini_cnn_weights.empty()) return load_mini_cnn_feature_net(choice.mini_cnn_weights);
      if (choice.mini_cnn_train.empty())
        throw_usage("the mini-CNN needs the labelled images it trains on (--mini-cnn-train DATA.h5, "
                    "eval.feature_train) or a trained net (--mini-cnn-weights FILE)");
      return load_or_train_mini_cnn(choice.mini_cnn_train,
                                    choice.cache_dir.empty() ? default_cache_dir() : choice.cache_dir, choice.mini_cnn);
  }
  return nullptr;
}

}  // namespace

std::unique_ptr<FeatureNetwork> make_feature_network(const FeatureNetChoice& choice, int64_t image_channels,
                                                     Communicator* ranks) {
  std::unique_ptr<FeatureNetwork> net;
  run_on_rank0(ranks, [&] { net = network_for(choice, image_channels); });
  if (ranks && ranks->rank() != 0) net = network_for(choice, image_channels);
  return net;
}

Evaluation evaluate_features(const at::Tensor& samples, const at::Tensor& reference,
                             const EvaluationRequest& request) {
  const MetricSet& metrics = request.metrics;
  if (metrics.count(Metric::Sfid) || metrics.count(Metric::InceptionScore))
    throw_usage("eval: given features allow fid, kid and pr (sFID and IS need images)");
  FeatureStats sample_stats, reference_stats;
  sample_stats.add(samples);
  reference_stats.add(reference);
  Evaluation e;
  e.feature_net = "given";
  e.metric_suffix = " (given features)";
  e.samples = request.samples;
  e.reference = request.reference;
  e.num_samples = sample_stats.count();
  e.num_reference = reference_stats.count();
  add_pooled_feature_scores(request, sample_stats, reference_stats, samples, reference, e);
  return e;
}

Evaluation evaluate_samples(const EvaluationRequest& request, FeatureNetwork& net) {
  const auto begin = std::chrono::steady_clock::now();
  if (request.reference.empty() == request.reference_stats.empty())
    throw_usage("evaluation: give the reference images or a reference statistics file (one of them)");
  const MetricSet& metrics = request.metrics;
  const bool features = metrics.count(Metric::Kid) || metrics.count(Metric::PrecisionRecall);
  // Checks the samples before any work.
  const ImageSet samples = request.sample_images.defined()
                               ? ImageSet(request.samples, request.sample_images, request.sample_labels,
                                          request.sample_images_first, request.sample_images_total)
                               : ImageSet(request.samples);
  const bool scorer = !request.ranks || request.ranks->rank() == 0;

  ExtractOptions sample_options;
  sample_options.max_images = request.num_samples;
  sample_options.batch_size = request.batch_size;
  sample_options.warn_small_set = request.warn_small_set;
  sample_options.keep_features = features;
  sample_options.spatial = metrics.count(Metric::Sfid) > 0;
  sample_options.keep_logits = metrics.count(Metric::InceptionScore) > 0;
  sample_options.ranks = request.ranks;
  sample_options.after_batch = request.after_batch;
  ExtractOptions reference_options = sample_options;
  reference_options.max_images = request.num_reference;
  reference_options.keep_logits = false;

  // A statistics file is read by the scoring rank alone; images are shared out.
  ExtractResult reference;
  const std::string reference_name = request.reference.empty() ? request.reference_stats : request.reference;
  if (request.reference.empty()) {
    run_on_rank0(request.ranks, [&] { reference = stats_file_reference(request, net, features); });
  } else {
    reference = reference_statistics(request.reference, net, reference_options, request.cache_dir);
  }
  run_on_rank0(request.ranks, [&] { check_and_save_reference(request, net, reference, reference_name); });
  const ExtractResult generated = extract_features(samples, net, sample_options);

  Evaluation e;
  e.feature_net = net.id();
  e.metric_suffix = net.metric_suffix();
  e.samples = request.samples;
  e.reference = reference_name;
  e.num_samples = generated.images;
  e.num_reference = reference.stats.count();
  e.reference_from_cache = reference.from_cache;
  if (!scorer) return e;
  add_pooled_feature_scores(request, generated.stats, reference.stats, generated.features, reference.features, e);
  if (metrics.count(Metric::Sfid)) e.sfid = frechet_distance(generated.spatial_stats, reference.spatial_stats);
  if (metrics.count(Metric::InceptionScore)) e.inception_score = inception_score(generated.logits, request.is_split_size);
  if (auto* cnn = dynamic_cast<MiniCnnFeatureNet*>(&net))
    e.class_accuracy = class_accuracy(cnn->net(), samples, request.num_samples);
  e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  std::string summary = evaluation_text(e);
  std::replace(summary.begin(), summary.end(), '\n', ';');
  log()->info("[eval] {}{}", summary, e.reference_from_cache ? " (cached reference statistics)" : "");
  return e;
}

void add_evaluation_json(const Evaluation& e, nlohmann::ordered_json& j) {
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(); };
  const std::string& s = e.metric_suffix;
  nlohmann::ordered_json names = nlohmann::ordered_json::object();
  j["metric"] = "FID" + s;
  j["feature_net"] = e.feature_net;
  j["reference"] = e.reference;
  if (e.fid) {
    j["fid"] = number(*e.fid);
    names["fid"] = "FID" + s;
  }
  j["fid_samples"] = e.num_samples;
  j["fid_reference"] = e.num_reference;
  if (e.sfid) {
    j["sfid"] = number(*e.sfid);
    names["sfid"] = "sFID" + s;
  }
  if (e.kid) {
    j["kid"] = number(e.kid->mean);
    j["kid_std"] = number(e.kid->std);
    j["kid_subset_size"] = e.kid->subset_size;
    j["kid_subsets"] = e.kid->subsets;
    names["kid"] = "KID" + s;
  }
  if (e.inception_score) {
    j["inception_score"] = number(e.inception_score->score);
    j["inception_score_splits"] = e.inception_score->splits;
    names["inception_score"] = "Inception Score" + s;
  }
  if (e.precision_recall) {
    j["precision"] = number(e.precision_recall->precision);
    j["recall"] = number(e.precision_recall->recall);
    j["precision_recall_k"] = e.precision_recall->k;
    names["precision"] = "Precision" + s;
    names["recall"] = "Recall" + s;
  }
  if (e.class_accuracy) {
    j["class_accuracy"] = number(*e.class_accuracy);
    names["class_accuracy"] = "class accuracy" + s;
  }
  j["metric_names"] = names;
}

// Tiny negative distances are round-off: shown as 0 (the JSON keeps them). A large negative
// one is a fault upstream and is shown as it is, never as a perfect score.
namespace {
double shown_distance(double d) { return d < 0 && d > -1e-3 ? 0.0 : d; }
}  // namespace

std::string evaluation_text(const Evaluation& e) {
  const std::string& s = e.metric_suffix;
  std::string out;
  if (e.fid)
    out += fmt::format("FID{}: {:.6f}  ({} samples vs {} reference, features {})\n", s, shown_distance(*e.fid),
                       e.num_samples, e.num_reference, e.feature_net);
  if (e.sfid) out += fmt::format("sFID{}: {:.6f}\n", s, shown_distance(*e.sfid));
  if (e.kid)
    out += fmt::format("KID{}: {:.6g} +- {:.6g}  ({} subsets of {})\n", s, e.kid->mean, e.kid->std, e.kid->subsets,
                       e.kid->subset_size);
  if (e.inception_score)
    out += fmt::format("Inception Score{}: {:.4f}  ({} split(s) of up to {} samples)\n", s, e.inception_score->score,
                       e.inception_score->splits, e.inception_score->split_size);
  if (e.precision_recall)
    out += fmt::format("Precision{}: {:.4f}\nRecall{}: {:.4f}  (k = {})\n", s, e.precision_recall->precision, s,
                       e.precision_recall->recall, e.precision_recall->k);
  if (e.class_accuracy) out += fmt::format("class accuracy{}: {:.4f}\n", s, *e.class_accuracy);
  return out;
}

}  // namespace difffit
