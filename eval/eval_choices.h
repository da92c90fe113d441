// The closed sets of names evaluation takes from files and flags: metrics, feature
// networks, resize modes. Parsed once where they come in; errors list the valid names.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace difffit {

// The ADM evaluator's metrics plus KID. Names in files and flags: fid kid sfid is pr.
enum class Metric { Fid, Kid, Sfid, InceptionScore, PrecisionRecall };
using MetricSet = std::set<Metric>;
Metric parse_metric(const std::string& name, const std::string& where);  // throws Config naming `where`
std::string metric_key(Metric metric);
MetricSet all_metrics();
// "fid,kid" or the items of a YAML list; an empty list is an error.
MetricSet parse_metric_set(const std::vector<std::string>& names, const std::string& where);
std::vector<std::string> metric_keys(const MetricSet& metrics);  // in the enum's order

// Auto: the mini-CNN for 1-channel images, else the FID InceptionV3.
enum class FeatureNetKind { Auto, Inception, MiniCnn, None };
FeatureNetKind parse_feature_net_kind(const std::string& name, const std::string& where);
std::string feature_net_kind_name(FeatureNetKind kind);
// Auto resolved for images of `channels` channels; other kinds as they are.
FeatureNetKind resolved_feature_net(FeatureNetKind kind, int64_t channels);

// How images reach 299x299 for the Inception: pytorch-fid (bilinear, align_corners=False,
// on [0,1] floats) or clean (PIL's float bicubic on 0..255, clipped, as clean-fid resizes).
enum class ResizeMode { PytorchFid, Clean };
ResizeMode parse_resize_mode(const std::string& name, const std::string& where = "resize");
std::string resize_mode_name(ResizeMode mode);

}  // namespace difffit
