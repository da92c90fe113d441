#include "worker/run/run_scoring.h"

#include <ATen/ATen.h>

#include "common/communicator.h"
#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/torch_device.h"
#include "eval/eval_choices.h"
#include "eval/feature_network.h"
#include "eval/fid_inception.h"
#include "eval/image_features.h"
#include "eval/image_set.h"
#include "eval/sample_grid.h"
#include "worker/run/run_sampling.h"
#include "worker/sample/samples_file.h"

namespace difffit {
namespace {

// The setting that names the Inception weights, in the errors of a run that lacks them.
constexpr const char* kInceptionWeightsKey = "eval.inception_weights";

}  // namespace

std::unique_ptr<FeatureNetwork> run_feature_network(const ExperimentConfig& config, int64_t channels,
                                                    Communicator* ranks) {
  if (config.eval.feature_net == FeatureNetKind::None || config.data.reference.empty()) return nullptr;
  FeatureNetChoice choice;
  choice.kind = config.eval.feature_net;
  choice.inception_weights = config.eval.inception_weights;
  choice.inception_weights_from = kInceptionWeightsKey;
  choice.resize = config.eval.resize;
  choice.device = torch_device(config.train.device);
  // One mini-CNN per task: trained on the task's own training images unless told otherwise.
  choice.mini_cnn_train = config.eval.feature_train.empty() ? config.data.train : config.eval.feature_train;
  const bool mini_cnn = resolved_feature_net(choice.kind, channels) == FeatureNetKind::MiniCnn;
  if (mini_cnn && config.eval.feature_train.empty() && !Hdf5Reader(choice.mini_cnn_train).has("images"))
    throw_config("eval.feature_train: the training set " + choice.mini_cnn_train +
                 " holds latents, not images: name an image file for the mini-CNN");
  return make_feature_network(choice, channels, ranks);
}

void check_run_scoring_setup(const ExperimentConfig& config) {
  if (config.data.reference.empty() || (config.sample.num == 0 && config.eval.every == 0)) return;
  FeatureNetKind kind = config.eval.feature_net;
  if (kind == FeatureNetKind::Auto) {
    try {  // the reference images' channels decide; a file that cannot be read is reported when scored
      const std::vector<int64_t> shape = Hdf5Reader(config.data.reference).shape("images");
      if (shape.size() == 4) kind = resolved_feature_net(kind, shape[3]);
    } catch (const Error&) {
      return;
    }
  }
  if (kind == FeatureNetKind::Inception) resolve_inception_weights(config.eval.inception_weights, kInceptionWeightsKey);
}

std::optional<Evaluation> score_run_images(const ExperimentConfig& config, const SamplesFile& file,
                                           const std::string& name, FeatureNetwork& net, Communicator* ranks,
                                           bool warn_small_set) {
  EvaluationRequest request;
  request.warn_small_set = warn_small_set;
  request.samples = name;
  request.sample_images = file.images;
  request.sample_labels = file.labels;
  request.sample_images_first = file.images_first;
  request.sample_images_total = file.latents.size(0);
  request.reference = config.data.reference;
  request.metrics = config.eval.metrics;
  request.num_reference = config.eval.num_reference;
  request.cache_dir = default_cache_dir();
  request.ranks = ranks;
  // A stop signal ends the scoring: in one process after the batch at hand, over several
  // ranks (uneven shares) before it starts.
  if (ranks && ranks->size() > 1) {
    stop_if_signalled(ranks);
  } else {
    request.after_batch = [] { stop_if_signalled(nullptr); };
  }
  Evaluation evaluation = evaluate_samples(request, net);
  if (ranks && ranks->rank() != 0) return std::nullopt;
  return evaluation;
}

std::optional<Evaluation> score_samples(const ExperimentConfig& config, const SamplesFile& file,
                                        const std::string& samples_path, const std::string& grid_path,
                                        Communicator* ranks) {
  const ImageSet samples(samples_path, file.images, file.labels, file.images_first, file.latents.size(0));
  const bool writer = !ranks || ranks->rank() == 0;
  if (writer && !grid_path.empty()) {
    GridStyle style;
    style.columns = config.eval.grid_columns;
    style.scale = readable_grid_scale(samples.height());
    style.label_rows = true;
    style.class_names = class_names_in(config.data.train);
    write_image_set_grid(grid_path, samples, style);
  }
  std::unique_ptr<FeatureNetwork> net = run_feature_network(config, samples.channels(), ranks);
  if (!net) return std::nullopt;
  return score_run_images(config, file, samples_path, *net, ranks);
}

}  // namespace difffit
