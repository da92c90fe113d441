// One experiment: model, method, data, training, sampling and scoring settings,
// parsed and validated once from YAML (+ --set overrides). Its canonical form
// hashes to the run id, so a rerun finds its previous results.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/platform.h"
#include "eval/eval_choices.h"
#include "worker/diffusion/sampler_kind.h"
#include "worker/model/dit_config.h"
#include "worker/model/method_config.h"
#include "worker/sample/sample_config.h"
#include "worker/train/train_config.h"

namespace difffit {

struct EvalConfig {
  FeatureNetKind feature_net = FeatureNetKind::Auto;  // auto (mini-cnn for 1-channel data, else inception) | mini-cnn | inception | none
  std::string feature_train;         // mini-CNN training set (default: data.train, i.e. one net per task)
  int64_t num_reference = 0;         // reference images used (0 = all); the scores depend on it, so it is recorded
  std::string inception_weights;     // pt_inception-2015-12-05 .pth or safetensors (or $DIFFFIT_INCEPTION_WEIGHTS)
  ResizeMode resize = ResizeMode::PytorchFid;  // Inception input resize: pytorch-fid | clean
  MetricSet metrics = {Metric::Fid}; // eval.metrics: fid kid sfid is pr (or all); `kid: true` adds kid
  int64_t grid_columns = 10;         // samples per row of samples.png (one row per class)
  std::string vae;                   // AutoencoderKL weights that decode latent samples (or $DIFFFIT_VAE_WEIGHTS)
  int64_t every = 0;                 // learning curve: score the EMA weights every this many steps (0 = no curve)
  int64_t curve_samples = 0;         // samples per curve point, drawn as the run's samples are (0 = sample.num)
};

struct ExperimentConfig {
  std::string name = "experiment";  // human-readable prefix of the run folder
  uint64_t seed = 0;                // every random stream of the run derives from (seed, run id)
  std::string output_dir = "runs";  // runs land in output_dir/<name>-<run id>
  std::string base_checkpoint;      // pre-trained DiT; empty = train from scratch (pre-training)
  DiTConfig model;
  MethodConfig method;
  DataConfig data;
  TrainConfig train;
  SampleConfig sample;
  EvalConfig eval;
  int threads = 1;                  // intra-op threads (one rank per core is best on CPU)
  std::string base_experiment;      // set when base_checkpoint came from "run:FILE": FILE's run must finish first
  std::string base_run_id;          // ... and FILE's run id, which stands for the base in the run id (not its path)

  // Canonical YAML of everything that changes results (not output_dir/threads/logging).
  std::string canonical_yaml() const;
  // The whole experiment, written into the run folder as config.yaml: an experiment file
  // that loads back to the same run id.
  std::string resolved_yaml() const;
  std::string run_id() const;       // 16 hex digits of SHA-256(canonical_yaml)
  std::string run_dir() const;      // output_dir/name-run_id

 private:
  std::string to_yaml(bool resolved) const;  // the one writer of both forms
};

struct ExperimentLoadOptions {
  std::vector<std::string> inherited;  // overrides applied first, to this file and to its "run:" base
  bool require_base_done = true;       // a "run:" base must be DONE (a sweep plans the base instead)
  std::vector<std::string> chain;      // the files whose "run:" bases led here (cycle detection)
};

// Loads a YAML experiment file; each override "a.b=value" replaces that field first.
ExperimentConfig load_experiment(const std::string& path,
                                 const std::vector<std::string>& overrides = {},
                                 const ExperimentLoadOptions& options = {});

// A seed for one purpose ("init", "data", "train", "sample") of a run, from its id.
uint64_t derive_seed(const ExperimentConfig& config, const std::string& purpose);

}  // namespace difffit
