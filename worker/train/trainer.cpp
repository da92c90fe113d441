#include "worker/train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <chrono>
#include <limits>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "common/atomic_file.h"
#include "common/communicator.h"
#include "common/csv.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/logging.h"
#include "common/number_format.h"
#include "common/progress_bar.h"
#include "common/run_folder.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/torch_device.h"
#include "common/state_dict_file.h"
#include "common/stop_signals.h"
#include "datasets/image_loader.h"
#include "worker/diffusion/gaussian_diffusion.h"
#include "worker/train/adamw.h"
#include "worker/train/ema.h"
#include "worker/train/training_step.h"

namespace difffit {

struct Trainer::State {
  std::unique_ptr<ImageBatchLoader> loader;
  std::unique_ptr<AdamW> optimizer;
  std::unique_ptr<Ema> ema;
  std::vector<std::string> names;
  std::vector<at::Tensor> params;
  int64_t step = 0;
};

namespace {

const char* kCheckpointFormat = "difffit.run-checkpoint.v1";

at::Generator& default_generator() {
  static at::Generator generator = at::detail::getDefaultCPUGenerator();
  return generator;
}

void check_data_fits_model(const ImageBatchLoader& loader, const DiTConfig& model, const std::string& path) {
  if (loader.channels() != model.in_channels || loader.resolution() != model.input_size) {
    throw_data(path + ": the training data (images or latents) are " + std::to_string(loader.resolution()) + "x" +
               std::to_string(loader.resolution()) + "x" + std::to_string(loader.channels()) + ", the model expects " +
               std::to_string(model.input_size) + "x" + std::to_string(model.input_size) + "x" +
               std::to_string(model.in_channels) + " (check model.input_size / model.in_channels)");
  }
  if (loader.num_classes() > model.num_classes) {
    throw_data(path + ": " + std::to_string(loader.num_classes()) + " classes, but the model has only " +
               std::to_string(model.num_classes) + " (set model.num_classes)");
  }
}

}  // namespace

Trainer::Trainer(TrainerSettings settings, DiT model, MethodSetup setup, std::string run_dir, const DataParallel& dp)
    : settings_(std::move(settings)), model_(std::move(model)), setup_(std::move(setup)), run_dir_(std::move(run_dir)),
      state_(std::make_shared<State>()), device_(torch_device(settings_.train.device)), dp_(dp) {
  if (device_.is_cuda() && !at::hasCUDA()) throw_usage("train.device is cuda, but this LibTorch has no CUDA");
  model_->to(device_);
  LoaderOptions loader_options;
  loader_options.path = settings_.data.train;
  if (settings_.train.batch_size % dp_.world != 0) {
    throw_config("train.batch_size " + std::to_string(settings_.train.batch_size) + " does not split over " +
                 std::to_string(dp_.world) + " data-parallel ranks");
  }
  loader_options.batch_size = settings_.train.batch_size / dp_.world;
  loader_options.rank = dp_.rank;
  loader_options.world_size = dp_.world;
  loader_options.seed = settings_.data_seed;
  loader_options.random_flip = settings_.data.random_flip;
  state_->loader = std::make_unique<ImageBatchLoader>(loader_options);
  check_data_fits_model(*state_->loader, model_->config(), settings_.data.train);

  state_->names = setup_.trainable_names();
  state_->params = setup_.trainable_tensors();
  AdamWOptions options;
  options.lr = settings_.train.lr;
  options.weight_decay = settings_.train.weight_decay;
  state_->optimizer = std::make_unique<AdamW>(method_adamw_groups(setup_, settings_.train.lr), options);
  state_->ema =
      std::make_unique<Ema>(state_->names, state_->params, settings_.train.ema_decay, settings_.train.ema_warmup);
}

std::string Trainer::checkpoint_path() const { return RunFolder{run_dir_}.checkpoint(); }

namespace {

// SHA-256 over every tensor's name, dtype, shape and bytes, in name order: a checkpoint whose
// bytes were damaged but still parse is caught by it.
std::string payload_sha256(const StateDict& tensors) {
  Sha256 sha;
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor t = tensor.contiguous();
    sha.update(name + "|" + std::string(c10::toString(t.scalar_type())) + "|" + c10::str(t.sizes()) + "|");
    sha.update(t.data_ptr(), t.numel() * t.element_size());
  }
  return sha.hex_digest();
}

// What a checkpoint records of the data it trained on: a resume on other data (a file
// prepared again with another --limit) could not continue the same stream of batches.
std::string data_identity(const ImageBatchLoader& loader) {
  return std::to_string(loader.num_images()) + " images of " + std::to_string(loader.channels()) + "x" +
         std::to_string(loader.resolution()) + "x" + std::to_string(loader.resolution()) + " in " +
         std::to_string(loader.num_classes()) + " classes";
}

void save_run_checkpoint(const std::string& path, const std::string& run_id, int64_t step,
                         const ImageBatchLoader& loader, const std::vector<std::string>& names,
                         const std::vector<at::Tensor>& params, const AdamW& optimizer, const Ema& ema) {
  StateDict tensors;
  for (size_t i = 0; i < names.size(); ++i) tensors["param/" + names[i]] = params[i].detach().cpu();
  for (const auto& [k, v] : optimizer.state_dict()) tensors["opt/" + k] = v.cpu();
  for (const auto& [k, v] : ema.state_dict()) tensors["ema/" + k] = v.cpu();
  tensors["rng/cpu"] = default_generator().get_state();
  save_safetensors(path, tensors,
                   {{"format", kCheckpointFormat},
                    {"payload_sha256", payload_sha256(tensors)},
                    {"run_id", run_id},
                    {"step", std::to_string(step)},
                    {"data", data_identity(loader)},
                    {"data_content_hash", loader.content_hash()},
                    {"loader_epoch", std::to_string(loader.cursor().epoch)},
                    {"loader_batch", std::to_string(loader.cursor().batch)}});
}

const char* kLossHeader = "step,loss,mse,vb\n";

// One row of loss.csv ("step,loss,mse,vb"); false for the header and for a row torn by a kill
// or edited by hand (wrong field count, a field that is not a number).
bool parse_loss_row(std::string line, int64_t& step, double& loss) {
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();  // CRLF, an editor
  const std::vector<std::string> fields = split_on_commas(line);
  double mse = 0, vb = 0;
  return fields.size() == 4 && parse_whole(fields[0], step) && parse_whole(fields[1], loss) &&
         parse_whole(fields[2], mse) && parse_whole(fields[3], vb);
}

// Keeps the header and the rows of steps <= `step`: rows written after the last
// checkpoint by an interrupted session are recomputed, so they must not repeat. A row torn
// by a kill or edited by hand is dropped like a later one. Returns how many rows it kept.
int64_t truncate_loss_csv(const std::string& path, int64_t step) {
  check_input_file_if_present(path, "a loss log");
  std::ifstream in(path);
  std::string line, kept = kLossHeader;
  std::set<int64_t> steps;
  while (std::getline(in, line)) {
    int64_t row_step = 0;
    double loss = 0;
    if (!parse_loss_row(line, row_step, loss) || row_step < 1 || row_step > step || !steps.insert(row_step).second)
      continue;
    kept += line + "\n";
  }
  in.close();
  std::ofstream(path, std::ios::trunc) << kept;
  return static_cast<int64_t>(steps.size());
}

// Mean loss of the steps after `after_step`, from loss.csv: it holds every step of the run
// across interruptions, so the final loss does not depend on where a run was resumed. NaN
// (stored as null) when the log has no such row.
double mean_loss_after(const std::string& path, int64_t after_step) {
  check_input_file_if_present(path, "a loss log");
  std::ifstream in(path);
  std::string line;
  double sum = 0;
  int64_t n = 0;
  while (std::getline(in, line)) {
    int64_t step = 0;
    double loss = 0;
    if (!parse_loss_row(line, step, loss) || step <= after_step) continue;
    sum += loss;
    ++n;
  }
  return n ? sum / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
}

// loss.csv: a header and one row per step. A resumed run keeps the rows up to its
// checkpoint's step (`resumed_at`; -1: a fresh run starts the file), and says when some
// are gone (the file deleted or edited while the run was stopped).
class LossLog {
 public:
  LossLog(std::string path, int64_t resumed_at) : path_(std::move(path)) {
    refuse_symlink(path_, "a loss log");
    if (resumed_at >= 0) {
      const int64_t kept = truncate_loss_csv(path_, resumed_at);
      if (kept < resumed_at)
        log()->warn("[train] {}: {} of the {} rows before the checkpoint's step are missing or unreadable; the "
                    "final loss is the mean of the rows it has",
                    path_, resumed_at - kept, resumed_at);
    } else {
      std::ofstream(path_, std::ios::trunc) << kLossHeader;
    }
    out_.open(path_, std::ios::app);
    if (!out_) throw_io(path_ + ": cannot open for writing");
    out_.precision(9);  // float32 losses round-trip
  }
  void write(int64_t step, const StepLosses& l) { out_ << step << "," << l.loss << "," << l.mse << "," << l.vb << "\n"; }
  void sync() {
    out_.flush();
    if (!out_) throw_io(path_ + ": write failed (disk full?)");
    sync_file(path_);
  }
  void close() { out_.close(); }

