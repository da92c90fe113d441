#include "eval/image_features.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "common/communicator.h"
#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/logging.h"
#include "eval/content_hash.h"
#include "eval/feature_network.h"
#include "eval/image_set.h"

namespace difffit {
namespace {

// The rows a rank computed, as one (rows, width) tensor even when it computed none.
at::Tensor rows_or_empty(const std::vector<at::Tensor>& rows, int64_t width) {
  return rows.empty() ? at::zeros({0, width}, at::kFloat) : at::cat(rows, 0);
}

// A rank without rows does not know the logits' width: every rank takes the widest.
at::Tensor with_common_width(Communicator& ranks, const at::Tensor& rows) {
  int64_t width = 0;
  for (const at::Tensor& w : ranks.allgather(at::full({1}, rows.size(1), at::kLong)))
    width = std::max(width, w.item<int64_t>());
  return rows.size(0) > 0 ? rows : at::zeros({0, width}, at::kFloat);
}

}  // namespace

ExtractResult extract_features(const ImageSet& images, FeatureNetwork& net, const ExtractOptions& options) {
  const int64_t n = options.max_images > 0 ? std::min(options.max_images, images.size()) : images.size();
  if (options.max_images > images.size())
    log()->warn("[eval] {} holds {} images, fewer than the {} asked for", images.path(), images.size(),
                options.max_images);
  if (n < 2) throw_data(images.path() + ": needs at least 2 images for feature statistics, has " + std::to_string(n));
  const int64_t batch = std::max<int64_t>(1, options.batch_size);
  Communicator* ranks = options.ranks && options.ranks->size() > 1 ? options.ranks : nullptr;
  const RowShare mine = ranks ? row_share(n, 0, ranks->rank(), ranks->size()) : RowShare{0, n};
  ExtractResult r;
  std::vector<at::Tensor> kept, logits;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t s = mine.first; s < mine.first + mine.count; s += batch) {
    const NetworkOutputs out = net.outputs(images.images(s, std::min(batch, mine.first + mine.count - s)));
    r.stats.add(out.pool);
    if (options.keep_features) kept.push_back(out.pool.to(at::kFloat));
    if (options.spatial) r.spatial_stats.add(out.spatial);
    if (options.keep_logits) logits.push_back(out.logits.to(at::kFloat));
    if (options.after_batch && !ranks) options.after_batch();
  }
  if (options.keep_features) r.features = rows_or_empty(kept, net.dim());
  if (options.keep_logits) r.logits = rows_or_empty(logits, 0);
  if (ranks) {
    r.stats = r.stats.merged_across(*ranks);
    if (options.spatial) r.spatial_stats = r.spatial_stats.merged_across(*ranks);
    if (options.keep_features) r.features = allgather_rows(*ranks, r.features, n, 0);
    if (options.keep_logits) r.logits = allgather_rows(*ranks, with_common_width(*ranks, r.logits), n, 0);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.images = n;
  r.images_per_second = seconds > 0 ? static_cast<double>(n) / seconds : 0.0;
  if (ranks && ranks->rank() != 0) return r;  // rank 0 speaks for the set
  if (options.warn_small_set && n <= net.dim())
    log()->warn("[eval] {}: {} images for {}-d features: the covariance is rank-deficient and the score is "
                "strongly biased", images.path(), n, net.dim());
  log()->info("[eval] {}: {} images -> {}-d features at {:.1f} images/s{}", images.path(), n, net.dim(),
              r.images_per_second, ranks ? " over " + std::to_string(ranks->size()) + " ranks" : "");
  return r;
}

ExtractResult reference_statistics(const std::string& path, FeatureNetwork& net, const ExtractOptions& options,
                                   const std::string& cache_dir) {
  ImageSet images(path);
  const int64_t n = options.max_images > 0 ? std::min(options.max_images, images.size()) : images.size();
  if (cache_dir.empty()) return extract_features(images, net, options);
  Communicator* ranks = options.ranks && options.ranks->size() > 1 ? options.ranks : nullptr;
  const bool decides = !ranks || ranks->rank() == 0;  // the one rank that reads and writes the cache (run_on_rank0)

  std::string dataset_hash, file, spatial_file;
  bool cached = false;
  run_on_rank0(ranks, [&] {  // a damaged file then fails every rank, none waits for rank 0's decision
    dataset_hash = images.content_hash();
    auto cache_file = [&](const std::string& kind) {
      ContentHash key;
      key.text(kind);
      key.text(dataset_hash);
      key.text(net.id());
      key.value(n);
      return (std::filesystem::path(cache_dir) / ("refstats-" + key.hex() + ".h5")).string();
    };
    file = cache_file("refstats-v1");
    spatial_file = cache_file("refstats-spatial-v1");
    cached = std::filesystem::exists(file) && (!options.spatial || std::filesystem::exists(spatial_file));
    if (cached && options.keep_features) cached = Hdf5Reader(file).has("features");
  });
  if (ranks) cached = rank0_decides(*ranks, cached);
  if (cached) {
    ExtractResult r;
    if (!decides) return r;
    r.stats = load_feature_stats(file, nullptr, options.keep_features ? &r.features : nullptr);
    if (options.spatial) r.spatial_stats = load_feature_stats(spatial_file);
    r.images = r.stats.count();
    r.from_cache = true;
    r.cache_file = file;
    log()->info("[eval] reference statistics of {} from the cache {}", path, file);
    return r;
  }
  ExtractOptions all = options;
  all.spatial = true;  // cheap beside the forward pass, and the cache then holds both
  ExtractResult r = extract_features(images, net, all);
  run_on_rank0(ranks, [&] {
    std::error_code ec;
    std::filesystem::create_directories(cache_dir, ec);
    if (ec) throw_io(cache_dir + ": cannot create the cache folder: " + ec.message());
    const StatsAttributes attributes = {{"feature_net", net.id()}, {"metric", net.metric_name()},
                                        {"dataset_hash", dataset_hash}, {"source", path}};
    save_feature_stats(file, r.stats, attributes, r.features);
    StatsAttributes spatial_attributes = attributes;
    spatial_attributes["metric"] = "sFID" + net.metric_suffix();
    save_feature_stats(spatial_file, r.spatial_stats, spatial_attributes);
  });
  if (!decides) return r;
  r.cache_file = file;
  return r;
}

std::string default_cache_dir() {
  if (const char* d = std::getenv("DIFFFIT_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (std::filesystem::path(x) / "difffit").string();
  if (const char* h = std::getenv("HOME"); h && *h) return (std::filesystem::path(h) / ".cache" / "difffit").string();
  return ".difffit-cache";
}

}  // namespace difffit
