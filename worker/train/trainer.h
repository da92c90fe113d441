// The training loop for every method, pre-training included: hybrid diffusion
// loss, AdamW with per-group learning rates, EMA, optional clipping/accumulation/
// bf16, and run checkpoints that resume bit-identically.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <c10/core/Device.h>

#include "worker/model/dit.h"
#include "worker/model/peft_method.h"
#include "worker/train/train_config.h"
#include "worker/train/data_parallel.h"

namespace difffit {

// What the trainer needs of an experiment (worker/run builds it from an ExperimentConfig).
struct TrainerSettings {
  TrainConfig train;
  DataConfig data;
  std::string run_id;       // written into checkpoints: one of another run is refused
  uint64_t data_seed = 0;   // the loader's shuffles and flips
  uint64_t train_seed = 0;  // training's random stream (t, noise, label dropout)
};

// Points scored while training (a run's learning curve, worker/run/learning_curve): the
// trainer swaps the EMA weights in around each point and keeps its random stream.
class CurvePoints {
 public:
  virtual ~CurvePoints() = default;
  virtual bool enabled() const = 0;
  virtual bool due(int64_t step) const = 0;
  // A fresh run (or a resumed one at `step`); true when `step` already has its point.
  virtual bool start(int64_t step, bool resumed) = 0;
  virtual void record(DiTImpl& model, int64_t step) = 0;
};

struct TrainResult {
  int64_t steps = 0;            // optimizer steps done in total
  int64_t steps_this_session = 0;
  double last_loss = 0;         // mean loss over the last logging window
  double seconds = 0;           // wall time of this session's steps
  double steps_per_second = 0;  // training steps only: learning-curve points are not in it
  double curve_seconds = 0;     // this session's learning-curve points
  bool resumed = false;
};

class Trainer {
 public:
  // `model` has its method applied; the run folder receives checkpoint/ and loss.csv.
  // With `dp` over several ranks, train.batch_size is the global batch; rank 0 writes.
  Trainer(TrainerSettings settings, DiT model, MethodSetup setup, std::string run_dir, const DataParallel& dp = {});

  // Trains to config.train.steps, resuming from the run checkpoint when present.
  // On a stop signal it saves a checkpoint and throws StoppedBySignal.
  TrainResult run();

  // Called after every optimizer step with the step count (heartbeats, tests).
  void set_step_hook(std::function<void(int64_t)> hook) { step_hook_ = std::move(hook); }

  // Draws `curve`'s points (with the EMA weights) at its steps; it outlives run().
  void set_learning_curve(CurvePoints* curve) { curve_ = curve; }

  // After run(): writes the EMA averages into the model's trainable tensors.
  void use_ema_weights();

  std::string checkpoint_path() const;

 private:
  // Loads the run checkpoint when there is one (a damaged one is set aside); false: a fresh start.
  bool resume_from_checkpoint();
  void record_curve_point(int64_t step);

  TrainerSettings settings_;
  DiT model_;
  MethodSetup setup_;
  std::string run_dir_;
  struct State;
  std::shared_ptr<State> state_;
  std::function<void(int64_t)> step_hook_;
  CurvePoints* curve_ = nullptr;
  c10::Device device_;
  DataParallel dp_;
};

}  // namespace difffit
