// One run trained by two MPI ranks together (`mpirun -n 2 difffit run`): each rank takes
// half of every global batch, gradients are averaged, and the run matches the same run in
// one process step by step (up to float summation order), also when it is stopped by
// SIGUSR2 and resumed. Sampling shared over ranks (`mpirun -n 3 difffit sample`) gives
// exactly the samples of one process; scoring shared over ranks (`mpirun -n 3 difffit
// eval`) gives the scores of one process.
#include <ATen/ATen.h>

#include <fstream>
#include <sstream>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/hdf5_tensors.h"
#include "common/safetensors.h"
#include "datasets/idx_reader.h"
#include "test_support.h"

namespace difffit {
namespace {

using testing::mpirun_difffit;
using testing::run_command;
using testing::run_difffit;
using testing::run_python;
using testing::TempDir;

// The folder `run --print-run-dir` prints: its last line (start-up log lines, such as the
// BLAS kernel restart on CPUs OpenBLAS does not know, come before it on stderr).
std::string printed_dir(const std::string& output) {
  std::string text = output;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text.substr(text.rfind('\n') + 1);
}

std::vector<std::vector<double>> read_loss_csv(const std::string& path) {
  std::vector<std::vector<double>> rows;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::stringstream fields(line);
    std::string field;
    while (std::getline(fields, field, ',')) row.push_back(std::stod(field));
    rows.push_back(row);
  }
  return rows;
}

void expect_same_training(const std::string& dir_a, const std::string& dir_b) {
  auto a = read_loss_csv(dir_a + "/loss.csv"), b = read_loss_csv(dir_b + "/loss.csv");
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i][0], b[i][0]);
    for (size_t k = 1; k < a[i].size(); ++k) {
      EXPECT_NEAR(a[i][k], b[i][k], 2e-5 * std::max(1.0, std::abs(a[i][k]))) << "step " << a[i][0] << " column " << k;
    }
  }
  auto da = load_safetensors(dir_a + "/delta.safetensors"), db = load_safetensors(dir_b + "/delta.safetensors");
  ASSERT_EQ(da.size(), db.size());
  for (const auto& [name, tensor] : da) {
    EXPECT_TRUE(at::allclose(tensor, db.at(name), 1e-4, 1e-6)) << name;
  }
}

class DataParallelRun : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fashion_mnist_available("test")) GTEST_SKIP() << "Fashion-MNIST's test split is not installed";
    auto r = run_difffit("prepare --source fashion-mnist --split test --limit 96 --resolution 16 --output " +
                         tmp_.file("data.h5"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    experiment_ = tmp_.file("run.yaml");
    std::ofstream(experiment_) << "name: dp\nseed: 3\n"
                                  "model: {name: custom, depth: 2, hidden_size: 32, num_heads: 2, patch_size: 4,"
                                  " input_size: 16, in_channels: 1, num_classes: 10}\n"
                                  "method: {name: difffit}\n"
                                  "data: {train: " << tmp_.file("data.h5") << "}\n"
                                  "train: {steps: 200, batch_size: 16, lr: 1.0e-3, ema_decay: 0.9,"
                                  " checkpoint_every: 20, log_every: 50}\n"
                                  "sample: {num: 4, steps: 3, batch_size: 4}\neval: {feature_net: none}\n";
    auto one = run_difffit("run " + experiment_ + " --set output_dir=" + tmp_.file("one"));
    ASSERT_EQ(one.exit_code, 0) << one.output;
    auto dir = run_difffit("run " + experiment_ + " --set output_dir=" + tmp_.file("one") + " --print-run-dir");
    reference_dir_ = printed_dir(dir.output);
  }
  std::string run_dir(const std::string& output_dir) {
    auto r = run_difffit("run " + experiment_ + " --set output_dir=" + output_dir + " --print-run-dir");
    return printed_dir(r.output);
  }
  TempDir tmp_;
  std::string experiment_, reference_dir_;
};