 private:
  std::string path_;
  std::ofstream out_;
};

StateDict strip_prefix(const StateDict& all, const std::string& prefix) {
  StateDict out;
  for (const auto& [k, v] : all) {
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = v;
  }
  return out;
}

}  // namespace

bool Trainer::resume_from_checkpoint() {
  State& s = *state_;
  const std::string checkpoint = checkpoint_path();
  TensorFileMetadata meta;
  StateDict saved;
  // A damaged checkpoint (truncated, or bytes changed: a Data error) is moved aside and the
  // run starts over: training is deterministic, so it ends as if it had never been
  // interrupted. A file that cannot be read now (permissions, I/O, memory) is not damaged:
  // that error stops the run and the checkpoint stays where it is.
  std::string damage, unreadable;
  if (std::filesystem::exists(checkpoint)) {
    try {
      saved = load_safetensors(checkpoint, &meta);
      if (meta.count("payload_sha256") && meta["payload_sha256"] != payload_sha256(saved)) {
        damage = "its tensors do not match the checksum it was saved with";
      }
    } catch (const Error& e) {
      (e.kind() == ErrorKind::Data ? damage : unreadable) = e.what();
    } catch (const std::exception& e) {  // out of memory, a LibTorch error
      unreadable = checkpoint + ": cannot be read now: " + e.what();
    }
  }
  // Every rank has read the file before rank 0 moves a damaged one aside (the sum is a
  // barrier); all stop together if any rank could not read it, and all start over
  // together if any rank found it damaged (no rank is left waiting in a collective).
  const std::vector<double> found =
      sum_over_ranks({damage.empty() ? 0.0 : 1.0, unreadable.empty() ? 0.0 : 1.0}, dp_);
  if (found[1] > 0)
    throw_io(unreadable.empty() ? checkpoint + ": another rank could not read it (its log says why)" : unreadable);
  if (found[0] > 0) {
    if (dp_.rank == 0) {
      std::string aside = checkpoint + ".damaged";  // never over an earlier one
      for (int i = 1; std::filesystem::exists(std::filesystem::symlink_status(aside)); ++i)
        aside = checkpoint + ".damaged." + std::to_string(i);
      std::filesystem::rename(checkpoint, aside);
      log()->warn("[train] {}: damaged ({}); moved to {} and starting the run over", checkpoint,
                  damage.empty() ? "on another rank" : damage, aside);
    }
    saved.clear();
  }
  if (saved.empty()) {
    at::manual_seed(settings_.train_seed);
    return false;
  }
  if (meta["format"] != kCheckpointFormat || meta["run_id"] != settings_.run_id) {
    throw_data(checkpoint + ": not a checkpoint of run " + settings_.run_id);
  }
  if (meta.count("data") && meta["data"] != data_identity(*s.loader)) {
    throw_data(checkpoint + ": saved while training on " + meta["data"] + ", but " + settings_.data.train +
               " now holds " + data_identity(*s.loader) + ": the run cannot resume on other data; restore the "
               "file, or remove the run folder to start over");
  }
  // Same counts and shapes but other pixels (prepared again with another --fit, say): the
  // prepared file's own content hash tells, without reading the data again.
  const std::string saved_hash = meta.count("data_content_hash") ? meta["data_content_hash"] : "";
  if (!saved_hash.empty() && !s.loader->content_hash().empty() && saved_hash != s.loader->content_hash()) {
    throw_data(checkpoint + ": saved while training on data of content_hash " + saved_hash.substr(0, 16) + "..., but " +
               settings_.data.train + " now holds content_hash " + s.loader->content_hash().substr(0, 16) +
               "...: the run cannot resume on other data; restore the file, or remove the run folder to start over");
  }
  torch::NoGradGuard no_grad;
  StateDict params = strip_prefix(saved, "param/");
  for (size_t i = 0; i < s.names.size(); ++i) {
    auto it = params.find(s.names[i]);
    if (it == params.end()) throw_data(checkpoint + ": parameter '" + s.names[i] + "' missing");
    s.params[i].detach().copy_(it->second);
  }
  s.optimizer->load_state_dict(strip_prefix(saved, "opt/"), checkpoint);
  s.ema->load_state_dict(strip_prefix(saved, "ema/"), checkpoint);
  default_generator().set_state(saved.at("rng/cpu"));
  s.step = metadata_int(meta, "step", checkpoint);
  s.loader->seek({metadata_int(meta, "loader_epoch", checkpoint), metadata_int(meta, "loader_batch", checkpoint)});
  log()->info("[train] resumed run {} at step {}", settings_.run_id, s.step);
  return true;
}

