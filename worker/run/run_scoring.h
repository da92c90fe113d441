// Scores a run's samples against its reference split: FID (and KID) with the
// configured feature network, plus a PNG grid of the samples.
#pragma once

#include <string>

#include "worker/run/experiment_config.h"

namespace difffit {

struct ScoreResult {
  bool scored = false;
  std::string metric;       // "FID (mini-CNN)" or "FID" (Inception)
  std::string feature_net;  // the network's id (records resize mode and weights)
  double fid = 0;
  double kid_mean = 0, kid_std = 0;
  bool has_kid = false;
  // The share of samples the mini-CNN classifies as the class they were drawn for
  // (1-channel tasks, whose mini-CNN is trained on the task's own classes).
  double class_accuracy = 0;
  bool has_class_accuracy = false;
  int64_t num_samples = 0, num_reference = 0;
  double seconds = 0;
};

// samples_path: HDF5 with `images` (and `y`). Writes grid_path when it is not empty.
ScoreResult score_samples(const ExperimentConfig& config, const std::string& samples_path,
                          const std::string& grid_path);

}  // namespace difffit