TEST_F(DataParallelRun, TwoRanksTrainTheRunOneProcessTrains) {
  auto r = run_command(mpirun_difffit(2) + " run " + experiment_ + " --set output_dir=" + tmp_.file("two"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string dir = run_dir(tmp_.file("two"));
  EXPECT_NE(r.output.find("data-parallel over 2 ranks"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir + "/DONE"));
  expect_same_training(reference_dir_, dir);
}

// Scored with the mini-CNN: both ranks sample, and extract features of, half the samples;
// rank 0 writes the one samples file and the scores, which are those of one process (the
// two runs' weights differ by float summation order only).
TEST_F(DataParallelRun, TwoRanksScoreTheirSamplesTogether) {
  const std::string scored = " --set train.steps=20 --set sample.num=12 --set sample.batch_size=3"
                             " --set eval.feature_net=mini-cnn --set eval.metrics=[fid,kid,pr]"
                             " --set data.reference=" + tmp_.file("data.h5");
  const std::string cache = "env DIFFFIT_CACHE_DIR=" + tmp_.file("cache") + " ";
  auto two = run_command(cache + mpirun_difffit(2) + " run " + experiment_ + scored + " --set output_dir=" +
                         tmp_.file("scored-two"));
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_NE(two.output.find("12 images -> 128-d features at"), std::string::npos) << two.output;
  EXPECT_NE(two.output.find("over 2 ranks"), std::string::npos) << two.output;
  auto one = run_command(cache + testing::difffit_binary() + " run " + experiment_ + scored + " --set output_dir=" +
                         tmp_.file("scored-one"));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  auto metrics = [&](const std::string& out) {
    auto dir = run_difffit("run " + experiment_ + scored + " --set output_dir=" + out + " --print-run-dir");
    std::ifstream in(printed_dir(dir.output) + "/metrics.json");
    return nlohmann::json::parse(in);
  };
  const nlohmann::json a = metrics(tmp_.file("scored-one")), b = metrics(tmp_.file("scored-two"));
  EXPECT_EQ(b["fid_samples"], 12);
  for (const char* key : {"fid", "kid", "precision", "recall"}) {
    ASSERT_TRUE(a.contains(key) && b.contains(key)) << key << "\n" << b.dump();
    EXPECT_NEAR(a[key].get<double>(), b[key].get<double>(), 1e-3 * std::max(1.0, std::abs(a[key].get<double>())))
        << key;
  }
}

TEST_F(DataParallelRun, StoppedBySigUsr2BothRanksSaveTogetherAndResume) {
  const std::string out = tmp_.file("stopped");
  const std::string dir = run_dir(out);
  auto first = run_command("bash -c '" + mpirun_difffit(2) + " run " + experiment_ + " --set output_dir=" + out +
                           " > " + tmp_.file("first.log") + " 2>&1 & pid=$!; for i in $(seq 600); do"
                           " [ -f " + dir + "/checkpoint.safetensors ] && break; sleep 0.02; done;"
                           " kill -USR2 $pid; wait $pid'");
  EXPECT_EQ(first.exit_code, 140);
  EXPECT_FALSE(std::filesystem::exists(dir + "/DONE"));
  auto second = run_command(mpirun_difffit(2) + " run " + experiment_ + " --set output_dir=" + out);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("resumed run"), std::string::npos) << second.output;
  expect_same_training(reference_dir_, dir);
}

// A stop while the ranks sample together: they agree on it after a round of batches and
// stop there (exit 140, no samples, no DONE); the rerun samples again from the saved final
// checkpoint and gives the samples of an uninterrupted run.
TEST_F(DataParallelRun, StoppedWhileSamplingBothRanksStopTogetherAndTheRerunEndsTheSame) {
  const std::string sampling = " --set train.steps=20 --set sample.num=256 --set sample.steps=250"
                               " --set sample.batch_size=4";
  const std::string out = tmp_.file("stopped-sampling");
  auto dir_of = [&](const std::string& output_dir) {
    return printed_dir(run_difffit("run " + experiment_ + sampling + " --set output_dir=" + output_dir +
                                   " --print-run-dir").output);
  };
  const std::string dir = dir_of(out), log = tmp_.file("sampling.log");
  auto first = run_command("bash -c '" + mpirun_difffit(2) + " run " + experiment_ + sampling + " --set output_dir=" +
                           out + " > " + log + " 2>&1 & pid=$!; for i in $(seq 1000); do"
                           " grep -q \"20/20\" " + log + " && break; sleep 0.02; done; sleep 0.5;"
                           " kill -USR2 $pid; wait $pid'");
  EXPECT_EQ(first.exit_code, 140) << testing::read_text_file(log);
  EXPECT_FALSE(std::filesystem::exists(dir + "/DONE")) << testing::read_text_file(log);
  EXPECT_FALSE(std::filesystem::exists(dir + "/samples.h5")) << testing::read_text_file(log);
  auto second = run_command(mpirun_difffit(2) + " run " + experiment_ + sampling + " --set output_dir=" + out);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_TRUE(std::filesystem::exists(dir + "/DONE"));
  auto straight = run_command(mpirun_difffit(2) + " run " + experiment_ + sampling + " --set output_dir=" +
                              tmp_.file("sampling-straight"));
  ASSERT_EQ(straight.exit_code, 0) << straight.output;
  Hdf5Reader a(dir + "/samples.h5"), b(dir_of(tmp_.file("sampling-straight")) + "/samples.h5");
  EXPECT_TRUE(at::equal(a.read("latents", at::kFloat), b.read("latents", at::kFloat)));
}

// A damaged checkpoint under 2 ranks: both read it, rank 0 alone sets it aside, and both
// start over together, ending as if never interrupted.
TEST_F(DataParallelRun, ADamagedCheckpointIsSetAsideOnceAndBothRanksStartOver) {
  const std::string out = tmp_.file("damaged");
  const std::string dir = run_dir(out), ckpt = dir + "/checkpoint.safetensors";
  auto first = run_command("bash -c '" + mpirun_difffit(2) + " run " + experiment_ + " --set output_dir=" + out +
                           " > " + tmp_.file("first.log") + " 2>&1 & pid=$!; for i in $(seq 600); do"
                           " [ -f " + ckpt + " ] && break; sleep 0.02; done;"
                           " kill -USR2 $pid; wait $pid'");
  ASSERT_EQ(first.exit_code, 140);
  {  // bytes in the tensor data change; the file still parses
    std::fstream f(ckpt, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(ckpt) - 64));
    f.write("\x7f\x7f\x7f\x7f", 4);
  }
  auto second = run_command(mpirun_difffit(2) + " run " + experiment_ + " --set output_dir=" + out);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_TRUE(std::filesystem::exists(ckpt + ".damaged"));
  size_t set_aside = 0;
  for (size_t at = second.output.find("starting the run over"); at != std::string::npos;
       at = second.output.find("starting the run over", at + 1)) {
    ++set_aside;
  }
  EXPECT_EQ(set_aside, 1u) << second.output;
  EXPECT_EQ(second.output.find("resumed run"), std::string::npos) << second.output;
  expect_same_training(reference_dir_, dir);
}

