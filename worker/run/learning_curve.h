// A run's learning curve: every eval.every steps (and at the first and last step) the EMA
// weights draw eval.curve_samples samples exactly as the run's final samples are drawn
// (same sampler, same per-sample seeds) and are scored with the run's metrics. One row per
// point in the run folder's curve.csv: step, each metric, seconds (the point's cost).
// Scoring touches no random stream of training (the trainer keeps the generator state
// around it), so a run trains the same with or without its curve, and a resumed run
// redraws any point it lost and ends with the same curve as an uninterrupted one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "worker/run/experiment_config.h"
#include "worker/train/data_parallel.h"
#include "worker/train/trainer.h"

namespace difffit {

class DiTImpl;
class FeatureNetwork;

class LearningCurve : public CurvePoints {
 public:
  LearningCurve(const ExperimentConfig& config, std::string run_dir, const DataParallel& dp = {});
  ~LearningCurve() override;

  bool enabled() const override { return every_ > 0; }
  // Step 0 (the base model), every eval.every steps, and the last step.
  bool due(int64_t step) const override;
  // Starts the file over (a run from step 0), or keeps the points of steps <= `step` (a
  // resumed run: later ones were drawn after its checkpoint). True when `step` has its point.
  bool start(int64_t step, bool resumed) override;
  // Samples and scores `model` as it is (the caller swaps the EMA weights in) and appends
  // the point. Every rank of the run calls it; rank 0 writes.
  void record(DiTImpl& model, int64_t step) override;
  double seconds() const { return seconds_; }  // spent on points in this process

  // curve.csv of `run_dir` as columns: {"step": [...], "fid": [...], ...}; null when none.
  static nlohmann::ordered_json read_columns(const std::string& run_dir);

 private:
  ExperimentConfig config_;
  std::string path_;
  DataParallel dp_;
  int64_t every_ = 0;
  int64_t num_ = 0;
  std::unique_ptr<FeatureNetwork> net_;
  std::vector<std::string> header_;  // from the first point, or the file being resumed
  double seconds_ = 0;
  bool said_small_set_ = false;  // the small-sample warning, once a run (every point would repeat it)
};

}  // namespace difffit
