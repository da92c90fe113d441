#include "eval/image_features.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "common/error.h"
#include "common/logging.h"
#include "eval/content_hash.h"
#include "eval/feature_network.h"
#include "eval/image_set.h"

namespace difffit {

ExtractResult extract_features(const ImageSet& images, FeatureNetwork& net, const ExtractOptions& options) {
  const int64_t n = options.max_images > 0 ? std::min(options.max_images, images.size()) : images.size();
  if (options.max_images > images.size())
    log()->warn("[eval] {} holds {} images, fewer than the {} asked for", images.path(), images.size(),
                options.max_images);
  if (n < 2) throw_data(images.path() + ": needs at least 2 images for feature statistics, has " + std::to_string(n));
  const int64_t batch = std::max<int64_t>(1, options.batch_size);
  ExtractResult r;
  std::vector<at::Tensor> kept;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < n; s += batch) {
    const at::Tensor f = net.features(images.images(s, std::min(batch, n - s)));
    r.stats.add(f);
    if (options.keep_features) kept.push_back(f.to(at::kFloat));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.images = n;
  r.images_per_second = seconds > 0 ? static_cast<double>(n) / seconds : 0.0;
  if (options.keep_features) r.features = at::cat(kept, 0);
  if (n <= net.dim())
    log()->warn("[eval] {}: {} images for {}-d features: the covariance is rank-deficient and the score is "
                "strongly biased", images.path(), n, net.dim());
  log()->info("[eval] {}: {} images -> {}-d features at {:.1f} images/s", images.path(), n, net.dim(),
              r.images_per_second);
  return r;
}

ExtractResult reference_statistics(const std::string& path, FeatureNetwork& net, const ExtractOptions& options,
                                   const std::string& cache_dir) {
  ImageSet images(path);
  const int64_t n = options.max_images > 0 ? std::min(options.max_images, images.size()) : images.size();
  if (cache_dir.empty()) return extract_features(images, net, options);

  const std::string dataset_hash = images.content_hash();
  ContentHash key;
  key.text("refstats-v1");
  key.text(dataset_hash);
  key.text(net.id());
  key.value(n);
  const std::string file = (std::filesystem::path(cache_dir) / ("refstats-" + key.hex() + ".h5")).string();
  if (std::filesystem::exists(file)) {
    ExtractResult r;
    at::Tensor features;
    r.stats = load_feature_stats(file, nullptr, options.keep_features ? &features : nullptr);
    if (!options.keep_features || features.defined()) {
      r.features = features;
      r.images = r.stats.count();
      r.from_cache = true;
      r.cache_file = file;
      log()->info("[eval] reference statistics of {} from the cache {}", path, file);
      return r;
    }
  }
  ExtractResult r = extract_features(images, net, options);
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  if (ec) throw_io(cache_dir + ": cannot create the cache folder: " + ec.message());
  save_feature_stats(file, r.stats,
                     {{"feature_net", net.id()}, {"metric", net.metric_name()}, {"dataset_hash", dataset_hash},
                      {"source", path}},
                     r.features);
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
