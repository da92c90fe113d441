#include "worker/run/run_scoring.h"

#include <ATen/ATen.h>

#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "eval/feature_network.h"
#include "eval/image_features.h"
#include "eval/image_set.h"
#include "eval/sample_grid.h"

namespace difffit {

std::optional<Evaluation> score_samples(const ExperimentConfig& config, const std::string& samples_path,
                                        const std::string& grid_path) {
  ImageSet samples(samples_path);
  if (!grid_path.empty()) {
    GridStyle style;
    style.columns = config.eval.grid_columns;
    style.scale = readable_grid_scale(samples.height());
    style.label_rows = true;
    style.class_names = class_names_in(config.data.train);
    write_image_set_grid(grid_path, samples, style);
  }
  if (config.eval.feature_net == FeatureNetKind::None || config.data.reference.empty()) return std::nullopt;

  FeatureNetChoice choice;
  choice.kind = config.eval.feature_net;
  choice.inception_weights = config.eval.inception_weights;
  choice.resize = config.eval.resize;
  choice.device = device_kind_name(config.train.device);
  // One mini-CNN per task: trained on the task's own training images unless told otherwise.
  choice.mini_cnn_train = config.eval.feature_train.empty() ? config.data.train : config.eval.feature_train;
  const bool mini_cnn = resolved_feature_net(choice.kind, samples.channels()) == FeatureNetKind::MiniCnn;
  if (mini_cnn && config.eval.feature_train.empty() && !Hdf5Reader(choice.mini_cnn_train).has("images"))
    throw_config("eval.feature_train: the training set " + choice.mini_cnn_train +
                 " holds latents, not images: name an image file for the mini-CNN");
  std::unique_ptr<FeatureNetwork> net = make_feature_network(choice, samples.channels());

  EvaluationRequest request;
  request.samples = samples_path;
  request.reference = config.data.reference;
  request.metrics = config.eval.metrics;
  request.num_reference = config.eval.num_reference;
  request.cache_dir = default_cache_dir();
  return evaluate_samples(request, *net);
}

}  // namespace difffit
