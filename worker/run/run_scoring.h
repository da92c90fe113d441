// Scores a run's samples against its reference split with the metrics and feature
// network its eval: section names (eval/evaluate.h does the scoring), plus a PNG grid.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "eval/evaluate.h"
#include "worker/run/experiment_config.h"

namespace difffit {

class Communicator;
class FeatureNetwork;
struct SamplesFile;

// The feature network the run's eval: section names for images of `channels` channels;
// null when the run scores nothing (eval.feature_net: none, or no data.reference). Every
// rank of `ranks` calls it.
std::unique_ptr<FeatureNetwork> run_feature_network(const ExperimentConfig& config, int64_t channels,
                                                    Communicator* ranks = nullptr);

// Before training: a run that will score with the Inception network (eval.feature_net
// inception, or auto on 3-channel reference images) has its weights, or a Data error naming
// eval.inception_weights (not hours later, after training and sampling).
void check_run_scoring_setup(const ExperimentConfig& config);

// The images of `samples` (called `name` in messages) scored with `net`, over `ranks` as
// score_samples says; nullopt on the other ranks. `warn_small_set`: warn when there are no
// more samples than feature dimensions (a learning curve says it at its first point only).
std::optional<Evaluation> score_run_images(const ExperimentConfig& config, const SamplesFile& samples,
                                           const std::string& name, FeatureNetwork& net,
                                           Communicator* ranks = nullptr, bool warn_small_set = true);

// `samples` holds the images (and labels); `samples_path` names them (the run's
// samples.h5). Writes grid_path when it is not empty. With `ranks` every rank of the run
// calls it with the same samples and the feature extraction is shared out; rank 0 writes
// the grid and gets the scores. nullopt when the run scores nothing (eval.feature_net:
// none, or no data.reference) and on the other ranks.
std::optional<Evaluation> score_samples(const ExperimentConfig& config, const SamplesFile& samples,
                                        const std::string& samples_path, const std::string& grid_path,
                                        Communicator* ranks = nullptr);

}  // namespace difffit
