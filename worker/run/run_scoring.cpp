#include "worker/run/run_scoring.h"

#include <ATen/ATen.h>

#include <chrono>

#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/logging.h"
#include "eval/fid_inception.h"
#include "eval/frechet_distance.h"
#include "eval/image_features.h"
#include "eval/image_set.h"
#include "eval/kid.h"
#include "eval/mini_cnn.h"
#include "eval/sample_grid.h"

namespace difffit {
namespace {

std::unique_ptr<FeatureNetwork> make_feature_net(const ExperimentConfig& config, int64_t channels) {
  std::string kind = config.eval.feature_net;
  if (kind == "auto") kind = channels == 1 ? "mini-cnn" : "inception";
  if (kind == "mini-cnn") {
    const std::string train = config.eval.feature_train.empty() ? config.data.train : config.eval.feature_train;
    if (config.eval.feature_train.empty() && !Hdf5Reader(train).has("images")) {
      throw_config("eval.feature_train: the training set " + train +
                   " holds latents, not images: name an image file for the mini-CNN");
    }
    return load_or_train_mini_cnn(train, default_cache_dir());
  }
  return std::make_unique<InceptionFeatureNet>(resolve_inception_weights(config.eval.inception_weights),
                                               parse_resize_mode(config.eval.resize), config.train.device);
}

}  // namespace

ScoreResult score_samples(const ExperimentConfig& config, const std::string& samples_path,
                          const std::string& grid_path) {
  ScoreResult result;
  const auto begin = std::chrono::steady_clock::now();
  ImageSet samples(samples_path);
  if (!grid_path.empty()) {
    GridStyle style;
    style.columns = config.eval.grid_columns;
    style.scale = readable_grid_scale(samples.height());
    style.label_rows = true;
    style.class_names = class_names_in(config.data.train);
    write_sample_grid(grid_path, samples.images(0, samples.size()), samples.labels(), style);
  }
  if (config.eval.feature_net == "none" || config.data.reference.empty()) return result;

  std::unique_ptr<FeatureNetwork> net = make_feature_net(config, samples.channels());
  ExtractOptions options;
  options.keep_features = config.eval.kid;
  ExtractResult fake = extract_features(samples, *net, options);
  options.max_images = config.eval.num_reference;
  ExtractResult real = reference_statistics(config.data.reference, *net, options, default_cache_dir());
  result.scored = true;
  result.metric = net->metric_name();
  result.feature_net = net->id();
  result.fid = frechet_distance(fake.stats, real.stats);
  result.num_samples = fake.images;
  result.num_reference = real.images;
  if (auto* cnn = dynamic_cast<MiniCnnFeatureNet*>(net.get())) {
    if (std::optional<double> accuracy = class_accuracy(cnn->net(), samples_path)) {
      result.class_accuracy = *accuracy;
      result.has_class_accuracy = true;
    }
  }
  if (config.eval.kid) {
    KidResult kid = kernel_inception_distance(fake.features, real.features);
    result.has_kid = true;
    result.kid_mean = kid.mean;
    result.kid_std = kid.std;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  log()->info("[eval] {} = {:.3f} ({} samples vs {} reference images{}){}", result.metric, result.fid,
              result.num_samples, result.num_reference, real.from_cache ? ", cached reference statistics" : "",
              result.has_class_accuracy ? fmt::format("; class accuracy {:.1f}%", 100 * result.class_accuracy) : "");
  return result;
}

}  // namespace difffit
