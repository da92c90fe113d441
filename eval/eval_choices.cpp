#include "eval/eval_choices.h"

#include <utility>

#include "common/error.h"

namespace difffit {
namespace {

const std::vector<std::pair<Metric, std::string>>& metric_names() {
  static const std::vector<std::pair<Metric, std::string>> names = {{Metric::Fid, "fid"},
                                                                    {Metric::Kid, "kid"},
                                                                    {Metric::Sfid, "sfid"},
                                                                    {Metric::InceptionScore, "is"},
                                                                    {Metric::PrecisionRecall, "pr"}};
  return names;
}

}  // namespace

Metric parse_metric(const std::string& name, const std::string& where) {
  for (const auto& [metric, key] : metric_names())
    if (key == name) return metric;
  throw_config(where + ": unknown metric '" + name + "' (expected fid, kid, sfid, is or pr)");
}

std::string metric_key(Metric metric) {
  for (const auto& [m, key] : metric_names())
    if (m == metric) return key;
  return "?";
}

MetricSet all_metrics() {
  MetricSet all;
  for (const auto& entry : metric_names()) all.insert(entry.first);
  return all;
}

MetricSet parse_metric_set(const std::vector<std::string>& names, const std::string& where) {
  MetricSet metrics;
  for (const std::string& list : names) {
    size_t start = 0;
    while (start <= list.size()) {
      const size_t comma = std::min(list.find(',', start), list.size());
      std::string name = list.substr(start, comma - start);
      name.erase(0, name.find_first_not_of(" \t"));
      name.erase(name.find_last_not_of(" \t") + 1);
      if (name == "all") {
        metrics = all_metrics();
      } else if (!name.empty()) {
        metrics.insert(parse_metric(name, where));
      }
      start = comma + 1;
    }
  }
  if (metrics.empty()) throw_config(where + ": name at least one metric (fid, kid, sfid, is, pr or all)");
  return metrics;
}

std::vector<std::string> metric_keys(const MetricSet& metrics) {
  std::vector<std::string> keys;
  for (Metric m : metrics) keys.push_back(metric_key(m));
  return keys;
}

FeatureNetKind parse_feature_net_kind(const std::string& name, const std::string& where) {
  if (name == "auto") return FeatureNetKind::Auto;
  if (name == "inception") return FeatureNetKind::Inception;
  if (name == "mini-cnn") return FeatureNetKind::MiniCnn;
  if (name == "none") return FeatureNetKind::None;
  throw_config(where + ": unknown feature network '" + name + "' (expected auto, inception, mini-cnn or none)");
}

std::string feature_net_kind_name(FeatureNetKind kind) {
  switch (kind) {
    case FeatureNetKind::Auto: return "auto";
    case FeatureNetKind::Inception: return "inception";
    case FeatureNetKind::MiniCnn: return "mini-cnn";
    case FeatureNetKind::None: return "none";
  }
  return "?";
}

FeatureNetKind resolved_feature_net(FeatureNetKind kind, int64_t channels) {
  if (kind != FeatureNetKind::Auto) return kind;
  return channels == 1 ? FeatureNetKind::MiniCnn : FeatureNetKind::Inception;
}

ResizeMode parse_resize_mode(const std::string& name, const std::string& where) {
  if (name == "pytorch-fid" || name == "bilinear") return ResizeMode::PytorchFid;
  if (name == "clean" || name == "bicubic") return ResizeMode::Clean;
  throw_config(where + ": unknown resize mode '" + name + "' (expected pytorch-fid or clean)");
}

std::string resize_mode_name(ResizeMode mode) { return mode == ResizeMode::Clean ? "clean" : "pytorch-fid"; }

}  // namespace difffit
