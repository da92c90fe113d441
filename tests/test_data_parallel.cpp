// One run trained by two MPI ranks together (`mpirun -n 2 difffit run`): each rank takes
// half of every global batch, gradients are averaged, and the run matches the same run in
// one process step by step (up to float summation order), also when it is stopped by
// SIGUSR2 and resumed.
#include <ATen/ATen.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "common/safetensors.h"
#include "test_support.h"

namespace difffit {
namespace {

using testing::mpirun_difffit;
using testing::run_command;
using testing::run_difffit;
using testing::TempDir;

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
    reference_dir_ = dir.output.substr(0, dir.output.find('\n'));
  }
  std::string run_dir(const std::string& output_dir) {
    auto r = run_difffit("run " + experiment_ + " --set output_dir=" + output_dir + " --print-run-dir");
    return r.output.substr(0, r.output.find('\n'));
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

TEST_F(DataParallelRun, ABatchThatDoesNotSplitOverTheRanksIsRefused) {
  auto r = run_command(mpirun_difffit(2) + " run " + experiment_ + " --set output_dir=" + tmp_.file("odd") +
                       " --set train.batch_size=15");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("train.batch_size 15 does not split over 2"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace difffit
