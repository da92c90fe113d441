#include "worker/run/run_experiment.h"

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/communicator.h"
#include "common/error.h"
#include "common/file_lock.h"
#include "common/hdf5_tensors.h"
#include "common/input_file.h"
#include "common/json_text.h"
#include "common/logging.h"
#include "common/progress_bar.h"
#include "common/run_folder.h"
#include "common/safetensors.h"
#include "common/stop_signals.h"
#include "worker/model/build_model.h"
#include "worker/model/delta.h"
#include "worker/model/peft_method.h"
#include "worker/run/learning_curve.h"
#include "worker/run/run_sampling.h"
#include "worker/run/run_scoring.h"
#include "worker/sample/samples_file.h"

namespace difffit {
namespace {

namespace fs = std::filesystem;

}  // namespace

TrainerSettings trainer_settings(const ExperimentConfig& config) {
  TrainerSettings settings;
  settings.train = config.train;
  settings.data = config.data;
  settings.run_id = config.run_id();
  settings.data_seed = derive_seed(config, "data");
  settings.train_seed = derive_seed(config, "train");
  return settings;
}

namespace {

DiT build_run_model(const ExperimentConfig& config) {
  // Fresh weights (and the class table when the class count changes) come from the run's seed.
  at::manual_seed(derive_seed(config, "init"));
  ModelSource source;
  source.checkpoint = config.base_checkpoint;
  source.load.reinit_class_table = true;
  return build_model(config.model, source);
}

// The training latents should come from the VAE that decodes the samples.
void check_vae_matches_training_latents(const ExperimentConfig& config, const SamplesFile& samples) {
  const auto it = samples.attributes.find("vae_sha256");
  if (it == samples.attributes.end()) return;
  Hdf5Reader train(config.data.train);
  if (train.has_attribute("vae_sha256") && train.read_string_attribute("vae_sha256") != it->second) {
    log()->warn("[run] the training latents ({}) come from another VAE (sha256 {}) than eval.vae ({})",
                config.data.train, train.read_string_attribute("vae_sha256").substr(0, 16), it->second.substr(0, 16));
  }
}

// Rank 0 writes samples.h5 and samples.png; every rank of a data-parallel run has decoded
// its share and runs the feature network on it, and rank 0 gets the scores.
void write_and_score_samples(const ExperimentConfig& config, SamplesFile file, RunOutcome& outcome,
                             const DataParallel& dp) {
  const RunFolder folder{outcome.run_dir};
  Communicator* ranks = dp.active() ? dp.comm : nullptr;
  // Rank 0 writes; a failure there (a full disk) then ends every rank before the scoring's collectives.
  run_on_rank0(ranks, [&] {
    check_vae_matches_training_latents(config, file);
    if (!file.images.defined())
      log()->info("[run] {}-channel samples stay latents (no images, score or samples.png): set eval.vae or "
                  "$DIFFFIT_VAE_WEIGHTS to decode them",
                  config.model.in_channels);
    file.attributes["run_id"] = outcome.run_id;
    file.attributes["sampler"] = sampler_name(config.sample.sampler) + std::to_string(config.sample.steps);
    file.attributes["seeding"] = "per-sample";
    write_samples_file(folder.samples(), file);
  });
  if (file.images.defined()) {
    outcome.image_size = file.images.size(1);
    outcome.score = score_samples(config, file, folder.samples(), folder.grid(), ranks);
  }
}

// nlohmann writes valid JSON whatever the names hold (quotes, newlines) and non-finite
// numbers as null.
std::string metrics_json(const ExperimentConfig& config, const MethodSetup& setup, const RunOutcome& outcome,
                         int64_t delta_bytes) {
  nlohmann::ordered_json j;
  j["run_id"] = outcome.run_id;
  j["name"] = config.name;
  j["method"] = setup.config.name();
  j["precision"] = precision_name(config.train.precision);
  j["steps"] = outcome.train.steps;
  j["final_loss"] = outcome.train.last_loss;
  j["train_seconds"] = outcome.train.seconds;
  j["steps_per_second"] = outcome.train.steps_per_second;
  j["trainable_params"] = setup.trainable_params;
  j["total_params"] = setup.total_params;
  j["delta_bytes"] = delta_bytes;
  j["samples"] = config.sample.num;
  j["sample_seconds"] = outcome.sample_seconds;
  if (outcome.image_size > 0) j["image_size"] = outcome.image_size;
  if (outcome.score) add_evaluation_json(*outcome.score, j);
  if (config.eval.every > 0) {
    // The whole curve, as columns, so it travels with the result into a sweep's journal and store.
    j["curve_every"] = config.eval.every;
    j["curve_samples"] = config.eval.curve_samples > 0 ? config.eval.curve_samples : config.sample.num;
    j["curve_seconds"] = outcome.train.curve_seconds;
    j["curve"] = LearningCurve::read_columns(outcome.run_dir);
  }
  return json_text(j, 2) + "\n";
}

// RUN_DIR/STOPPED: the stop signal that ended the run after it saved its checkpoint (the rerun
// resumes from it and removes the file).
std::string stopped_json(const std::string& run_id, int signal) {
  nlohmann::ordered_json j;
  j["run_id"] = run_id;
  j["signal"] = signal;
  j["signal_name"] = stop_signal_name(signal);
  j["exit_code"] = 128 + signal;
  return json_text(j, 2) + "\n";
}

// What can be checked before the run folder exists and training starts: the data files are
// there, and the scores can be computed (their feature network's weights).
void check_before_starting(const ExperimentConfig& config) {
  check_input_file(config.data.train, "the training data (data.train)");
  const bool scores = config.sample.num > 0 || config.eval.every > 0;
  if (scores && !config.data.reference.empty())
    check_input_file(config.data.reference, "the reference data (data.reference)");
  check_run_scoring_setup(config);
}

}  // namespace

RunOutcome run_experiment(const ExperimentConfig& config, bool force, const RunHooks& hooks, const DataParallel& dp) {
  RunOutcome outcome;
  outcome.run_id = config.run_id();
  outcome.run_dir = config.run_dir();
  const RunFolder folder{outcome.run_dir};
  // A run that is done needs nothing (it is skipped below, under the lock); every rank checks
  // its own view of the files, and all fail alike.
  if (force || !(fs::exists(folder.done()) && fs::exists(folder.metrics())))
    run_on_every_rank(dp.active() ? dp.comm : nullptr, [&] { check_before_starting(config); });
  const bool writer = dp.rank == 0;  // data-parallel ranks train together; rank 0 writes the run folder
  std::error_code made;
  fs::create_directories(folder.dir, made);
  if (made) throw_io(outcome.run_dir + ": cannot create the run folder (" + made.message() + ")");
  // One process per run folder: two runs of it at once would interleave checkpoints and
  // samples. Rank 0 holds the lock for the whole run (a data-parallel run's ranks share it);
  // the kernel releases it with the process.
  std::unique_ptr<FileLock> lock;
  run_on_rank0(dp.active() ? dp.comm : nullptr, [&] {
    lock = std::make_unique<FileLock>(folder.lock(), "another process is running this run", ErrorKind::IO);
  });
  const bool marked_done = fs::exists(folder.done()) && !force;
  const bool done = marked_done && fs::exists(folder.metrics());
  if (marked_done && !done)
    log()->warn("[run] {} is marked done but has no metrics.json: running it again", outcome.run_id);
  if (dp.active()) dp.comm->barrier();  // every rank has looked before rank 0 clears DONE
  if (done) {
    log()->info("[run] {} is already done ({}); use --force to run it again", outcome.run_id, outcome.run_dir);
    outcome.skipped = true;
    return outcome;
  }
  std::unique_ptr<ScopedLogFile> run_log;
  // --force starts over: the last attempt's checkpoint would resume it at its final step.
  if (force) {
    run_on_rank0(dp.active() ? dp.comm : nullptr, [&] {
      std::error_code removed;
      fs::remove(folder.checkpoint(), removed);
      if (removed) throw_io(folder.checkpoint() + ": cannot remove it to run again (" +
                            removed.message() + ")");
    });
  }
  if (writer) {
    fs::remove(folder.done());
    fs::remove(folder.stopped());
    write_file_atomically(folder.config(), config.resolved_yaml());
    run_log = std::make_unique<ScopedLogFile>(folder.log());
  }
  log()->info("[run] {} -> {}{}", outcome.run_id, outcome.run_dir,
              dp.active() ? " (data-parallel over " + std::to_string(dp.world) + " ranks)" : "");

  try {
    DiT model = build_run_model(config);
    MethodSetup setup = apply_method(*model, config.method);
    log()->info("[run] method {} ({}): {} trainable of {} parameters ({:.4f}%)", setup.config.name(),
                setup.config.to_options_string(), setup.trainable_params, setup.total_params,
                setup.trainable_percent());

    Trainer trainer(trainer_settings(config), model, setup, outcome.run_dir, dp);
    if (hooks.on_step) trainer.set_step_hook(hooks.on_step);
    LearningCurve curve(config, outcome.run_dir, dp);
    trainer.set_learning_curve(&curve);
    outcome.train = trainer.run();

    // The result is the EMA weights (the same on every rank): saved as a delta, and as a
    // full model when pre-training.
    trainer.use_ema_weights();
    const std::string delta = folder.delta();
    if (writer) {
      save_delta(delta, *model, setup.config,
                 {{"run_id", outcome.run_id}, {"steps", std::to_string(outcome.train.steps)}});
      if (config.base_checkpoint.empty()) {
        // Self-describing: the model shape, and the settings and run that made it (nothing
        // machine- or time-dependent, so rerunning the experiment reproduces the file's bytes).
        save_safetensors(folder.model(), merge_to_plain_state_dict(*model),
                         {{"model", config.model.to_key_values()},
                          {"run_id", outcome.run_id},
                          {"steps", std::to_string(outcome.train.steps)},
                          {"config", config.canonical_yaml()},
                          {"format", "difffit.model.v1"}});
      }
    }

    if (config.sample.num > 0) {
      // Every rank samples, decodes and scores its share; rank 0 writes the files.
      auto begin = std::chrono::steady_clock::now();
      ProgressBar progress("[sample]",
                           row_share(config.sample.num, config.sample.batch_size, dp.rank, dp.world).count);
      SamplesFile samples = draw_run_samples(*model, config, config.sample.num, dp.active() ? dp.comm : nullptr,
                                             [&](int64_t done, int64_t) { progress.update(done); });
      progress.finish();
      outcome.sample_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      write_and_score_samples(config, std::move(samples), outcome, dp);
    }
    if (!writer) return outcome;

    write_file_atomically(folder.metrics(),
                          metrics_json(config, setup, outcome, static_cast<int64_t>(fs::file_size(delta))));
    write_file_atomically(folder.done(), outcome.run_id + "\n");
    log()->info("[run] done: {} steps, final loss {:.4f}, {:.2f} steps/s; results in {}", outcome.train.steps,
                outcome.train.last_loss, outcome.train.steps_per_second, outcome.run_dir);
  } catch (const StoppedBySignal& stopped) {
    // The launcher's status may not tell a saved stop from a failure (mpirun exits 1 after
    // SIGTERM or SIGINT): the folder says it, for scripts. The checkpoint is saved by now.
    if (writer) write_file_atomically(folder.stopped(), stopped_json(outcome.run_id, stopped.signal));
    log()->warn("[run] stopped by {}, checkpoint saved (recorded in {}/STOPPED): rerun to resume",
                stop_signal_name(stopped.signal), outcome.run_dir);
    throw;
  }
  return outcome;
}

}  // namespace difffit
