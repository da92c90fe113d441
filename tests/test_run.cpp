// One experiment end to end: run folder, skip when done, exact resume after a stop
// signal or kill -9, clear errors for bad configs and data.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/file_lock.h"
#include "common/hdf5_tensors.h"
#include "common/json_text.h"
#include "common/safetensors.h"
#include "common/stop_signals.h"
#include "datasets/image_loader.h"
#include "test_support.h"
#include "worker/model/method_config.h"
#include "worker/model/build_model.h"
#include "worker/model/delta.h"
#include "worker/run/learning_curve.h"
#include "worker/run/run_experiment.h"
#include "worker/run/run_scoring.h"
#include "worker/train/adamw.h"
#include "worker/train/ema.h"
#include "worker/train/trainer.h"
#include "worker/train/training_step.h"

namespace difffit {
namespace {

using testing::run_difffit;
using testing::TempDir;

std::string read_file(const std::string& path) { return testing::read_text_file(path); }

class RunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto r = run_difffit("prepare --source fashion-mnist --split test --limit 96 --resolution 16 --output " +
                         dir_->file("data.h5"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }

  static ExperimentConfig config(const std::string& output_dir, const std::string& method = "full") {
    ExperimentConfig c;
    c.name = "tiny";
    c.output_dir = output_dir;
    c.model.depth = 2;
    c.model.hidden_size = 32;
    c.model.num_heads = 2;
    c.model.patch_size = 4;
    c.model.input_size = 16;
    c.model.in_channels = 1;
    c.model.num_classes = 10;
    c.method = make_method_config(method);
    c.data.train = dir_->file("data.h5");
    c.train.steps = 9;
    c.train.batch_size = 16;
    c.train.lr = 1e-3;
    c.train.ema_decay = 0.9;
    c.train.checkpoint_every = 4;
    c.sample.num = 4;
    c.sample.steps = 5;
    c.sample.batch_size = 4;
    return c;
  }
  // Runs `c` until SIGUSR2 arrives after `stop` steps: it saves a checkpoint and stops.
  static void stop_at_step(const ExperimentConfig& c, int64_t stop) {
    RunHooks hooks;
    hooks.on_step = [stop](int64_t step) {
      if (step == stop) request_stop(SIGUSR2);
    };
    EXPECT_THROW(run_experiment(c, false, hooks), StoppedBySignal);
    clear_stop_signal();
  }
  static TempDir* dir_;
};
TempDir* RunTest::dir_ = nullptr;

TEST_F(RunTest, WritesASelfDescribingRunFolderAndSkipsWhenDone) {
  TempDir out;
  ExperimentConfig c = config(out.path().string());
  c.data.reference = dir_->file("data.h5");
  ::setenv("DIFFFIT_CACHE_DIR", out.file("cache").c_str(), 1);  // the mini-CNN and reference stats
  RunOutcome first = run_experiment(c);
  const std::string d = first.run_dir;
  EXPECT_EQ(d, (out.path() / ("tiny-" + c.run_id())).string());
  for (const char* f : {"config.yaml", "run.log", "loss.csv", "checkpoint.safetensors", "delta.safetensors",
                        "model.safetensors", "samples.h5", "samples.png", "metrics.json", "DONE"}) {
    EXPECT_TRUE(std::filesystem::exists(d + "/" + f)) << f;
  }
  EXPECT_NE(read_file(d + "/config.yaml").find(c.run_id()), std::string::npos);
  const std::string metrics = read_file(d + "/metrics.json");
  EXPECT_NE(metrics.find("\"steps\": 9"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"metric\": \"FID (mini-CNN)\""), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"fid_reference\": 96"), std::string::npos) << metrics;
  ASSERT_TRUE(first.score.has_value());
  ASSERT_TRUE(first.score->fid.has_value());
  EXPECT_GT(*first.score->fid, 0.0);
  Hdf5Reader samples(d + "/samples.h5");
  EXPECT_EQ(samples.read("images", at::kByte).sizes(), (at::IntArrayRef{4, 16, 16, 1}));
  // 1 header + 9 steps
  std::string csv = read_file(d + "/loss.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 10);
  EXPECT_TRUE(run_experiment(c).skipped);
  // Marked done without its metrics: not done; it resumes at its last step and scores again.
  std::filesystem::remove(d + "/metrics.json");
  const RunOutcome rescored = run_experiment(c);
  EXPECT_FALSE(rescored.skipped);
  EXPECT_EQ(rescored.train.steps_this_session, 0);
  EXPECT_TRUE(std::filesystem::exists(d + "/metrics.json"));
  // --force trains it again from step 0 (not from the finished checkpoint), same results.
  const RunOutcome forced = run_experiment(c, /*force=*/true);
  EXPECT_FALSE(forced.train.resumed);
  EXPECT_EQ(forced.train.steps_this_session, 9);
  EXPECT_TRUE(std::isfinite(forced.train.steps_per_second));
  EXPECT_EQ(read_file(d + "/loss.csv"), csv);
  EXPECT_NE(read_file(d + "/metrics.json").find("\"steps_per_second\": " ), std::string::npos);
  EXPECT_EQ(read_file(d + "/metrics.json").find("\"steps_per_second\": null"), std::string::npos);
  // A different setting is a different run.
  c.train.lr = 2e-3;
  EXPECT_NE(c.run_id(), first.run_id);
}

// The resolution transfer end to end: the shipped 32 px source model (an 8x8 token grid)
// fine-tuned at 64 px (16x16 tokens, pos_embed rebuilt and aligned with the old grid) and
// sampled at 64 px. (Scoring at 64 px runs in experiments/mini-transfer.yaml: training a
// mini-CNN on 64 px images costs a minute.)
TEST_F(RunTest, The32pxSourceModelFineTunesAt64pxAndSamples) {
  TempDir out;
  auto prep = run_difffit("prepare --source fashion-mnist --split test --limit 48 --resolution 64 --fit pad-center "
                          "--output " + out.file("data64.h5"));
  ASSERT_EQ(prep.exit_code, 0) << prep.output;
  ExperimentConfig c = config(out.path().string(), "difffit");  // the tiny run's settings, the source's shape
  c.base_checkpoint = testing::source_dir() + "/models/mini-source.safetensors";
  c.model.depth = 4;
  c.model.hidden_size = 96;
  c.model.num_heads = 4;
  c.model.input_size = 64;
  c.model.pos_embed_scale = 0.5;  // num_classes 10 (the data's; the source's 5-class table is re-initialised)
  c.data.train = out.file("data64.h5");
  c.train.steps = 3;
  c.train.batch_size = 8;
  const RunOutcome o = run_experiment(c);
  EXPECT_TRUE(std::isfinite(o.train.last_loss));
  EXPECT_EQ(o.train.steps, 3);
  EXPECT_NE(read_file(o.run_dir + "/run.log").find("pos_embed rebuilt"), std::string::npos);
  Hdf5Reader samples(o.run_dir + "/samples.h5");
  EXPECT_EQ(samples.read("images", at::kByte).sizes(), (at::IntArrayRef{4, 64, 64, 1}));
  EXPECT_TRUE(std::filesystem::exists(o.run_dir + "/samples.png"));
  EXPECT_EQ(nlohmann::json::parse(read_file(o.run_dir + "/metrics.json"))["image_size"], 64);
  // The delta holds the trainable tensors only: pos_embed is a fixed function of the config.
  StateDict delta = load_safetensors(o.run_dir + "/delta.safetensors");
  EXPECT_FALSE(delta.count("pos_embed"));
  EXPECT_TRUE(delta.count("blocks.0.gamma1"));
}

TEST_F(RunTest, ARunStoppedBySignalResumesBitIdentically) {
  TempDir a, b;
  RunOutcome straight = run_experiment(config(a.path().string(), "difffit"));
  ExperimentConfig c = config(b.path().string(), "difffit");
  stop_at_step(c, 6);
  const std::filesystem::path dir = b.path() / ("tiny-" + c.run_id());
  EXPECT_FALSE(std::filesystem::exists(dir / "DONE"));
  // The folder records the saved stop for scripts (mpirun's status cannot tell it from a failure).
  EXPECT_EQ(read_file((dir / "STOPPED").string()), "{\n  \"run_id\": \"" + c.run_id() +
                                                       "\",\n  \"signal\": 12,\n  \"signal_name\": \"SIGUSR2\",\n"
                                                       "  \"exit_code\": 140\n}\n");
  RunOutcome resumed = run_experiment(c);
  EXPECT_TRUE(resumed.train.resumed);
  EXPECT_EQ(resumed.train.steps_this_session, 3);  // from the signal's checkpoint at step 6
  EXPECT_FALSE(std::filesystem::exists(dir / "STOPPED"));
  EXPECT_TRUE(std::filesystem::exists(dir / "DONE"));
  StateDict x = load_safetensors(straight.run_dir + "/delta.safetensors");
  StateDict y = load_safetensors(resumed.run_dir + "/delta.safetensors");
  ASSERT_EQ(x.size(), y.size());
  for (const auto& [name, tensor] : x) EXPECT_TRUE(at::equal(tensor, y.at(name))) << name;
  EXPECT_EQ(read_file(straight.run_dir + "/loss.csv"), read_file(resumed.run_dir + "/loss.csv"));
  Hdf5Reader sa(straight.run_dir + "/samples.h5"), sb(resumed.run_dir + "/samples.h5");
  EXPECT_TRUE(at::equal(sa.read("latents", at::kFloat), sb.read("latents", at::kFloat)));
}

// The rows of a curve.csv without its seconds column (a timing).
std::string curve_without_seconds(const std::string& path) {
  std::istringstream in(read_file(path));
  std::string out;
  for (std::string line; std::getline(in, line);) out += line.substr(0, line.rfind(',')) + "\n";
  return out;
}

// Learning curves: a point of the EMA weights at step 0, every eval.every steps and the last
// step; drawing them changes nothing in training (a mini-CNN trained during the first point
// reseeds the generator), and a run stopped between points ends with the same curve.
TEST_F(RunTest, ALearningCurveLeavesTrainingAloneAndResumesToTheSameCurve) {
  TempDir cache, a, b, c0, c1;
  ASSERT_EQ(::setenv("DIFFFIT_CACHE_DIR", cache.path().c_str(), 1), 0);
  ExperimentConfig c = config(a.path().string(), "difffit");
  c.data.reference = dir_->file("data.h5");
  c.eval.feature_net = FeatureNetKind::MiniCnn;
  c.eval.every = 4;
  c.eval.curve_samples = 6;

  // The trainer alone, with and without the curve: the same losses, step for step.
  auto train = [&](const TempDir& out, bool with_curve) {
    ExperimentConfig cc = c;
    cc.output_dir = out.path().string();
    std::filesystem::create_directories(cc.run_dir());
    at::manual_seed(5);
    DiT model = build_model(cc.model, ModelSource{});
    MethodSetup setup = apply_method(*model, cc.method);
    Trainer trainer(trainer_settings(cc), model, setup, cc.run_dir());
    LearningCurve curve(cc, cc.run_dir());
    if (with_curve) trainer.set_learning_curve(&curve);
    const auto begin = std::chrono::steady_clock::now();
    const TrainResult result = trainer.run();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    EXPECT_EQ(result.curve_seconds > 0, with_curve);
    // Training time and curve time split the run's time: the first point (step 0) included.
    EXPECT_GT(result.seconds, 0);
    EXPECT_LE(result.seconds + result.curve_seconds, wall);
    return cc.run_dir();
  };
  const std::string with = train(c1, true), without = train(c0, false);
  EXPECT_EQ(read_file(with + "/loss.csv"), read_file(without + "/loss.csv"));
  EXPECT_FALSE(std::filesystem::exists(without + "/curve.csv"));

  RunOutcome straight = run_experiment(c);
  const std::string curve = curve_without_seconds(straight.run_dir + "/curve.csv");
  std::istringstream rows(curve);
  std::vector<std::string> steps;
  for (std::string line; std::getline(rows, line);) steps.push_back(line.substr(0, line.find(',')));
  EXPECT_EQ(steps, (std::vector<std::string>{"step", "0", "4", "8", "9"})) << curve;
  EXPECT_NE(curve.find("step,fid,class_accuracy"), std::string::npos) << curve;
  // metrics.json carries the curve as columns (a sweep's journal and store get it from there).
  const auto metrics = nlohmann::json::parse(read_file(straight.run_dir + "/metrics.json"));
  ASSERT_TRUE(metrics.contains("curve")) << metrics.dump();
  EXPECT_EQ(metrics["curve"]["step"], nlohmann::json::parse("[0, 4, 8, 9]"));
  EXPECT_EQ(metrics["curve"]["fid"].size(), 4u);
  EXPECT_TRUE(metrics["curve"]["fid"][0].is_number());
  // 6 samples for 128-d features: the run's log says so at the first point only.
  std::istringstream log_lines(read_file(straight.run_dir + "/run.log"));
  std::vector<std::string> warned;
  for (std::string line; std::getline(log_lines, line);)
    if (line.find("curve point") != std::string::npos && line.find("rank-deficient") != std::string::npos)
      warned.push_back(line);
  ASSERT_EQ(warned.size(), 1u) << read_file(straight.run_dir + "/run.log");
  EXPECT_NE(warned[0].find("curve point at step 0"), std::string::npos) << warned[0];

  // Stopped at step 6 (after the point at 4, before 8), with a row torn by a kill after it:
  // resumed, the same curve and losses.
  ExperimentConfig cb = c;
  cb.output_dir = b.path().string();
  cb.train.checkpoint_every = 0;  // only the signals' checkpoints
  stop_at_step(cb, 6);
  std::ofstream(cb.run_dir() + "/curve.csv", std::ios::app) << "8,12.5";  // a row torn by a kill
  RunOutcome resumed = run_experiment(cb);
  EXPECT_TRUE(resumed.train.resumed);
  EXPECT_EQ(curve_without_seconds(resumed.run_dir + "/curve.csv"), curve);
  EXPECT_EQ(read_file(straight.run_dir + "/loss.csv"), read_file(resumed.run_dir + "/loss.csv"));
  ::unsetenv("DIFFFIT_CACHE_DIR");
}

// A stop signal that arrives while the run samples ends it there (no DONE, no scores) with
// its checkpoint kept; rerun, it samples again from that checkpoint and ends as an
// uninterrupted run.
TEST_F(RunTest, AStopSignalDuringSamplingStopsTheRunAndTheRerunEndsTheSame) {
  TempDir a, b;
  RunOutcome straight = run_experiment(config(a.path().string(), "difffit"));
  ExperimentConfig c = config(b.path().string(), "difffit");
  RunHooks hooks;
  hooks.on_step = [&](int64_t step) {
    if (step == c.train.steps) request_stop(SIGTERM);  // after the last step: sampling is next
  };
  EXPECT_THROW(run_experiment(c, false, hooks), StoppedBySignal);
  clear_stop_signal();
  const std::string dir = b.path().string() + "/tiny-" + c.run_id();
  EXPECT_FALSE(std::filesystem::exists(dir + "/DONE"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/samples.h5"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/checkpoint.safetensors"));
  RunOutcome resumed = run_experiment(c);
  EXPECT_TRUE(resumed.train.resumed);
  EXPECT_EQ(resumed.train.steps_this_session, 0);
  Hdf5Reader sa(straight.run_dir + "/samples.h5"), sb(resumed.run_dir + "/samples.h5");
  EXPECT_TRUE(at::equal(sa.read("latents", at::kFloat), sb.read("latents", at::kFloat)));
  EXPECT_TRUE(std::filesystem::exists(dir + "/DONE"));
}

// The trainer's step is the shared TrainingStep (which `bench train-step` times): three
// steps of a Trainer equal three TrainingStep::run calls on the same model, optimizer, EMA,
// batches and random stream, bit for bit. Grad accumulation and clipping are on, so every
// part of the step is in the comparison.
TEST_F(RunTest, TheTrainersStepIsTheSharedTrainingStep) {
  TempDir out;
  ExperimentConfig c = config(out.path().string(), "difffit");
  c.train.steps = 3;
  c.train.grad_accum = 2;
  c.train.grad_clip = 0.5;
  c.train.checkpoint_every = 0;
  auto fresh = [&] {
    at::manual_seed(7);
    DiT model(c.model);
    MethodSetup setup = apply_method(*model, c.method);
    return std::make_pair(model, setup);
  };
  auto [trained, trained_setup] = fresh();
  std::filesystem::create_directories(out.file("trainer"));
  Trainer trainer(trainer_settings(c), trained, trained_setup, out.file("trainer"));
  trainer.run();

  auto [model, setup] = fresh();
  AdamWOptions options;
  options.lr = c.train.lr;
  options.weight_decay = c.train.weight_decay;
  AdamW optimizer(method_adamw_groups(setup, c.train.lr), options);
  Ema ema(setup.trainable_names(), setup.trainable_tensors(), c.train.ema_decay, c.train.ema_warmup);
  LoaderOptions loader_options;
  loader_options.path = c.data.train;
  loader_options.batch_size = c.train.batch_size;
  loader_options.seed = derive_seed(c, "data");
  loader_options.random_flip = c.data.random_flip;
  ImageBatchLoader loader(loader_options);
  GaussianDiffusion diffusion({c.train.timesteps, "", c.model.learn_sigma});
  StepSettings settings;
  settings.grad_accum = c.train.grad_accum;
  settings.grad_clip = c.train.grad_clip;
  TrainingStep step(*model, diffusion, setup.trainable_tensors(), optimizer, ema, settings);
  model->train();
  at::manual_seed(derive_seed(c, "train"));
  for (int64_t i = 0; i < c.train.steps; ++i) {
    step.run([&] {
      ImageBatch batch = loader.next();
      return std::make_pair(batch.images, batch.labels);
    }, i);
  }
  const std::vector<std::string> names = setup.trainable_names();
  const std::vector<at::Tensor> mine = setup.trainable_tensors(), theirs = trained_setup.trainable_tensors();
  ASSERT_EQ(mine.size(), theirs.size());
  for (size_t i = 0; i < mine.size(); ++i) EXPECT_TRUE(at::equal(mine[i], theirs[i])) << names[i];
  const StateDict trained_ema = load_safetensors(out.file("trainer") + "/checkpoint.safetensors");
  for (const auto& [name, average] : ema.state_dict()) EXPECT_TRUE(at::equal(average, trained_ema.at("ema/" + name))) << name;
}

// A model whose weights are not finite samples NaN: a data error naming the run folder and
// the checkpoint, with nothing scored or marked done.
TEST_F(RunTest, NonFiniteSamplesAreAnErrorNamingTheRunAndCheckpoint) {
  TempDir out;
  ExperimentConfig base = config(out.path().string(), "full");
  at::manual_seed(2);
  DiT model(base.model);
  {
    torch::NoGradGuard no_grad;
    model->final_layer->parameters()[0].fill_(std::nanf(""));
  }
  const std::string weights = out.file("nan.safetensors");
  save_safetensors(weights, merge_to_plain_state_dict(*model));
  ExperimentConfig c = config(out.path().string(), "difffit");
  c.base_checkpoint = weights;
  c.train.steps = 0;  // sample the base as it is
  try {
    run_experiment(c);
    ADD_FAILURE() << "NaN samples were accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Data);
    EXPECT_NE(std::string(e.what()).find("NaN or Inf"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("nan.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(c.run_dir() + "/DONE"));
  EXPECT_FALSE(std::filesystem::exists(c.run_dir() + "/metrics.json"));
}

TEST_F(RunTest, ADamagedCheckpointIsSetAsideAndTheRunEndsAsIfNeverInterrupted) {
  TempDir a;
  RunOutcome straight = run_experiment(config(a.path().string(), "difffit"));
  for (const std::string damage : {"flip", "truncate", "torn-log"}) {
    TempDir b;
    ExperimentConfig c = config(b.path().string(), "difffit");
    stop_at_step(c, 6);
    const std::string dir = (b.path() / ("tiny-" + c.run_id())).string();
    const std::string ckpt = dir + "/checkpoint.safetensors";
    const auto size = std::filesystem::file_size(ckpt);
    if (damage == "flip") {  // bytes in the tensor data change, the file still parses
      std::fstream f(ckpt, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(size - 64));
      f.write("\x7f\x7f\x7f\x7f", 4);
    } else if (damage == "truncate") {
      std::filesystem::resize_file(ckpt, size / 2);
    } else {  // a kill mid-write tore the log's last row; the checkpoint is fine
      std::ofstream(dir + "/loss.csv", std::ios::app) << "7,0.12";
    }
    RunOutcome resumed = run_experiment(c);
    EXPECT_EQ(resumed.train.resumed, damage == "torn-log") << damage;
    EXPECT_EQ(std::filesystem::exists(ckpt + ".damaged"), damage != "torn-log") << damage;
    StateDict x = load_safetensors(straight.run_dir + "/delta.safetensors");
    StateDict y = load_safetensors(resumed.run_dir + "/delta.safetensors");
    for (const auto& [name, tensor] : x) EXPECT_TRUE(at::equal(tensor, y.at(name))) << damage << " " << name;
    EXPECT_EQ(read_file(straight.run_dir + "/loss.csv"), read_file(resumed.run_dir + "/loss.csv")) << damage;
    EXPECT_DOUBLE_EQ(straight.train.last_loss, resumed.train.last_loss) << damage;
  }
}

// A checkpoint that cannot be read now (here a pipe in its place: an IO error, as a
// permission or memory failure) is not damage: the run stops and leaves it. Damage found
// twice keeps both damaged files.
TEST_F(RunTest, OnlyDamageSetsACheckpointAsideAndNeverOverAnEarlierOne) {
  TempDir b;
  ExperimentConfig c = config(b.path().string());
  stop_at_step(c, 6);
  const std::string ckpt = (b.path() / ("tiny-" + c.run_id()) / "checkpoint.safetensors").string();
  std::filesystem::rename(ckpt, ckpt + ".good");
  ASSERT_EQ(::mkfifo(ckpt.c_str(), 0600), 0);
  try {
    run_experiment(c);
    ADD_FAILURE() << "a pipe as the checkpoint was taken for damage";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::IO) << e.what();
  }
  EXPECT_TRUE(std::filesystem::is_fifo(ckpt));
  EXPECT_FALSE(std::filesystem::exists(ckpt + ".damaged"));
  std::filesystem::remove(ckpt);
  for (int i = 0; i < 2; ++i) {
    std::filesystem::copy_file(ckpt + ".good", ckpt, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::resize_file(ckpt, 100);
    stop_at_step(c, 6 + i);  // sets it aside, starts over, saves again at the stop
  }
  EXPECT_TRUE(std::filesystem::exists(ckpt + ".damaged"));
  EXPECT_TRUE(std::filesystem::exists(ckpt + ".damaged.1"));
}

// loss.csv deleted or edited while a run was stopped: the run resumes, says how many rows
// are gone, and keeps a well-formed log (no "stod" error, no final loss of 0).
TEST_F(RunTest, AnEditedOrMissingLossLogIsNamedAndTheRunResumes) {
  for (const std::string edit : {"missing", "garbage", "crlf"}) {
    TempDir b;
    ExperimentConfig c = config(b.path().string());
    stop_at_step(c, 6);
    const std::string dir = (b.path() / ("tiny-" + c.run_id())).string();
    const std::string loss = dir + "/loss.csv";
    if (edit == "missing") {
      std::filesystem::remove(loss);
    } else if (edit == "crlf") {  // saved by an editor: every row is still read
      std::string text = read_file(loss), crlf;
      for (char ch : text) crlf += ch == '\n' ? std::string("\r\n") : std::string(1, ch);
      std::ofstream(loss, std::ios::trunc) << crlf;
    } else {
      std::string text = read_file(loss);
      text.replace(text.find("\n2,"), text.find('\n', text.find("\n2,") + 1) - text.find("\n2,"), "\n2,,,");
      std::ofstream(loss, std::ios::trunc) << text << "99999999999999999999,1,1,1\n3,x,1,1\n";
    }
    RunOutcome resumed = run_experiment(c);
    EXPECT_TRUE(resumed.train.resumed) << edit;
    EXPECT_TRUE(std::isfinite(resumed.train.last_loss)) << edit;
    const std::string log = read_file(loss);
    EXPECT_EQ(log.rfind("step,loss,mse,vb\n", 0), 0u) << edit << "\n" << log;
    const size_t rows = std::count(log.begin(), log.end(), '\n') - 1;
    EXPECT_EQ(rows, edit == "missing" ? 3u : edit == "crlf" ? 9u : 8u) << edit << "\n" << log;  // 7..9; not step 2
    const std::string run_log = read_file(dir + "/run.log");
    if (edit == "crlf") {
      EXPECT_EQ(run_log.find("rows before the checkpoint's step are missing"), std::string::npos) << run_log;
    } else {
      EXPECT_NE(run_log.find(edit == "missing" ? "6 of the 6 rows" : "1 of the 6 rows"), std::string::npos) << edit;
    }
  }
}

// The training file prepared again under a stopped run, with another count (--limit) or the
// same count, shape and classes but other pixels (fitted another way: the prepared file's
// content hash, recorded in the checkpoint, tells them apart): the resume would not continue
// the same stream of batches, so it is refused by name.
TEST_F(RunTest, ARunDoesNotResumeOnOtherData) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"--limit 64", {"saved while training on 96 images", "now holds 64 images"}},
      {"--limit 96 --fit pad-center", {"now holds content_hash"}},
  };
  for (const auto& [flags, messages] : cases) {
    TempDir b;
    ExperimentConfig c = config(b.path().string());
    c.data.train = b.file("data.h5");
    std::filesystem::copy_file(dir_->file("data.h5"), c.data.train);
    stop_at_step(c, 6);
    auto again = run_difffit("prepare --source fashion-mnist --split test --resolution 16 " + flags + " --output " +
                             c.data.train);
    ASSERT_EQ(again.exit_code, 0) << again.output;
    try {
      run_experiment(c);
      ADD_FAILURE() << flags << ": resumed on other data";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Data);
      for (const std::string& message : messages) EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.data.train), std::string::npos) << e.what();
    }
  }
}