// mpirun passes SIGUSR2 on (above) but not SIGTERM or SIGINT (Ctrl-C): it waits
// odls_base_sigkill_timeout (1 s by default; 5 s here), sends SIGTERM to every rank, kills
// those still alive after the same wait and exits 1 whatever they did. The ranks agree to
// stop, save, and the run folder's STOPPED tells a script the stop was saved.
TEST_F(DataParallelRun, SigtermToMpirunExitsOneAndTheRunFolderRecordsTheSavedStop) {
  const std::string flags = " run " + experiment_ + " --set output_dir=" + tmp_.file("term") + " --set train.steps=100000";
  const std::string dir = printed_dir(run_difffit(flags + " --print-run-dir").output);
  auto r = run_command("bash -c 'env OMPI_MCA_odls_base_sigkill_timeout=5 " + mpirun_difffit(2) + flags + " > " +
                       tmp_.file("term.log") + " 2>&1 & pid=$!; for i in $(seq 1500); do"
                       " [ -f " + dir + "/checkpoint.safetensors ] && break; sleep 0.02; done;"
                       " kill -TERM $pid; wait $pid'");
  const std::string log = testing::read_text_file(tmp_.file("term.log"));
  EXPECT_EQ(r.exit_code, 1) << log;
  EXPECT_FALSE(std::filesystem::exists(dir + "/DONE"));
  ASSERT_TRUE(std::filesystem::exists(dir + "/STOPPED")) << log;
  const auto stopped = nlohmann::json::parse(testing::read_text_file(dir + "/STOPPED"));
  EXPECT_EQ(stopped["signal_name"], "SIGTERM");
  EXPECT_EQ(stopped["exit_code"], 143);
  EXPECT_NE(log.find("[run] stopped by SIGTERM, checkpoint saved"), std::string::npos) << log;
}

