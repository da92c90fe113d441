// One experiment end to end on one process: load or initialise the model, apply the
// method, train (resuming if interrupted), save the delta, sample, and write a
// self-describing run folder.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "worker/run/experiment_config.h"
#include "worker/run/run_scoring.h"
#include "worker/train/trainer.h"

namespace difffit {

struct RunOutcome {
  std::string run_dir;
  std::string run_id;
  bool skipped = false;  // already DONE: nothing recomputed
  TrainResult train;
  double sample_seconds = 0;
  int64_t image_size = 0;  // side in pixels of the sampled images (0: none, e.g. latents without a VAE)
  std::optional<Evaluation> score;  // when the run scores its samples
};

struct RunHooks {
  std::function<void(int64_t)> on_step;  // after every optimizer step (heartbeats, tests)
};

// The experiment's training settings, with the run's id and the seeds derived from it.
TrainerSettings trainer_settings(const ExperimentConfig& config);

// Run folder: config.yaml, run.log, loss.csv, checkpoint.safetensors, delta.safetensors,
// model.safetensors (pre-training only), samples.h5, metrics.json, DONE.
// Under data parallelism (`dp` over several ranks) every rank trains its share of each
// batch; rank 0 alone writes the run folder, samples and scores.
RunOutcome run_experiment(const ExperimentConfig& config, bool force = false, const RunHooks& hooks = {},
                          const DataParallel& dp = {});

}  // namespace difffit