TrainResult Trainer::run() {
  TrainResult result;
  State& s = *state_;
  const TrainConfig& tc = settings_.train;
  result.resumed = resume_from_checkpoint();

  DiffusionConfig diffusion_config;
  diffusion_config.timesteps = tc.timesteps;
  diffusion_config.learned_variance = model_->config().learn_sigma;
  GaussianDiffusion diffusion(diffusion_config);
  StepSettings settings;
  settings.grad_accum = tc.grad_accum;
  settings.grad_clip = tc.grad_clip;
  settings.bf16 = tc.precision == Precision::Bf16;
  settings.context = "method " + setup_.config.name() + ", lr " + shortest_double(tc.lr);
  TrainingStep training_step(*model_, diffusion, s.params, *s.optimizer, *s.ema, settings, dp_);
  const auto next_batch = [&] {
    ImageBatch batch = s.loader->next();
    return std::make_pair(batch.images.to(device_), batch.labels.to(device_));
  };

  // One rank writes the run's files.
  std::optional<LossLog> loss_log;
  run_on_rank0(dp_.comm, [&] { loss_log.emplace(RunFolder{run_dir_}.loss(), result.resumed ? s.step : -1); });
  // Rank 0 writes; every rank learns whether it could (a full disk fails them all alike, so
  // none is left waiting in the next gradient average).
  auto save = [&] {
    run_on_rank0(dp_.comm, [&] {
      loss_log->sync();  // the rows up to this step must survive whatever happens after the checkpoint
      save_run_checkpoint(checkpoint_path(), settings_.run_id, s.step, *s.loader, s.names, s.params,
                          *s.optimizer, *s.ema);
    });
  };

  model_->train();
  model_->run_options().checkpoint_blocks = tc.checkpoint_blocks;
  double curve_seconds = 0;
  const auto curve_point = [&](int64_t step) {
    const auto curve_begin = std::chrono::steady_clock::now();
    try {
      record_curve_point(step);
    } catch (const StoppedBySignal& stopped) {
      save();  // a resume redraws this step's point from here
      log()->warn("[train] signal {} while drawing the curve point: saved checkpoint at step {}", stopped.signal, s.step);
      throw;
    }
    curve_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - curve_begin).count();
  };
  // Training time counts from here, less the curve points (the first one included).
  const auto begin = std::chrono::steady_clock::now();
  // A resumed run redraws the point its interruption lost.
  if (curve_ && curve_->enabled() && !curve_->start(s.step, result.resumed) && curve_->due(s.step)) curve_point(s.step);
  const int64_t first_step = s.step;
  ProgressBar progress("[train " + setup_.config.name() + "]", tc.steps, s.step);
  double window_loss = 0;
  int64_t window = 0;
  while (s.step < tc.steps) {
    if (int signal = agreed_stop_signal(stop_signal(), dp_)) {
      save();
      log()->warn("[train] signal {}: saved checkpoint at step {}", signal, s.step);
      throw StoppedBySignal{signal};
    }
    const StepLosses losses = training_step.run(next_batch, s.step);
    s.step += 1;
    window_loss += losses.loss;
    window += 1;
    if (loss_log) loss_log->write(s.step, losses);
    if (curve_ && curve_->due(s.step)) curve_point(s.step);
    if (tc.checkpoint_every > 0 && s.step % tc.checkpoint_every == 0 && s.step < tc.steps) save();
    if (step_hook_) step_hook_(s.step);
    char status[64];
    std::snprintf(status, sizeof status, "loss %.4f", window_loss / window);
    progress.update(s.step, status);
    if (s.step % std::max<int64_t>(tc.log_every, 1) == 0 || s.step == tc.steps) {
      result.last_loss = window_loss / window;
      window_loss = 0;
      window = 0;
    }
  }
  progress.finish();
  if (loss_log) {
    loss_log->close();
    const int64_t log_every = std::max<int64_t>(tc.log_every, 1);
    result.last_loss = mean_loss_after(RunFolder{run_dir_}.loss(), ((s.step - 1) / log_every) * log_every);
  }
  save();
  result.steps = s.step;
  result.steps_this_session = s.step - first_step;
  result.curve_seconds = curve_seconds;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count() - curve_seconds;
  result.steps_per_second = result.seconds > 0 ? result.steps_this_session / result.seconds : 0;
  // No step, no measurement (train.steps 0 evaluates the base): NaN, written as null, not a 0
  // that would read as a perfect loss or drag a mean speed down.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (s.step == 0) result.last_loss = nan;
  if (result.steps_this_session == 0) result.steps_per_second = nan;
  return result;
}

void Trainer::record_curve_point(int64_t step) {
  // The point sees the EMA weights in eval mode, and leaves training's random stream (which
  // a mini-CNN trained on first use would reseed) and weights as they were.
  struct Restore {
    Trainer& trainer;
    at::Tensor rng = default_generator().get_state();
    Restore(Trainer& t) : trainer(t) {
      trainer.state_->ema->swap_with_params();
      trainer.model_->eval();
    }
    ~Restore() {
      trainer.model_->train();
      trainer.state_->ema->swap_with_params();
      default_generator().set_state(rng);
    }
  } restore(*this);
  curve_->record(*model_, step);  // sampling takes no gradients; a mini-CNN trained on first use does
}

void Trainer::use_ema_weights() { state_->ema->copy_to_params(); }

}  // namespace difffit
