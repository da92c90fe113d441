// Scores a run's samples against its reference split with the metrics and feature
// network its eval: section names (eval/evaluate.h does the scoring), plus a PNG grid.
#pragma once

#include <optional>
#include <string>

#include "eval/evaluate.h"
#include "worker/run/experiment_config.h"

namespace difffit {

// samples_path: HDF5 with `images` (and `y`). Writes grid_path when it is not empty.
// nullopt when the run scores nothing (eval.feature_net: none, or no data.reference).
std::optional<Evaluation> score_samples(const ExperimentConfig& config, const std::string& samples_path,
                                        const std::string& grid_path);

}  // namespace difffit