// Links planted where a run writes in place (its loss log, lock and log) are not written
// through: the files they point at, outside the output folder, stay as they were.
TEST_F(RunTest, LinksInARunFolderAreNotWrittenThrough) {
  for (const std::string name : {"loss.csv", "run.lock", "run.log"}) {
    TempDir b, outside;
    ExperimentConfig c = config(b.path().string());
    const std::filesystem::path dir = b.path() / ("tiny-" + c.run_id());
    std::filesystem::create_directories(dir);
    const std::string victim = outside.file("victim.txt");
    std::ofstream(victim) << "keep\n";
    std::filesystem::create_symlink(victim, dir / name);
    try {
      run_experiment(c);
      ADD_FAILURE() << name << ": the run wrote through a link";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::IO) << e.what();
      EXPECT_NE(std::string(e.what()).find("symbolic link"), std::string::npos) << e.what();
    }
    EXPECT_EQ(read_file(victim), "keep\n") << name;
  }
}

// kill -9 of `difffit run` at random points of training (after a random number of logged
// rows, plus a random few ms), resumed each time: the run ends as if never interrupted.
TEST_F(RunTest, KilledAtRandomStepsTheRunEndsAsIfNeverInterrupted) {
  TempDir a, b;
  auto write_yaml = [&](const TempDir& out) {
    std::ofstream(out.file("run.yaml"))
        << "name: killed\nseed: 3\noutput_dir: " << out.path().string()
        << "\nmodel: {name: custom, depth: 2, hidden_size: 32, num_heads: 2, patch_size: 4, input_size: 16, "
           "in_channels: 1, num_classes: 10}\nmethod: {name: difffit}\ndata: {train: "
        << dir_->file("data.h5")
        << "}\ntrain: {steps: 80, batch_size: 16, lr: 1.0e-3, ema_decay: 0.9, checkpoint_every: 5, log_every: 1}\n"
           "sample: {num: 4, steps: 5, batch_size: 4}\n";
    return out.file("run.yaml");
  };
  auto straight = run_difffit("run " + write_yaml(a));
  ASSERT_EQ(straight.exit_code, 0) << straight.output;
  const std::string yaml = write_yaml(b);
  std::mt19937 random(20261202);
  std::vector<int> kill_points;
  for (int kill = 0; kill < 4; ++kill) {
    // Rows 7-60 of 80 steps: after the first checkpoint (step 5), well before the end.
    const int rows = 7 + static_cast<int>(random() % 54);
    const int extra_ms = static_cast<int>(random() % 40);
    kill_points.push_back(rows);
    // The log of a folder named killed-<id>: wait until it holds `rows` rows, then kill -9.
    testing::run_command("bash -c '" + testing::difffit_binary() + " run " + yaml +
                         " > /dev/null 2>&1 & pid=$!; for i in $(seq 2000); do n=$(cat " + b.path().string() +
                         "/killed-*/loss.csv 2>/dev/null | wc -l); [ \"$n\" -gt " + std::to_string(rows) +
                         " ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.01; done; sleep " +
                         std::to_string(extra_ms / 1000.0) + "; kill -9 $pid; wait $pid'");
  }
  auto run_dir = [](const TempDir& d) {
    for (const auto& e : std::filesystem::directory_iterator(d.path()))
      if (e.is_directory()) return e.path().string();
    return std::string();
  };
  const std::string x = run_dir(a), y = run_dir(b);
  ASSERT_FALSE(y.empty());
  // The kills landed in training: unfinished, with a checkpoint to resume from.
  EXPECT_FALSE(std::filesystem::exists(y + "/DONE"));
  EXPECT_TRUE(std::filesystem::exists(y + "/checkpoint.safetensors"));
  auto resumed = run_difffit("run " + yaml);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resum"), std::string::npos) << resumed.output;
  EXPECT_EQ(read_file(x + "/loss.csv"), read_file(y + "/loss.csv")) << "kill points (rows) " << ::testing::PrintToString(kill_points);
  EXPECT_EQ(read_file(x + "/delta.safetensors"), read_file(y + "/delta.safetensors"));
  Hdf5Reader sa(x + "/samples.h5"), sb(y + "/samples.h5");
  EXPECT_TRUE(at::equal(sa.read("latents", at::kFloat), sb.read("latents", at::kFloat)));
  // metrics.json: equal but for the timings.
  auto without_timings = [](const std::string& path) {
    auto j = nlohmann::json::parse(read_file(path));
    for (const char* key : {"train_seconds", "steps_per_second", "sample_seconds"}) j.erase(key);
    return j;
  };
  EXPECT_EQ(without_timings(x + "/metrics.json"), without_timings(y + "/metrics.json"));
}

