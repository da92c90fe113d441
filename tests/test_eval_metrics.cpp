// The ADM evaluator's metrics besides FID: Inception Score and precision/recall against
// NumPy/SciPy written out in tests/python, at values they must take (identical, disjoint,
// uniform and certain predictions), and `difffit eval` reporting all of them.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <sstream>

#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "eval/eval_choices.h"
#include "eval/sample_metrics.h"
#include "test_support.h"

namespace difffit {
namespace {

using testing::run_difffit;
using testing::run_python;
using testing::TempDir;

TEST(SampleMetrics, InceptionScoreAndPrecisionRecallMatchNumpy) {
  at::manual_seed(3);
  // 12,000 rows: splits of 5000, 5000 and 2000, as ADM's scheme cuts them.
  const at::Tensor logits = at::randn({12000, 10}, at::kDouble) * 2.0;
  const at::Tensor reference = at::randn({300, 16}, at::kDouble);
  const at::Tensor samples = at::randn({250, 16}, at::kDouble) * 1.3 + 0.4;
  TempDir dir;
  {
    Hdf5Writer out(dir.file("in.h5"));
    out.write("logits", logits);
    out.write("reference", reference);
    out.write("samples", samples);
    out.commit();
  }
  std::istringstream want(run_python("fid_reference.py", "adm-metrics " + dir.file("in.h5")));
  double is = 0, precision = 0, recall = 0;
  want >> is >> precision >> recall;
  const InceptionScoreResult got_is = inception_score(logits);
  EXPECT_EQ(got_is.splits, 3);
  EXPECT_NEAR(got_is.score, is, 1e-9 * is);
  const PrecisionRecall got = precision_recall(reference, samples);
  EXPECT_EQ(got.k, 3);
  EXPECT_DOUBLE_EQ(got.precision, precision);
  EXPECT_DOUBLE_EQ(got.recall, recall);
  EXPECT_GT(precision, 0.05);  // not a degenerate case
  EXPECT_LT(precision, 0.95);
  // Blocks change nothing but memory.
  const PrecisionRecall blocked = precision_recall(reference, samples, 3, 7);
  EXPECT_EQ(blocked.precision, got.precision);
  EXPECT_EQ(blocked.recall, got.recall);
}

TEST(SampleMetrics, InceptionScoreAtItsKnownValues) {
  // Every sample certain of its class, classes used equally: IS = number of classes.
  const int64_t classes = 8;
  at::Tensor certain = at::zeros({4 * classes, classes}, at::kDouble);
  for (int64_t i = 0; i < certain.size(0); ++i) certain[i][i % classes] = 200.0;
  EXPECT_NEAR(inception_score(certain).score, 8.0, 1e-9);
  // Identical predictions (whatever they are): IS = 1.
  const at::Tensor same = at::randn({1, classes}, at::kDouble).expand({50, classes}).contiguous();
  EXPECT_NEAR(inception_score(same).score, 1.0, 1e-12);
  // Certain but all of one class: 1 as well.
  at::Tensor one_class = at::zeros({20, classes}, at::kDouble);
  one_class.select(1, 2).fill_(200.0);
  EXPECT_NEAR(inception_score(one_class).score, 1.0, 1e-12);
  // Certain predictions make IS exp(entropy of the class shares) of each split: 40 samples
  // of 4 classes in turn, in splits of 8 (2 of each class) -> 4; in splits of 10 (shares
  // 0.3, 0.3, 0.2, 0.2 in every split) -> exp(H).
  at::Tensor four = at::zeros({40, 4}, at::kDouble);
  for (int64_t i = 0; i < 40; ++i) four[i][i % 4] = 200.0;
  const InceptionScoreResult even = inception_score(four, 8);
  EXPECT_EQ(even.splits, 5);
  EXPECT_NEAR(even.score, 4.0, 1e-9);
  const InceptionScoreResult uneven = inception_score(four, 10);
  EXPECT_EQ(uneven.splits, 4);
  EXPECT_NEAR(uneven.score, std::exp(-2 * 0.3 * std::log(0.3) - 2 * 0.2 * std::log(0.2)), 1e-9);
  EXPECT_THROW(inception_score(at::zeros({5, 1})), Error);
}

TEST(SampleMetrics, PrecisionRecallAtItsKnownValues) {
  at::manual_seed(4);
  const at::Tensor reference = at::randn({200, 5}, at::kDouble);
  // The same set: every point lies in its own ball.
  PrecisionRecall same = precision_recall(reference, reference.clone());
  EXPECT_EQ(same.precision, 1.0);
  EXPECT_EQ(same.recall, 1.0);
  // Far apart: no point in the other's manifold.
  PrecisionRecall apart = precision_recall(reference, reference + 1000.0);
  EXPECT_EQ(apart.precision, 0.0);
  EXPECT_EQ(apart.recall, 0.0);
  // Half the samples are reference points, half far away: precision exactly 1/2.
  const at::Tensor half = at::cat({reference.narrow(0, 0, 100), reference.narrow(0, 100, 100) + 1000.0});
  EXPECT_EQ(precision_recall(reference, half).precision, 0.5);
  // The radius is the distance to the 3rd nearest other point: on a line of points at
  // 0, 1, ..., 99 the last one's ball has radius 3, so 101.9 is inside it and 102.5 is not.
  const at::Tensor line = at::arange(100, at::kDouble).unsqueeze(1);
  EXPECT_EQ(precision_recall(line, at::full({4, 1}, 101.9, at::kDouble)).precision, 1.0);
  EXPECT_EQ(precision_recall(line, at::full({4, 1}, 102.5, at::kDouble)).precision, 0.0);
  EXPECT_THROW(precision_recall(reference.narrow(0, 0, 3), reference), Error);  // needs more than k points
}

TEST(EvalChoices, NamesParseOnceWithTheValidNamesInTheError) {
  EXPECT_EQ(parse_metric_set({"fid,is", "pr"}, "x"),
            (MetricSet{Metric::Fid, Metric::InceptionScore, Metric::PrecisionRecall}));
  EXPECT_EQ(parse_metric_set({"all"}, "x"), all_metrics());
  EXPECT_EQ(metric_keys(all_metrics()), (std::vector<std::string>{"fid", "kid", "sfid", "is", "pr"}));
  try {
    parse_metric_set({"fid,inception"}, "exp.yaml: eval.metrics");
    FAIL() << "accepted an unknown metric";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exp.yaml: eval.metrics"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fid, kid, sfid, is or pr"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_metric_set({""}, "x"), Error);
  EXPECT_EQ(parse_feature_net_kind("mini-cnn", "x"), FeatureNetKind::MiniCnn);
  EXPECT_THROW(parse_feature_net_kind("vgg", "x"), Error);
  EXPECT_EQ(parse_resize_mode("clean"), ResizeMode::Clean);
  EXPECT_THROW(parse_resize_mode("lanczos"), Error);
}

// `difffit eval --metrics all` with the mini-CNN: a set against itself is at every
// metric's ideal (FID = sFID = 0, precision = recall = 1), each named as a mini-CNN metric.
TEST(EvalCommand, EveryMetricOfASetAgainstItselfWithTheMiniCnn) {
  TempDir dir;
  at::manual_seed(5);
  const at::Tensor labels = at::arange(64, at::kLong).remainder(4);
  // Four classes of blobs at different places, with noise.
  at::Tensor images = at::randint(0, 60, {64, 16, 16, 1}, at::kByte);
  for (int64_t i = 0; i < 64; ++i) {
    const int64_t c = labels[i].item<int64_t>();
    images[i].narrow(0, (c / 2) * 8, 8).narrow(1, (c % 2) * 8, 8).add_(150);
  }
  {
    Hdf5Writer out(dir.file("set.h5"));
    out.write("images", images);
    out.write("labels", labels);
    out.commit();
  }
  const std::string common = " --feature-net mini-cnn --mini-cnn-train " + dir.file("set.h5") + " --cache-dir " +
                             dir.file("cache") + " --samples " + dir.file("set.h5") + " --reference " + dir.file("set.h5");
  auto r = run_difffit("eval" + common + " --metrics all --kid-subset-size 32 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_EQ(j["metric"], "FID (mini-CNN)");
  EXPECT_NEAR(j["fid"].get<double>(), 0.0, 1e-6);
  EXPECT_NEAR(j["sfid"].get<double>(), 0.0, 1e-6);
  EXPECT_EQ(j["precision"].get<double>(), 1.0);
  EXPECT_EQ(j["recall"].get<double>(), 1.0);
  EXPECT_EQ(j["precision_recall_k"].get<int>(), 3);
  EXPECT_GE(j["inception_score"].get<double>(), 1.0);
  EXPECT_LE(j["inception_score"].get<double>(), 4.0 + 1e-9);  // at most the number of classes
  EXPECT_TRUE(j.contains("kid"));
  EXPECT_EQ(j["fid_samples"].get<int>(), 64);
  EXPECT_EQ(j["metric_names"]["sfid"], "sFID (mini-CNN)");
  EXPECT_EQ(j["metric_names"]["inception_score"], "Inception Score (mini-CNN)");
  EXPECT_EQ(j["metric_names"]["precision"], "Precision (mini-CNN)");

  // `fid` is the same command; its text names each metric.
  auto text = run_difffit("fid" + common + " --metrics fid,sfid,is,pr");
  ASSERT_EQ(text.exit_code, 0) << text.output;
  for (const char* name : {"FID (mini-CNN): ", "sFID (mini-CNN): ", "Inception Score (mini-CNN): ",
                           "Precision (mini-CNN): 1.0000", "Recall (mini-CNN): 1.0000"})
    EXPECT_NE(text.output.find(name), std::string::npos) << name << "\n" << text.output;

  auto bad = run_difffit("eval" + common + " --metrics fid,lpips");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("fid, kid, sfid, is or pr"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace difffit