// What fails on rank 0 alone (only it writes the loss log and the checkpoints) ends both
// ranks with the error: they agree on it first, so rank 1 never waits in the next gradient
// average for a rank that has thrown. `timeout` turns a hang into exit 124.
TEST_F(DataParallelRun, AFailureOnRankZeroAloneEndsBothRanksNeverAHang) {
  struct Case {
    std::string name, obstacle;  // obstacle: what is planted in the run folder first
  };
  for (const Case& c : {Case{"loss-log", "loss.csv"}, Case{"save", "checkpoint.safetensors.tmp"}}) {
    const std::string out = tmp_.file(c.name), dir = run_dir(out), victim = tmp_.file(c.name + "-victim.txt");
    std::filesystem::create_directories(dir);
    if (c.name == "loss-log") {  // a link (refused: never written through)
      std::ofstream(victim) << "keep\n";
      std::filesystem::create_symlink(victim, dir + "/" + c.obstacle);
    } else {  // a folder where the checkpoint's temporary goes: the save cannot write
      std::filesystem::create_directories(dir + "/" + c.obstacle);
    }
    auto r = run_command("timeout 300 " + mpirun_difffit(2) + " run " + experiment_ + " --set output_dir=" + out);
    EXPECT_NE(r.exit_code, 124) << c.name << ": a rank waited for ever\n" << r.output;
    EXPECT_NE(r.exit_code, 0) << c.name << "\n" << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir + "/DONE")) << c.name;
    EXPECT_NE(r.output.find(c.obstacle), std::string::npos) << c.name << "\n" << r.output;
    // rank 1 ends by the agreement, not killed by mpirun after rank 0's exit
    EXPECT_NE(r.output.find("[rank 1] error rank 0 failed"), std::string::npos) << c.name << "\n" << r.output;
    if (c.name == "loss-log") EXPECT_EQ(testing::read_text_file(victim), "keep\n");
  }
}

TEST_F(DataParallelRun, ABatchThatDoesNotSplitOverTheRanksIsRefused) {
  auto r = run_command(mpirun_difffit(2) + " run " + experiment_ + " --set output_dir=" + tmp_.file("odd") +
                       " --set train.batch_size=15");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("train.batch_size 15 does not split over 2"), std::string::npos) << r.output;
}

TEST(DataParallelSample, ThreeRanksDrawBitForBitTheSamplesOfOneProcess) {
  TempDir tmp;
  run_python("make_diffusion_fixture.py", tmp.path().string());
  const std::string flags = " sample --checkpoint " + tmp.file("model.pt") +
                            " --model custom --depth 2 --hidden-size 32 --num-heads 2 --patch-size 2 --input-size 8"
                            " --in-channels 1 --num-classes 3 --steps 5 --seed 3 --cfg-scale 4.0 --num 11"
                            " --batch-size 2";
  auto one = run_difffit(flags + " --output " + tmp.file("one.h5"));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  // 6 batches of 2 (the last of 1), 2 per rank.
  auto three = run_command(mpirun_difffit(3) + flags + " --output " + tmp.file("three.h5"));
  ASSERT_EQ(three.exit_code, 0) << three.output;
  Hdf5Reader a(tmp.file("one.h5")), b(tmp.file("three.h5"));
  EXPECT_TRUE(at::equal(a.read("latents", at::kFloat), b.read("latents", at::kFloat)));
  EXPECT_TRUE(at::equal(a.read("y", at::kLong), b.read("y", at::kLong)));
  EXPECT_TRUE(at::equal(a.read("images", at::kByte), b.read("images", at::kByte)));

  auto refused = run_command(mpirun_difffit(3) + flags + " --seeding reference --output " + tmp.file("ref.h5"));
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_NE(refused.output.find("use per-sample seeding"), std::string::npos) << refused.output;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("ref.h5")));
}