TEST_F(RunTest, DataThatDoesNotFitTheModelIsRefusedBeforeTraining) {
  TempDir out;
  ExperimentConfig c = config(out.path().string());
  c.model.input_size = 32;
  try {
    run_experiment(c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 3);
    EXPECT_NE(std::string(e.what()).find("data.h5"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(c.run_dir() + "/checkpoint.safetensors"));
}

// Set-ups that could only fail at the end, when the run scores, fail before training: CFG
// without a null class when the file is loaded (exit 2 naming the field), Inception weights
// that are not there before the run folder is made (exit 3 naming eval.inception_weights).
TEST_F(RunTest, ScoringSetUpsThatCannotWorkFailBeforeTraining) {
  TempDir out;
  ExperimentConfig c = config(out.path().string());
  const std::string yaml = out.file("exp.yaml");
  std::ofstream(yaml) << c.resolved_yaml();
  auto cfg = run_difffit("run " + yaml + " --set model.class_dropout_prob=0 --set sample.cfg_scale=4");
  EXPECT_EQ(cfg.exit_code, 2) << cfg.output;
  EXPECT_NE(cfg.output.find("sample.cfg_scale: 4 (classifier-free guidance) needs a model with a null class"),
            std::string::npos) << cfg.output;
  c.data.reference = dir_->file("data.h5");
  c.eval.feature_net = FeatureNetKind::Inception;
  c.eval.inception_weights = out.file("missing.pth");
  try {
    run_experiment(c);
    ADD_FAILURE() << "trained without the weights its scores need";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Data);
    EXPECT_NE(std::string(e.what()).find("(from eval.inception_weights)"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(c.run_dir()));
  // Weights gone between that check and the scoring are named by the same key.
  try {
    run_feature_network(c, /*channels=*/3, nullptr);
    ADD_FAILURE() << "a feature network without its weights";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(from eval.inception_weights)"), std::string::npos) << e.what();
  }
  // A run already done needs no weights: it is skipped as before.
  std::filesystem::create_directories(c.run_dir());
  std::ofstream(c.run_dir() + "/DONE") << "";
  std::ofstream(c.run_dir() + "/metrics.json") << "{}\n";
  EXPECT_TRUE(run_experiment(c).skipped);
  // Missing data likewise, before a run folder is left behind.
  ExperimentConfig missing = config(out.path().string());
  missing.data.train = out.file("none.h5");
  try {
    run_experiment(missing);
    ADD_FAILURE() << "started without its data";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 3);
    EXPECT_NE(std::string(e.what()).find("none.h5: cannot read the training data (data.train)"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(missing.run_dir()));
}

TEST_F(RunTest, ADivergingLossStopsWithStepAndMethod) {
  TempDir out;
  ExperimentConfig c = config(out.path().string(), "bitfit");
  c.train.lr = 1e30;
  try {
    run_experiment(c);
    FAIL();
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("at step"), std::string::npos) << what;
    EXPECT_NE(what.find("bitfit"), std::string::npos) << what;
  }
}

TEST_F(RunTest, CommandLineRunFineTunesFromAPretrainedModel) {
  TempDir out;
  const std::string yaml = out.file("exp.yaml");
  std::ofstream(yaml) << "name: cli\noutput_dir: " << out.path().string()
                      << "\nmodel: {name: custom, depth: 2, hidden_size: 32, num_heads: 2, patch_size: 4, "
                         "input_size: 16, in_channels: 1, num_classes: 10}\n"
                         "method: {name: full}\ndata: {train: "
                      << dir_->file("data.h5") << "}\ntrain: {steps: 3, batch_size: 8}\n";
  auto pre = run_difffit("run " + yaml);
  ASSERT_EQ(pre.exit_code, 0) << pre.output;
  ExperimentConfig loaded = load_experiment(yaml);
  const std::string base = loaded.run_dir() + "/model.safetensors";
  ASSERT_TRUE(std::filesystem::exists(base));
  auto tuned = run_difffit("run " + yaml + " --set method.name=difffit --set base_checkpoint=" + base +
                           " --set model.num_classes=12 --set name=tuned");
  ASSERT_EQ(tuned.exit_code, 0) << tuned.output;
  ExperimentConfig t = load_experiment(yaml, {"method.name=difffit", "base_checkpoint=" + base,
                                              "model.num_classes=12", "name=tuned"});
  TensorFileMetadata meta;
  StateDict delta = load_safetensors(t.run_dir() + "/delta.safetensors", &meta);
  EXPECT_EQ(meta["method"], "difffit");
  EXPECT_TRUE(delta.count("blocks.0.gamma1"));
  EXPECT_FALSE(delta.count("blocks.1.gamma1"));  // first half of 2 blocks
  EXPECT_EQ(delta.at("y_embedder.embedding_table.weight").size(0), 13);
  // Both run folders' config.yaml files run the same runs again (same ids, same folders).
  for (const std::string& dir : {loaded.run_dir(), t.run_dir()}) {
    auto again = run_difffit("run " + dir + "/config.yaml --print-run-dir");
    EXPECT_EQ(again.exit_code, 0) << again.output;
    EXPECT_NE(again.output.find(dir), std::string::npos) << again.output;
  }
  // A run base named by file and run id must be that run's model: a stale id is refused.
  auto with_base_id = [&](const std::string& id) {
    std::ofstream(out.file("based.yaml")) << read_file(t.run_dir() + "/config.yaml") << "base_run_id: " << id << "\n";
    return load_experiment(out.file("based.yaml"));
  };
  const ExperimentConfig based = with_base_id(loaded.run_id());
  EXPECT_NE(based.canonical_yaml().find("run:" + loaded.run_id()), std::string::npos);
  try {
    with_base_id("0123456789abcdef");
    ADD_FAILURE() << "a stale base_run_id was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("made by run " + loaded.run_id()), std::string::npos) << e.what();
  }
  // 0 steps: the base model sampled as it is; its delta holds the base's own tensors.
  auto as_is = run_difffit("run " + yaml + " --set base_checkpoint=" + base +
                           " --set train.steps=0 --set sample.num=2 --set sample.steps=3 --set name=as-is");
  ASSERT_EQ(as_is.exit_code, 0) << as_is.output;
  ExperimentConfig a = load_experiment(yaml, {"base_checkpoint=" + base, "train.steps=0", "sample.num=2",
                                              "sample.steps=3", "name=as-is"});
  const auto as_is_metrics = nlohmann::json::parse(read_file(a.run_dir() + "/metrics.json"));
  EXPECT_EQ(as_is_metrics["steps"], 0);
  EXPECT_TRUE(as_is_metrics["final_loss"].is_null()) << as_is_metrics;  // no step, no loss (not 0)
  EXPECT_TRUE(as_is_metrics["steps_per_second"].is_null()) << as_is_metrics;
  EXPECT_TRUE(std::filesystem::exists(a.run_dir() + "/samples.png"));
  const StateDict unchanged = load_safetensors(a.run_dir() + "/delta.safetensors");
  const StateDict base_tensors = load_safetensors(base);
  ASSERT_TRUE(unchanged.count("blocks.0.attn.qkv.weight"));
  for (const auto& [name, tensor] : unchanged) EXPECT_TRUE(at::equal(tensor, base_tensors.at(name))) << name;
  // The delta samples on top of its base from the command line.
  auto s = run_difffit("sample --checkpoint " + base + " --delta " + t.run_dir() + "/delta.safetensors" +
                       " --model custom --depth 2 --hidden-size 32 --num-heads 2 --patch-size 4 --input-size 16"
                       " --in-channels 1 --num-classes 12 --num 2 --steps 3 --output " + out.file("s.h5"));
  EXPECT_EQ(s.exit_code, 0) << s.output;
  // Merged into one plain file, the model stands for the run that trained the delta: a
  // later experiment names it by that run's id (a continued pre-training does so).
  const std::string merged = out.file("merged.safetensors");
  auto m = run_difffit("merge --checkpoint " + base + " --delta " + t.run_dir() + "/delta.safetensors --output " + merged);
  ASSERT_EQ(m.exit_code, 0) << m.output;
  const TensorFileMetadata merged_meta = read_safetensors_metadata(merged);
  EXPECT_EQ(merged_meta.at("run_id"), t.run_id());
  EXPECT_EQ(merged_meta.at("steps"), "3");
  const ExperimentConfig on_merged = load_experiment(
      yaml, {"model.num_classes=12", "base_checkpoint=" + merged, "base_run_id=" + t.run_id(), "name=on-merged"});
  EXPECT_NE(on_merged.canonical_yaml().find("run:" + t.run_id()), std::string::npos);
}

// A run folder's config.yaml is an experiment file: loading it gives the same run (id) back,
// for every method, for pre-training and for a base made by another run.
TEST_F(RunTest, ARunsConfigYamlLoadsBackAsTheSameRun) {
  TempDir out;
  auto round_trip = [&](const ExperimentConfig& c, const std::string& label) {
    const std::string file = out.file(label + ".yaml");
    std::ofstream(file) << c.resolved_yaml();
    const ExperimentConfig back = load_experiment(file);
    EXPECT_EQ(back.run_id(), c.run_id()) << label << "\n" << c.resolved_yaml();
    EXPECT_EQ(back.canonical_yaml(), c.canonical_yaml()) << label;
    EXPECT_EQ(back.resolved_yaml(), c.resolved_yaml()) << label;
    EXPECT_EQ(back.train.checkpoint_every, c.train.checkpoint_every) << label;
    EXPECT_EQ(back.eval.grid_columns, c.eval.grid_columns) << label;
  };
  for (const std::string& method : method_names()) {
    ExperimentConfig c = config(out.path().string(), method);
    c.base_checkpoint = "/models/base.safetensors";
    c.train.lr = 3e-4;  // not exactly representable: written as the shortest text that reads back
    c.train.ema_decay = 0.9999;
    c.sample.cfg_scale = 1.5;
    c.model.pos_embed_scale = 0.5;
    c.eval.grid_columns = 4;
    round_trip(c, method);
  }
  // Options other than the paper's defaults, and the settings written only when set.
  const std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> variants = {
      {"lora", {{"rank", "4"}, {"alpha", "6"}, {"targets", "qkv,fc1"}, {"blocks", "list:0,1"}}},
      {"difffit", {{"sites", "branches,qkv"}, {"blocks", "last:1"}, {"train_bias", "false"}, {"gamma_lr_mult", "3"}}},
      {"difffit", {{"sites", ""}}},
      {"vpt-deep", {{"prompts", "3"}, {"train_class_table", "false"}}},
      {"adaptformer", {{"mode", "sequential"}, {"bottleneck", "8"}, {"scale", "0.25"}, {"lr_mult", "0.5"}}},
  };
  for (size_t k = 0; k < variants.size(); ++k) {
    ExperimentConfig c = config(out.path().string());
    c.method = make_method_config(variants[k].first, variants[k].second);
    c.base_checkpoint = "/models/base.safetensors";
    c.seed = static_cast<uint64_t>(-3);  // read from YAML as an int64
    c.sample.clip_denoised = false;
    c.eval.vae = out.file("vae.safetensors");
    std::ofstream(c.eval.vae) << "x";  // must exist to be accepted
    c.eval.metrics = k % 2 ? MetricSet{Metric::Fid, Metric::Kid} : MetricSet{Metric::Sfid, Metric::PrecisionRecall};
    c.eval.feature_net = k % 2 ? FeatureNetKind::Inception : FeatureNetKind::MiniCnn;
    c.eval.resize = ResizeMode::Clean;
    round_trip(c, variants[k].first + "-" + std::to_string(k));
  }
  // Metrics beyond FID and KID are part of the run id; FID alone or with KID leave it as it was.
  ExperimentConfig fid_only = config(out.path().string()), with_is = fid_only, with_kid = fid_only;
  with_is.eval.metrics.insert(Metric::InceptionScore);
  with_kid.eval.metrics.insert(Metric::Kid);
  EXPECT_NE(with_is.run_id(), fid_only.run_id());
  EXPECT_NE(with_kid.run_id(), fid_only.run_id());  // `kid: true`, as before
  EXPECT_EQ(fid_only.canonical_yaml().find("metrics"), std::string::npos);
  EXPECT_EQ(with_kid.canonical_yaml().find("metrics"), std::string::npos);
  ExperimentConfig pretrain = config(out.path().string(), "full");
  round_trip(pretrain, "pretrain");
  ExperimentConfig from_run = config(out.path().string(), "difffit");
  from_run.base_checkpoint = "runs/pre-0123456789abcdef/model.safetensors";
  from_run.base_run_id = "0123456789abcdef";
  EXPECT_NE(from_run.canonical_yaml().find("run:0123456789abcdef"), std::string::npos);
  round_trip(from_run, "from-run");
  // A base_run_id needs a base file, and must be a run id.
  std::ofstream(out.file("bad.yaml")) << "name: x\nmodel: {name: DiT-S/2}\nmethod: {name: full}\ndata: {train: a.h5}\n"
                                         "base_run_id: 0123456789abcdef\n";
  EXPECT_THROW(load_experiment(out.file("bad.yaml")), Error);
  std::ofstream(out.file("bad.yaml")) << "name: x\nmodel: {name: DiT-S/2}\nmethod: {name: full}\ndata: {train: a.h5}\n"
                                         "base_checkpoint: b.pt\nbase_run_id: ../../etc\n";
  EXPECT_THROW(load_experiment(out.file("bad.yaml")), Error);
}

// train.checkpoint_blocks changes memory, not results: the same run id and, to float
// summation order, the same losses and weights.
TEST_F(RunTest, CheckpointedBlocksTrainTheSameRun) {
  TempDir a, b;
  ExperimentConfig plain = config(a.path().string(), "difffit");
  ExperimentConfig checkpointed = config(b.path().string(), "difffit");
  checkpointed.train.checkpoint_blocks = true;
  EXPECT_EQ(plain.run_id(), checkpointed.run_id());
  EXPECT_NE(checkpointed.resolved_yaml().find("checkpoint_blocks: true"), std::string::npos);
  const RunOutcome x = run_experiment(plain), y = run_experiment(checkpointed);
  EXPECT_NEAR(x.train.last_loss, y.train.last_loss, 1e-5);
  auto dx = load_safetensors(x.run_dir + "/delta.safetensors"), dy = load_safetensors(y.run_dir + "/delta.safetensors");
  ASSERT_EQ(dx.size(), dy.size());
  for (const auto& [name, tensor] : dx) EXPECT_TRUE(at::allclose(tensor, dy.at(name), 1e-5, 1e-6)) << name;
}

// --set takes a flow list as a list (as the file would), anything else as a scalar.
TEST_F(RunTest, SetTakesAFlowListAsAList) {
  TempDir out;
  const std::string yaml = out.file("x.yaml");
  std::ofstream(yaml) << "name: x\nmodel: {name: DiT-S/2}\nmethod: {name: full}\ndata: {train: a.h5}\n";
  EXPECT_EQ(load_experiment(yaml, {"eval.metrics=[fid, pr]"}).eval.metrics,
            (MetricSet{Metric::Fid, Metric::PrecisionRecall}));
  EXPECT_EQ(load_experiment(yaml, {"eval.metrics=sfid,is"}).eval.metrics,
            (MetricSet{Metric::Sfid, Metric::InceptionScore}));
  try {
    load_experiment(yaml, {"eval.metrics=[fid"});
    ADD_FAILURE() << "an unclosed list was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("eval.metrics=[fid"), std::string::npos) << e.what();
  }
}

// One process per run folder: while another holds RUN_DIR/run.lock, `difffit run` of the same
// run stops at once (exit 3) naming the folder and the holder's pid, and writes nothing.
TEST_F(RunTest, ASecondProcessOnTheSameRunIsRefused) {
  TempDir out;
  const ExperimentConfig c = config(out.path().string());
  const std::string yaml = out.file("tiny.yaml");
  std::ofstream(yaml) << c.resolved_yaml();
  std::filesystem::create_directories(c.run_dir());
  {
    FileLock running(c.run_dir() + "/run.lock");  // stands in for the first process
    auto second = run_difffit("run " + yaml);
    EXPECT_EQ(second.exit_code, 3) << second.output;
    EXPECT_NE(second.output.find(c.run_dir() + "/run.lock: another process is running this run (pid " +
                                 std::to_string(::getpid()) + " on "),
              std::string::npos)
        << second.output;
    EXPECT_FALSE(std::filesystem::exists(c.run_dir() + "/config.yaml"));
    EXPECT_THROW(run_experiment(c), Error);  // in-process too: the lock is per open, not per process
  }
  // Released with its holder: the run goes ahead, and holds the lock only while it runs.
  EXPECT_FALSE(run_experiment(c).skipped);
  FileLock after(c.run_dir() + "/run.lock");
}

TEST_F(RunTest, BadConfigsNameTheFileAndField) {
  TempDir out;
  const std::string yaml = out.file("bad.yaml");
  std::ofstream(yaml) << "name: x\nmodel: {name: DiT-S/2}\nmethod: {name: lora, rank: two}\ndata: {train: a.h5}\n";
  auto r = run_difffit("run " + yaml);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("bad.yaml"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'rank'"), std::string::npos) << r.output;
  std::ofstream(yaml) << "name: x\nmodel: {name: DiT-S/2}\nmethod: {name: full}\ndata: {train: a.h5}\n"
                         "train: {stepz: 3}\n";
  auto typo = run_difffit("run " + yaml);
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_NE(typo.output.find("bad.yaml: train.stepz: unknown field"), std::string::npos) << typo.output;
  std::ofstream(yaml) << "name: x\noutput_dir: " << out.path().string()
                      << "\nmodel: {name: custom, depth: 1, hidden_size: 8, num_heads: 1, patch_size: 4, "
                         "input_size: 16, in_channels: 1, num_classes: 10}\nmethod: {name: full}\n"
                         "data: {train: /nope/data.h5}\n";
  auto missing = run_difffit("run " + yaml);
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.output.find("/nope/data.h5"), std::string::npos) << missing.output;
  // Refused at --dump-config (exit 2), before any training, naming the file and field.
  auto expect_refused = [&](const std::string& extra, const std::string& message) {
    std::ofstream(yaml) << "name: x\nmodel: {name: DiT-S/2}\nmethod: {name: full}\ndata: {train: a.h5}\n" << extra;
    auto r = run_difffit("run " + yaml + " --dump-config");
    EXPECT_EQ(r.exit_code, 2) << extra << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
  };
  // More sampling steps than diffusion steps.
  expect_refused("train: {timesteps: 50}\nsample: {num: 4, steps: 100}\n",
                 "bad.yaml: sample.steps: 100 sampling steps, more than train.timesteps (50)");
  // No training steps evaluates a base model: without one there is nothing to evaluate.
  expect_refused("train: {steps: 0}\n", "bad.yaml: train.steps: 0 steps evaluates a base_checkpoint");
  // An unknown metric, kid switched off while the list names it, an unknown feature network.
  expect_refused("eval: {metrics: [fid, lpips]}\n",
                 "bad.yaml: eval.metrics: unknown metric 'lpips' (expected fid, kid, sfid, is or pr)");
  expect_refused("eval: {metrics: [fid, kid], kid: false}\n", "bad.yaml: eval.kid: false, but eval.metrics names kid");
  expect_refused("eval: {feature_net: vgg}\n",
                 "bad.yaml: eval.feature_net: unknown feature network 'vgg' (expected auto, inception, mini-cnn or none)");
  // Closed sets of names: each refused with the valid ones.
  expect_refused("train: {precision: fp16}\n",
                 "bad.yaml: train.precision: unknown precision 'fp16' (expected auto, fp32 or bf16)");
  expect_refused("train: {device: tpu}\n", "bad.yaml: train.device: unknown device 'tpu' (expected cpu or cuda)");
  expect_refused("sample: {sampler: euler}\n",
                 "bad.yaml: sample.sampler: unknown sampler 'euler' (expected ddpm or ddim)");
  // YAML's own non-numbers, a key given twice (yaml-cpp would keep the first, most readers
  // the last), a list as a key, and sizes that would take the machine's memory or threads.
  expect_refused("train: {ema_decay: .nan}\n", "bad.yaml: train.ema_decay: expected a finite number, got '.nan'");
  expect_refused("sample: {cfg_scale: .inf}\n", "bad.yaml: sample.cfg_scale: expected a finite number, got '.inf'");
  expect_refused("seed: 0\nseed: 5\n", "bad.yaml: seed: given twice (line 6)");
  expect_refused("train: {lr: 1.0e-4, lr: 1.0e-3}\n", "bad.yaml: train.lr: given twice");
  expect_refused("? [a, b]\n: 1\n", "bad.yaml: the top level: line 5: a key must be a plain name");
  // A second YAML document would be dropped unread: the file is refused instead.
  expect_refused("---\nname: y\n", "bad.yaml: holds 2 YAML documents ('---' separators); expected one");
  expect_refused("train: {timesteps: 1000000000}\n", "bad.yaml: train.timesteps: must be in 21..1000000");
  // Below 21 steps the linear schedule's last betas reach 1: refused, not a divergence at step 1.
  expect_refused("train: {timesteps: 20}\nsample: {steps: 10}\n",
                 "bad.yaml: train.timesteps: must be in 21..1000000 (the linear schedule's last beta");
  expect_refused("threads: 100000\n", "bad.yaml: threads: must be in 1..1024");
  expect_refused("sample: {eta: 2}\n", "bad.yaml: sample.eta: must be in [0, 1]");
  expect_refused("train: {weight_decay: -5}\n", "bad.yaml: train.weight_decay: must be >= 0");
  expect_refused("base_checkpoint: 'run:'\n", "bad.yaml: base_checkpoint: 'run:' needs an experiment file");
  expect_refused("eval: {grid_columns: 100000000}\n", "bad.yaml: eval.grid_columns: must be in 1..1000");
  // Sample counts past the machine's memory: refused before training, not after it.
  expect_refused("sample: {num: 1000000000000}\n", "bad.yaml: sample.num: 1000000000000 samples need");
  expect_refused("eval: {every: 10, curve_samples: 1000000000000}\n",
                 "bad.yaml: eval.curve_samples: 1000000000000 samples need");
  // An MLP no integer holds (1e300 wide) or none at all (1e-300): refused, not a LibTorch error.
  for (const std::string ratio : {"1.0e300", "1.0e-300"}) {
    std::ofstream(yaml) << "name: x\nmodel: {name: DiT-S/2, mlp_ratio: " << ratio
                        << "}\nmethod: {name: full}\ndata: {train: a.h5}\n";
    auto r = run_difffit("run " + yaml + " --dump-config");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("must make the MLP 1..16777216 wide"), std::string::npos) << r.output;
  }
  // Blocks beyond the model's depth, found with the model's depth at load time.
  std::ofstream(yaml) << "name: x\nmodel: {name: DiT-S/2}\nmethod: {name: difffit, blocks: 'list:99'}\n"
                         "data: {train: a.h5}\n";
  auto blocks = run_difffit("run " + yaml + " --dump-config");
  EXPECT_EQ(blocks.exit_code, 2) << blocks.output;
  EXPECT_NE(blocks.output.find("bad.yaml: method.blocks: "), std::string::npos) << blocks.output;
  EXPECT_NE(blocks.output.find("block 99 is outside 0..11"), std::string::npos) << blocks.output;
  // An alias used many times is one node: checked once, not once per use.
  expect_refused("eval: &e {grid_columns: 0}\nx: [*e, *e, *e]\n", "bad.yaml: x: unknown field");
  // An output folder that cannot be made (under a file): an I/O error, exit code 3.
  std::ofstream(out.file("a-file")) << "x";
  ExperimentConfig c = config(out.file("a-file") + "/runs");
  try {
    run_experiment(c, false, {});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 3);
    EXPECT_NE(std::string(e.what()).find("cannot create the run folder"), std::string::npos) << e.what();
  }
}

TEST_F(RunTest, ARunNameCannotLeaveTheOutputFolder) {
  TempDir out;
  const std::string yaml = out.file("escape.yaml");
  for (const std::string name : {"../../escape", "a/b", "\"line\\nbreak\"", ".hidden"}) {
    std::ofstream(yaml) << "name: " << name << "\noutput_dir: " << out.path().string()
                        << "\nmodel: {name: DiT-S/2}\nmethod: {name: full}\ndata: {train: a.h5}\n";
    auto r = run_difffit("run " + yaml + " --dump-config");
    EXPECT_EQ(r.exit_code, 2) << name << ": " << r.output;
    EXPECT_NE(r.output.find("escape.yaml: name:"), std::string::npos) << r.output;
  }
  EXPECT_FALSE(std::filesystem::exists(out.path().parent_path().parent_path() / "escape"));
  // Not UTF-8 (a Latin-1 label): it could not be stored unchanged in the journal and results.
  std::ofstream(yaml) << "name: caf\xe9\noutput_dir: " << out.path().string()
                      << "\nmodel: {name: DiT-S/2}\nmethod: {name: full}\ndata: {train: a.h5}\n";
  auto latin1 = run_difffit("run " + yaml + " --dump-config");
  EXPECT_EQ(latin1.exit_code, 2) << latin1.output;
  EXPECT_NE(latin1.output.find("escape.yaml: name: not valid UTF-8"), std::string::npos) << latin1.output;
  EXPECT_TRUE(valid_utf8("Ünïcödé – 日本 🙂"));
  for (const std::string bad : {"caf\xe9", "\xc3", "\x80", "\xc0\xaf", "\xf5\x80\x80\x80", "\xe0\x80\x80",
                                "\xf0\x80\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80"})
    EXPECT_FALSE(valid_utf8(bad)) << ::testing::PrintToString(bad);
  EXPECT_TRUE(valid_utf8("\xed\x9f\xbf\xf4\x8f\xbf\xbf"));  // U+D7FF, U+10FFFF
}

TEST_F(RunTest, CyclicRunBasesAreAConfigErrorNotACrash) {
  TempDir out;
  const std::string a = out.file("a.yaml"), b = out.file("b.yaml");
  auto write = [&](const std::string& path, const std::string& base) {
    std::ofstream(path) << "name: x\noutput_dir: " << out.path().string() << "\nbase_checkpoint: run:" << base
                        << "\nmodel: {name: DiT-S/2}\nmethod: {name: full}\ndata: {train: a.h5}\n";
  };
  write(a, b);
  write(b, a);
  auto r = run_difffit("run " + a + " --dump-config");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("cycle"), std::string::npos) << r.output;
}

TEST_F(RunTest, AutoSettingsAreResolvedIntoTheRunId) {
  TempDir out;
  const std::string yaml = out.file("auto.yaml");
  auto dump = [&](const std::string& train, const std::string& sample, int64_t channels) {
    std::ofstream(yaml) << "name: x\nmodel: {name: custom, depth: 1, hidden_size: 8, num_heads: 1, patch_size: 4, "
                        << "input_size: 16, in_channels: " << channels << ", num_classes: 10}\nmethod: {name: full}\n"
                        << "data: {train: a.h5}\ntrain: {" << train << "}\nsample: {" << sample << "}\n";
    auto r = run_difffit("run " + yaml + " --dump-config");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  };
  // On a CPU without AMX, auto is fp32: the same run (id) as asking for fp32.
  const std::string automatic = dump("precision: auto", "", 1), fp32 = dump("precision: fp32", "", 1);
  auto run_id_line = [](const std::string& dump) {  // log lines (e.g. the BLAS check) may come first
    const size_t at = dump.find("# The resolved experiment of run");
    return at == std::string::npos ? std::string() : dump.substr(at, dump.find('\n', at) - at);
  };
  if (automatic.find("precision: fp32") != std::string::npos) {
    EXPECT_FALSE(run_id_line(automatic).empty()) << automatic;
    EXPECT_EQ(run_id_line(automatic), run_id_line(fp32));
  } else {
    EXPECT_NE(automatic.find("precision: bf16"), std::string::npos) << automatic;
  }
  EXPECT_NE(dump("", "", 1).find("clip_denoised: true"), std::string::npos);  // pixel space: clip x0
  EXPECT_NE(dump("", "", 4).find("clip_denoised: false"), std::string::npos);  // latents: as DiT
  EXPECT_NE(dump("", "clip_denoised: false", 1).find("clip_denoised: false"), std::string::npos);
  EXPECT_NE(dump("", "", 1).find("lr: 1e-04"), std::string::npos);  // shortest round-trip numbers
}

}  // namespace
}  // namespace difffit