TEST(DataParallelSample, BenchSampleReportsTheWholeSetAndEveryRanksBusyTime) {
  auto r = run_command(mpirun_difffit(2) +
                       " bench sample --model custom --depth 1 --hidden-size 16 --num-heads 2 --patch-size 4"
                       " --input-size 8 --in-channels 1 --num-classes 3 --batch-size 3 --steps 2 --cfg-scale 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_EQ(j["ranks"], 2);
  EXPECT_EQ(j["num"], 6);
  ASSERT_EQ(j["rank_busy_seconds"].size(), 2u);
  for (const auto& busy : j["rank_busy_seconds"]) EXPECT_GT(busy.get<double>(), 0.0);
  EXPECT_GT(j["busy_share"].get<double>(), 0.0);
  EXPECT_LE(j["busy_share"].get<double>(), 1.0);
}

// Every metric with its features extracted by 3 ranks (the reference too, then from the
// cache rank 0 wrote) equals the one-process score. The mini-CNN is trained once, by rank 0
// of the first run, and every later run loads it from the cache.
TEST(DataParallelEval, ThreeRanksScoreAsOneProcess) {
  if (!fashion_mnist_available("train")) GTEST_SKIP() << "Fashion-MNIST's train split is not installed";
  TempDir tmp;
  for (const auto& [split, limit, file] : {std::tuple{"test", 61, "samples.h5"}, std::tuple{"train", 80, "ref.h5"}}) {
    auto r = run_difffit(std::string("prepare --source fashion-mnist --split ") + split + " --limit " +
                         std::to_string(limit) + " --resolution 16 --output " + tmp.file(file));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const std::string flags = " eval --samples " + tmp.file("samples.h5") + " --reference " + tmp.file("ref.h5") +
                            " --metrics all --feature-net mini-cnn --mini-cnn-train " + tmp.file("ref.h5") +
                            " --mini-cnn-epochs 1 --batch-size 7 --kid-subset-size 20 --kid-subsets 10 --is-split-size 25"
                            " --cache-dir " + tmp.file("cache") + " --json";
  // Rank 0 prints the JSON on stdout; the log lines of every rank go to stderr, kept apart in
  // a file so that no other rank's line can land inside the document.
  auto run_split = [&](const std::string& command, const std::string& name) {
    auto r = run_command("(" + command + " 2>" + tmp.file(name + ".log") + ")");
    std::ifstream log(tmp.file(name + ".log"));
    return std::pair{r, std::string(std::istreambuf_iterator<char>(log), {})};
  };
  auto json_of = [](const testing::CommandResult& r) { return nlohmann::json::parse(r.output); };
  auto [shared, shared_log] = run_split(mpirun_difffit(3) + flags, "shared");
  ASSERT_EQ(shared.exit_code, 0) << shared.output << shared_log;
  EXPECT_NE(shared_log.find("61 images -> 128-d features"), std::string::npos) << shared_log;
  EXPECT_NE(shared_log.find("over 3 ranks"), std::string::npos) << shared_log;
  auto [one, one_log] = run_split(testing::difffit_binary() + flags + " --no-cache", "one");
  ASSERT_EQ(one.exit_code, 0) << one.output << one_log;
  auto [cached, cached_log] = run_split(mpirun_difffit(3) + flags, "cached");
  ASSERT_EQ(cached.exit_code, 0) << cached.output << cached_log;
  EXPECT_NE(cached_log.find("from the cache"), std::string::npos) << cached_log;

  const nlohmann::json a = json_of(one);
  for (const nlohmann::json& b : {json_of(shared), json_of(cached)}) {
    for (const char* key : {"fid", "sfid", "kid", "inception_score", "precision", "recall", "class_accuracy"}) {
      ASSERT_TRUE(a.contains(key) && b.contains(key)) << key << "\n" << a.dump() << "\n" << b.dump();
      const double x = a[key].get<double>(), y = b[key].get<double>();
      EXPECT_NEAR(x, y, 1e-5 * std::max(1.0, std::abs(x))) << key;
    }
    EXPECT_EQ(a["fid_samples"], b["fid_samples"]);
    EXPECT_EQ(a["fid_reference"], b["fid_reference"]);
  }
}

}  // namespace
}  // namespace difffit
