// Evaluation: feature statistics, Frechet distance against pytorch-fid's scipy
// formula, KID, the legacy torch format, the FID InceptionV3 against a PyTorch-eager
// build of pytorch-fid's network, PIL-exact resize, .npz export, grids, `difffit fid`.
#include <ATen/ATen.h>

#include <cmath>
#include <csignal>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/safetensors.h"
#include "common/state_dict_file.h"
#include "common/stop_signals.h"
#include "eval/feature_network.h"
#include "eval/feature_stats.h"
#include "eval/fid_inception.h"
#include "eval/frechet_distance.h"
#include "eval/image_features.h"
#include "eval/image_resize.h"
#include "eval/image_set.h"
#include "eval/kid.h"
#include "eval/mini_cnn.h"
#include "eval/npz_export.h"
#include "eval/sample_grid.h"
#include "eval/text_render.h"
#include "test_support.h"

namespace difffit {
namespace {

using testing::run_difffit;
using testing::run_python;
using testing::TempDir;

// Correlated, non-Gaussian features: x = z A + b with z partly squared.
at::Tensor make_features(int64_t n, int64_t d, uint64_t seed, double shift = 0.0) {
  at::manual_seed(seed);
  const at::Tensor z = at::randn({n, d}, at::kDouble);
  const at::Tensor a = at::randn({d, d}, at::kDouble) / std::sqrt(static_cast<double>(d));
  return at::mm(z + 0.3 * z.pow(2), a) + shift;
}

void write_features(const std::string& path, const at::Tensor& f) {
  Hdf5Writer out(path);
  out.write("features", f);
  out.commit();
}

double last_number(const std::string& output) {
  std::istringstream in(output);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return std::stod(last);
}

double scipy_frechet(const TempDir& dir, const at::Tensor& a, const at::Tensor& b) {
  write_features(dir.file("a.h5"), a);
  write_features(dir.file("b.h5"), b);
  return last_number(run_python("fid_reference.py", "frechet " + dir.file("a.h5") + " " + dir.file("b.h5")));
}

at::Tensor direct_covariance(const at::Tensor& x) {
  const at::Tensor c = x - x.mean(0);
  return at::mm(c.t(), c) / static_cast<double>(x.size(0) - 1);
}

TEST(FeatureStats, MergeOfShardsEqualsOneShot) {
  const at::Tensor x = make_features(301, 12, 1, 5.0);
  FeatureStats one_shot;
  one_shot.add(x);
  // Uneven shards, added in batches on different "ranks" and merged, one empty.
  FeatureStats rank0, rank1, rank2;
  rank0.add(x.narrow(0, 0, 7));
  rank0.add(x.narrow(0, 7, 120));
  rank1.add(x.narrow(0, 127, 1));
  rank1.add(x.narrow(0, 128, 173));
  FeatureStats merged;
  merged.merge(rank0);
  merged.merge(rank2);
  merged.merge(FeatureStats::unpack(rank1.pack()));  // through the MPI buffer form
  EXPECT_EQ(merged.count(), 301);
  EXPECT_TRUE(at::allclose(merged.mean(), x.mean(0), 1e-13, 1e-13));
  EXPECT_TRUE(at::allclose(merged.covariance(), direct_covariance(x), 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(merged.covariance(), one_shot.covariance(), 1e-12, 1e-12));
}

TEST(FeatureStats, FileRoundTripKeepsMomentsAndFeatures) {
  TempDir dir;
  const at::Tensor x = make_features(50, 6, 2);
  FeatureStats s;
  s.add(x);
  save_feature_stats(dir.file("s.h5"), s, {{"feature_net", "net-x"}}, x);
  StatsAttributes attributes;
  at::Tensor features;
  const FeatureStats back = load_feature_stats(dir.file("s.h5"), &attributes, &features);
  EXPECT_EQ(back.count(), 50);
  EXPECT_EQ(attributes["feature_net"], "net-x");
  EXPECT_TRUE(at::allclose(back.covariance(), s.covariance(), 1e-14, 0));
  EXPECT_TRUE(at::allclose(features.to(at::kDouble), x, 1e-6, 1e-6));
}

// Statistics that are not a covariance (here a negative one) or whose shapes disagree are
// refused naming the file, never scored (a negative FID once printed as a perfect 0).
TEST(FeatureStats, AFileThatIsNotACovarianceIsRefusedByName) {
  TempDir dir;
  const auto write = [&](const std::string& name, const at::Tensor& mu, const at::Tensor& sigma, int64_t n) {
    Hdf5Writer out(dir.file(name));
    out.write("mu", mu);
    out.write("sigma", sigma);
    out.write("n", at::full({1}, n, at::kLong));
    out.commit();
    return dir.file(name);
  };
  const at::Tensor mu = at::zeros({4}, at::kDouble);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {write("neg.h5", mu, -1000 * at::eye(4, at::kDouble), 500), "negative variance"},
      {write("asym.h5", mu, at::eye(4, at::kDouble) + at::triu(at::ones({4, 4}, at::kDouble), 1), 500), "not symmetric"},
      {write("shape.h5", mu, at::eye(3, at::kDouble), 500), "dataset 'sigma' is [3, 3], expected [4, 4]"},
      {write("n.h5", mu, at::eye(4, at::kDouble), -5), "dataset 'n' is -5"},
      {write("empty.h5", at::zeros({0}, at::kDouble), at::zeros({0, 0}, at::kDouble), 500), "dataset 'mu' is empty"}};
  for (const auto& [path, message] : cases) {
    try {
      load_feature_stats(path);
      ADD_FAILURE() << path << " was loaded";
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), 3);
      EXPECT_EQ(std::string(e.what()).rfind(path + ": ", 0), 0u) << e.what();
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }
}

TEST(Frechet, IdenticalStatisticsGiveZero) {
  FeatureStats s;
  s.add(make_features(400, 64, 3));
  const double d = frechet_distance(s, s);
  EXPECT_NEAR(d, 0.0, 1e-9 * s.covariance().trace().item<double>());
}

TEST(Frechet, FewerSamplesThanDimensionsStillGiveZeroForIdenticalSets) {
  FeatureStats s;
  s.add(make_features(5, 512, 12, 3.0));  // rank-4 covariance in 512 dimensions
  EXPECT_NEAR(frechet_distance(s, s), 0.0, 1e-9 * s.covariance().trace().item<double>());
}

TEST(Frechet, EqualCovariancesGiveSquaredMeanDistance) {
  const at::Tensor x = make_features(300, 20, 4);
  at::manual_seed(9);
  const at::Tensor shift = at::randn({20}, at::kDouble);
  FeatureStats a, b;
  a.add(x);
  b.add(x + shift);  // same covariance, mean moved by `shift`
  const double want = at::dot(shift, shift).item<double>();
  EXPECT_NEAR(frechet_distance(a, b), want, 1e-9 * want);
}

TEST(Frechet, MatchesPytorchFidScipyFormula) {
  TempDir dir;
  struct Case { int64_t na, nb, d; double shift; };
  for (const Case c : {Case{500, 400, 32, 0.2}, Case{1200, 900, 256, 0.05}, Case{200, 300, 8, 1.0}}) {
    const at::Tensor a = make_features(c.na, c.d, 10 + c.d);
    const at::Tensor b = 1.3 * make_features(c.nb, c.d, 20 + c.d, c.shift);
    FeatureStats sa, sb;
    sa.add(a);
    sb.add(b);
    const double ours = frechet_distance(sa, sb);
    const double scipy = scipy_frechet(dir, a, b);
    EXPECT_NEAR(ours, scipy, 1e-6 * std::abs(scipy)) << "D = " << c.d;
    std::printf("[fid] D=%lld: ours %.12g, scipy %.12g, relative difference %.2e\n", static_cast<long long>(c.d), ours,
                scipy, std::abs(ours - scipy) / std::abs(scipy));
    EXPECT_GT(ours, 0.0);
  }
}

TEST(Kid, SetWithItselfIsNearZeroAndAShiftedSetIsNot) {
  at::manual_seed(5);
  const at::Tensor all = at::randn({1200, 16}, at::kDouble);
  const at::Tensor x = all.narrow(0, 0, 600), x2 = all.narrow(0, 600, 600);  // two draws of one law
  KidOptions options;
  options.subset_size = 200;
  const KidResult self = kernel_inception_distance(x, x, options);
  const KidResult same_law = kernel_inception_distance(x, x2, options);
  const KidResult shifted = kernel_inception_distance(x, x2 + 0.5, options);
  EXPECT_EQ(self.subset_size, 200);
  std::printf("[kid] self %.4g +- %.3g, same law %.4g +- %.3g, shifted %.4g +- %.3g\n", self.mean, self.std,
              same_law.mean, same_law.std, shifted.mean, shifted.std);
  // Unbiased for independent samples: within a few standard errors of 0.
  EXPECT_LT(std::abs(same_law.mean), 4.0 * same_law.std / std::sqrt(100.0));
  // A set with itself: overlapping subsets leave only a small finite-population offset.
  EXPECT_LT(std::abs(self.mean), 0.05 * shifted.mean);
  EXPECT_GT(shifted.mean, 10.0 * shifted.std);
  // Same seed, same subsets: deterministic.
  EXPECT_EQ(kernel_inception_distance(x, x2 + 0.5, options).mean, shifted.mean);
}

TEST(Kid, OneFullSubsetMatchesNumpy) {
  TempDir dir;
  const at::Tensor x = make_features(150, 10, 6), y = make_features(150, 10, 7, 0.3);
  write_features(dir.file("a.h5"), x);
  write_features(dir.file("b.h5"), y);
  const double want = last_number(run_python("fid_reference.py", "kid-full " + dir.file("a.h5") + " " + dir.file("b.h5")));
  KidOptions options;
  options.subsets = 1;
  options.subset_size = 1000;  // capped at 150: the whole set in some order
  EXPECT_NEAR(kernel_inception_distance(x, y, options).mean, want, 1e-9 * std::abs(want));
}

// A small training set trains for more epochs: the low-data task's 500 images would give
// the feature network 4 steps, and a net that maps every image alike scores every set FID ~ 0.
TEST(MiniCnnTraining, SmallSetsTrainForAtLeastMinSteps) {
  MiniCnnTrainOptions o;  // 1 epoch, batch 128, at least 235 steps
  EXPECT_EQ(mini_cnn_epochs(30000, o), 1);  // 235 steps an epoch: as before
  EXPECT_EQ(mini_cnn_epochs(500, o), 59);   // 4 steps an epoch
  o.epochs = 3;
  EXPECT_EQ(mini_cnn_epochs(500000, o), 3);
  o.min_steps = 0;
  EXPECT_EQ(mini_cnn_epochs(500, o), 3);
}

// A rank's share of a run's samples: its rows answer by their index in the whole set,
// other rows are refused by name rather than read from the wrong place.
// A network whose features are the images' mean and max: enough to count batches.
class MeanMaxNet : public FeatureNetwork {
 public:
  std::string id() const override { return "mean-max"; }
  std::string metric_suffix() const override { return " (test)"; }
  int64_t dim() const override { return 2; }
  NetworkOutputs outputs(const at::Tensor& images) override {
    const at::Tensor flat = images.reshape({images.size(0), -1}).to(at::kFloat);
    return {at::stack({flat.mean(1), std::get<0>(flat.max(1))}, 1), at::Tensor(), at::Tensor()};
  }
};

// The hook a run uses to stop at a feature batch: it runs after every batch, and what it
// throws (a stop) ends the extraction there.
TEST(ImageFeatures, AfterEachBatchAHookRunsAndMayStopTheExtraction) {
  const ImageSet images("samples.h5", at::randint(0, 256, {10, 4, 4, 1}, at::kByte));
  MeanMaxNet net;
  ExtractOptions options;
  options.batch_size = 3;
  int batches = 0;
  options.after_batch = [&] { ++batches; };
  EXPECT_EQ(extract_features(images, net, options).images, 10);
  EXPECT_EQ(batches, 4);  // 3 + 3 + 3 + 1
  batches = 0;
  options.after_batch = [&] {
    if (++batches == 2) throw StoppedBySignal{SIGTERM};
  };
  EXPECT_THROW(extract_features(images, net, options), StoppedBySignal);
  EXPECT_EQ(batches, 2);
}

TEST(ImageSetInMemory, AWindowAnswersForItsOwnRowsOnly) {
  const at::Tensor all = at::arange(6 * 2 * 2, at::kByte).view({6, 2, 2, 1});
  const at::Tensor labels = at::arange(6, at::kLong);
  const ImageSet share("samples.h5", all.narrow(0, 2, 3), labels, 2, 6);
  EXPECT_EQ(share.size(), 6);
  EXPECT_TRUE(at::equal(share.images(2, 3), all.narrow(0, 2, 3)));
  EXPECT_TRUE(at::equal(share.images(3, 1), all.narrow(0, 3, 1)));
  EXPECT_TRUE(at::equal(share.labels(), labels));
  for (const auto& [start, count] : std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {4, 2}, {5, 1}}) {
    try {
      share.images(start, count);
      ADD_FAILURE() << "rows " << start << "+" << count << " are not held";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("samples.h5: rows"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(ImageSet("samples.h5", all.narrow(0, 2, 3), labels, 4, 6), Error);  // rows past the set
  EXPECT_THROW(ImageSet("samples.h5", all.narrow(0, 2, 3), labels.narrow(0, 0, 5), 2, 6), Error);
  EXPECT_EQ(ImageSet("samples.h5", all).size(), 6);  // the whole set, as before
}

TEST(LegacyTorchFormat, LoadsWhatTorchSaveWrote) {
  TempDir dir;
  run_python("fid_reference.py", "legacy-save " + dir.path().string());
  const StateDict legacy = load_state_dict_file(dir.file("legacy.pth"));
  const StateDict zip = load_state_dict_file(dir.file("zip.pth"));
  ASSERT_EQ(legacy.size(), zip.size());
  for (const auto& [key, value] : zip) {
    ASSERT_TRUE(legacy.count(key)) << key;
    EXPECT_EQ(legacy.at(key).scalar_type(), value.scalar_type()) << key;
    EXPECT_TRUE(legacy.at(key).equal(value)) << key;
  }
  // Views into one storage keep their offsets and strides.
  EXPECT_TRUE(legacy.at("view.a").equal(at::arange(4, 10, at::kFloat) * 0.25 - 2.0));
  EXPECT_TRUE(legacy.at("view.b").equal((at::arange(24, at::kFloat) * 0.25 - 2.0).reshape({4, 6}).t()));
  EXPECT_EQ(legacy.at("bn.num_batches_tracked").item<int64_t>(), 7);
}

TEST(ImageResize, MatchesPilFloatBicubic) {
  TempDir dir;
  at::manual_seed(3);
  const at::Tensor x = at::rand({2, 3, 40, 48}) * 255.0;
  {
    Hdf5Writer out(dir.file("x.h5"));
    out.write("x", x);
    out.commit();
  }
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{{299, 299}, {17, 23}, {40, 20}}) {
    run_python("fid_reference.py", "pil-resize " + dir.file("x.h5") + " " + dir.file("y.h5") + " " +
                                       std::to_string(h) + " " + std::to_string(w));
    const at::Tensor want = Hdf5Reader(dir.file("y.h5")).read("y", at::kFloat);
    const at::Tensor got = resize_pil_bicubic(x, h, w);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-4) << h << "x" << w;
  }
}

// The FID network on random weights made by tests/python/fid_reference.py.
class FidInception : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    run_python("fid_reference.py", "inception " + dir_->path().string());
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string file(const std::string& name) { return dir_->file(name); }
  static TempDir* dir_;
};
TempDir* FidInception::dir_ = nullptr;

TEST_F(FidInception, KeysEqualTheTorchvisionStyleWeightFile) {
  std::ifstream in(file("keys.txt"));
  std::map<std::string, std::string> file_keys;  // name -> shape
  std::string name, shape;
  while (in >> name) {
    std::getline(in, shape);
    file_keys[name] = shape.empty() ? "" : shape.substr(1);
  }
  EXPECT_EQ(file_keys.size(), 566u);  // as pytorch-fid's file: 94 BasicConv2d x 6 + fc weight and bias
  EXPECT_EQ(file_keys["fc.weight"], "1008,2048");
  EXPECT_EQ(file_keys["Mixed_7c.branch_pool.conv.weight"], "192,2048,1,1");
  std::vector<std::string> expected;
  for (const auto& kv : file_keys)
    if (kv.first.find("num_batches_tracked") == std::string::npos) expected.push_back(kv.first);
  FidInceptionV3 net;
  std::vector<std::string> ours = net.state_dict_keys();
  std::sort(ours.begin(), ours.end());
  EXPECT_EQ(ours, expected);

  const StateDict weights = load_state_dict_file(file("inception.pth"));  // the legacy torch format
  const WeightLoadReport report = net.load_weights(weights, /*strict=*/false);
  EXPECT_TRUE(report.missing.empty());
  EXPECT_TRUE(report.unexpected.empty());
  EXPECT_EQ(weights.at("fc.weight").sizes(), (std::vector<int64_t>{1008, 2048}));

  // A safetensors copy loads the same way.
  save_safetensors(dir_->file("inception.safetensors"), weights);
  const WeightLoadReport copy = net.load_weights(load_state_dict_file(dir_->file("inception.safetensors")), false);
  EXPECT_TRUE(copy.missing.empty() && copy.unexpected.empty());
}

TEST_F(FidInception, StrictLoadRejectsMissingAndUnexpectedKeys) {
  StateDict weights = load_state_dict_file(file("inception.pth"));
  weights.erase("Mixed_6b.branch7x7dbl_3.bn.running_var");
  weights["AuxLogits.fc.weight"] = at::zeros({1000, 768});
  FidInceptionV3 net;
  const WeightLoadReport report = net.load_weights(weights, false);
  EXPECT_EQ(report.missing, std::vector<std::string>{"Mixed_6b.branch7x7dbl_3.bn.running_var"});
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"AuxLogits.fc.weight"});
  EXPECT_THROW(net.load_weights(weights, true), Error);
}

void expect_features_match(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double scale = want.abs().max().item<double>();
  const double err = (got - want).abs().max().item<double>();
  EXPECT_GT(scale, 1e-3) << what << ": degenerate features";
  EXPECT_LE(err, 1e-4 * scale) << what << ": max |diff| " << err << " at scale " << scale;
  std::printf("[inception] %s: max |diff| %.3g at feature scale %.3g\n", what.c_str(), err, scale);
}

TEST_F(FidInception, Pool3MatchesPytorchEagerFidNetwork) {
  Hdf5Reader expected(file("expected.h5"));
  const at::Tensor rgb = ImageSet(file("rgb.h5")).images(0, 3);
  const at::Tensor gray = ImageSet(file("gray.h5")).images(0, 2);

  InceptionFeatureNet bilinear(file("inception.pth"), ResizeMode::PytorchFid);
  EXPECT_EQ(bilinear.metric_name(), "FID");
  expect_features_match(bilinear.features(rgb), expected.read("rgb_bilinear", at::kFloat), "rgb, pytorch-fid resize");
  expect_features_match(bilinear.features(gray), expected.read("gray_bilinear", at::kFloat), "grey, pytorch-fid resize");

  InceptionFeatureNet clean(file("inception.pth"), ResizeMode::Clean);
  EXPECT_NE(clean.id(), bilinear.id());  // separate cache entries
  expect_features_match(clean.features(rgb), expected.read("rgb_clean", at::kFloat), "rgb, clean resize");
}

// The ADM evaluator's other two Inception tensors: sFID's spatial features (TF's
// mixed_6/conv = Mixed_6d's 1x1 branch, first 7 channels, (H, W, C) order) and IS logits.
TEST_F(FidInception, SpatialFeaturesAndLogitsMatchPytorchEager) {
  Hdf5Reader expected(file("expected.h5"));
  const at::Tensor rgb = ImageSet(file("rgb.h5")).images(0, 3);
  InceptionFeatureNet net(file("inception.pth"), ResizeMode::PytorchFid);
  const NetworkOutputs out = net.outputs(rgb);
  EXPECT_EQ(out.spatial.size(1), 17 * 17 * 7);
  expect_features_match(out.spatial, expected.read("rgb_spatial", at::kFloat), "sFID features");
  expect_features_match(out.logits, expected.read("rgb_logits", at::kFloat), "IS logits");
  expect_features_match(out.pool, expected.read("rgb_bilinear", at::kFloat), "pool3 from outputs()");
}

TEST_F(FidInception, CliWithoutWeightsSaysSoAndExits3) {
  auto r = testing::run_command("env -u DIFFFIT_INCEPTION_WEIGHTS " + testing::difffit_binary() +
                                " fid --samples " + file("rgb.h5") + " --reference " + file("rgb.h5") + " --no-cache");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("--inception-weights"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("DIFFFIT_INCEPTION_WEIGHTS"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("FID:"), std::string::npos) << r.output;  // no score of any kind
}

TEST_F(FidInception, CliScoresASetAgainstItselfAsZeroAndNamesTheMetric) {
  TempDir cache;
  auto r = testing::run_command("DIFFFIT_INCEPTION_WEIGHTS=" + file("inception.pth") + " " +
                                testing::difffit_binary() + " fid --samples " + file("rgb.h5") + " --reference " +
                                file("rgb.h5") + " --json --cache-dir " + cache.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"metric\": \"FID\""), std::string::npos) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("\"fid\": ([-0-9.e+]+)"))) << r.output;
  EXPECT_NEAR(std::stod(m[1]), 0.0, 1e-6);
  // The reference statistics were cached for the next run.
  EXPECT_FALSE(std::filesystem::is_empty(cache.path()));
}

TEST(Npz, ReadsBackWithNumpyInTheAdmLayout) {
  TempDir dir;
  const at::Tensor gray = at::randint(0, 256, {4, 5, 6, 1}, at::TensorOptions().dtype(at::kByte));
  {
    Hdf5Writer out(dir.file("s.h5"));
    out.write("images", gray);
    out.commit();
  }
  export_samples_npz(dir.file("s.h5"), dir.file("samples.npz"));
  FeatureStats s;
  s.add(make_features(30, 7, 8));
  export_stats_npz(s, dir.file("ref.npz"));
  const std::string samples = run_python("fid_reference.py", "check-npz " + dir.file("samples.npz"));
  const double pixel_sum = 3.0 * gray.to(at::kDouble).sum().item<double>();  // grey repeated to RGB
  char want[128];
  std::snprintf(want, sizeof want, "arr_0 |u1 4,5,6,3 %.1f", pixel_sum);
  EXPECT_NE(samples.find(want), std::string::npos) << samples << " vs " << want;
  const std::string ref = run_python("fid_reference.py", "check-npz " + dir.file("ref.npz"));
  EXPECT_NE(ref.find("mu <f8 7 "), std::string::npos) << ref;
  EXPECT_NE(ref.find("sigma <f8 7,7 "), std::string::npos) << ref;
}

TEST(SampleGrid, EnlargedWithClassNamesBesideTheRows) {
  at::Tensor images = at::zeros({4, 8, 8, 1}, at::TensorOptions().dtype(at::kByte));
  images[0].fill_(200);  // class 1's first tile
  const at::Tensor labels = at::tensor(std::vector<int64_t>{1, 0, 1, 0});
  GridStyle style;
  style.columns = 2;
  style.scale = 3;
  style.class_names = {"Sandal", "Ankle boot"};
  const at::Tensor plain = make_sample_grid(images.repeat_interleave(3, 1).repeat_interleave(3, 2), labels, 2, 6);
  style.label_rows = false;
  EXPECT_TRUE(at::equal(make_labelled_grid(images, labels, style), plain));  // nearest-neighbour x3
  EXPECT_EQ(readable_grid_scale(32), 3);
  EXPECT_EQ(readable_grid_scale(64), 2);
  EXPECT_EQ(readable_grid_scale(256), 1);
  if (default_font_path().empty()) GTEST_SKIP() << "no font installed (fonts-dejavu-core)";
  style.label_rows = true;
  const at::Tensor grid = make_labelled_grid(images, labels, style);
  ASSERT_EQ(grid.size(0), plain.size(0));
  const int64_t margin = grid.size(1) - plain.size(1);
  ASSERT_GT(margin, 0);
  EXPECT_TRUE(at::equal(grid.narrow(1, margin, plain.size(1)), plain));  // the images are untouched
  // Ink in the margin of each row; the longer name ("Ankle boot", row 1) is wider.
  const int64_t row = plain.size(0) / 2;
  const at::Tensor ink0 = grid.narrow(0, 0, row).narrow(1, 0, margin).gt(0).any(0).squeeze(-1);
  const at::Tensor ink1 = grid.narrow(0, row, row).narrow(1, 0, margin).gt(0).any(0).squeeze(-1);
  ASSERT_GT(ink0.sum().item<int64_t>(), 0);
  ASSERT_GT(ink1.sum().item<int64_t>(), 0);
  EXPECT_GT(ink1.nonzero().max().item<int64_t>(), ink0.nonzero().max().item<int64_t>());
}

// Class names are UTF-8 (Food-101 has "crème brûlée"): each character is one glyph.
TEST(TextRender, Utf8NamesAreDrawnAsTheirCharacters) {
  EXPECT_EQ(utf8_code_points("Crème brûlée"), std::u32string(U"Crème brûlée"));
  EXPECT_EQ(utf8_code_points("\xF0\x9F\x8D\xB0"), std::u32string(U"\U0001F370"));  // four bytes
  const std::u32string bad = {U'a', U'\uFFFD'};
  EXPECT_EQ(utf8_code_points("a\xC3"), bad);                                       // cut short
  EXPECT_EQ(utf8_code_points("\xC0\xAF"), std::u32string(2, U'\uFFFD'));           // overlong '/'
  EXPECT_EQ(utf8_code_points("\xED\xA0\x80"), std::u32string(3, U'\uFFFD'));       // a surrogate
  if (default_font_path().empty()) GTEST_SKIP() << "no font installed (fonts-dejavu-core)";
  // One glyph as wide as the plain letter (DejaVu gives them the same advance), not two.
  const at::Tensor plain = render_text("e", 24), accented = render_text("é", 24);
  ASSERT_TRUE(plain.defined() && accented.defined());
  EXPECT_EQ(accented.size(1), plain.size(1));
  EXPECT_FALSE(at::equal(accented, plain));
}

TEST(SampleGrid, OneRowPerClassInClassOrder) {
  const int64_t n = 7;
  at::Tensor images = at::empty({n, 3, 4, 1}, at::TensorOptions().dtype(at::kByte));
  for (int64_t i = 0; i < n; ++i) images[i].fill_(10 * (i + 1));
  const at::Tensor labels = at::tensor(std::vector<int64_t>{2, 0, 2, 0, 0, 2, 0});
  const at::Tensor grid = make_sample_grid(images, labels, 2, /*padding=*/1);
  ASSERT_EQ(grid.sizes(), (std::vector<int64_t>{1 + 2 * 4, 1 + 2 * 5, 1}));
  // Row 0: class 0 -> images 1, 3; row 1: class 2 -> images 0, 2.
  auto tile = [&](int64_t r, int64_t c) { return grid[1 + r * 4][1 + c * 5][0].item<int64_t>(); };
  EXPECT_EQ(tile(0, 0), 20);
  EXPECT_EQ(tile(0, 1), 40);
  EXPECT_EQ(tile(1, 0), 10);
  EXPECT_EQ(tile(1, 1), 30);
  EXPECT_EQ(grid[0][0][0].item<int64_t>(), 0);  // padding

  TempDir dir;
  GridStyle plain;
  plain.columns = 3;
  write_sample_grid(dir.file("grid.png"), images, at::Tensor(), plain);  // unlabelled: 3 rows of up to 3
  const std::string png = run_python("fid_reference.py", "check-png " + dir.file("grid.png"));
  EXPECT_NE(png.find("L 20 17 "), std::string::npos) << png;  // 2 + 3 * (4 + 2) wide, 2 + 3 * (3 + 2) high
}

TEST(CliFid, GivenFeaturesMatchScipyAndReportKid) {
  TempDir dir;
  const at::Tensor a = make_features(400, 24, 30), b = make_features(350, 24, 31, 0.4);
  const double scipy = scipy_frechet(dir, a, b);
  auto r = run_difffit("fid --features-a " + dir.file("a.h5") + " --features-b " + dir.file("b.h5") +
                       " --kid --kid-subset-size 100 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("\"fid\": ([-0-9.e+]+)"))) << r.output;
  EXPECT_NEAR(std::stod(m[1]), scipy, 1e-6 * scipy);
  EXPECT_NE(r.output.find("\"kid\": "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"kid_subset_size\": 100"), std::string::npos) << r.output;
}

TEST(CliFid, WritesAPerClassGridWithoutScoring) {
  TempDir dir;
  {
    Hdf5Writer out(dir.file("s.h5"));
    out.write("images", at::full({5, 3, 4, 3}, 200, at::TensorOptions().dtype(at::kByte)));
    out.write("labels", at::tensor(std::vector<int64_t>{1, 1, 1, 0, 2}));
    out.commit();
  }
  auto r = run_difffit("fid --samples " + dir.file("s.h5") + " --grid " + dir.file("g.png") +
                       " --grid-columns 2 --grid-scale 1 --grid-names false");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // 3 classes -> 3 rows of up to 2 tiles: class 0 one, class 1 its first two, class 2 one: 4 tiles at 200.
  const std::string png = run_python("fid_reference.py", "check-png " + dir.file("g.png"));
  EXPECT_NE(png.find("RGB 14 17 " + std::to_string(4 * 3 * 4 * 3 * 200)), std::string::npos) << png;
  // By default the grid is enlarged for people (4 px tiles -> x24) with the rows named.
  auto big = run_difffit("fid --samples " + dir.file("s.h5") + " --grid " + dir.file("big.png") + " --grid-columns 2");
  ASSERT_EQ(big.exit_code, 0) << big.output;
  const std::string big_png = run_python("fid_reference.py", "check-png " + dir.file("big.png"));
  EXPECT_NE(big_png.find("RGB "), std::string::npos) << big_png;
  EXPECT_EQ(big_png.find("RGB 14 17 "), std::string::npos) << big_png;
}

TEST(CliFid, NonFiniteFeaturesAreADataErrorNamingFileAndRow) {
  TempDir dir;
  at::Tensor a = make_features(40, 6, 30);
  a[17][3] = std::nan("");
  write_features(dir.file("a.h5"), a);
  write_features(dir.file("b.h5"), make_features(40, 6, 31));
  auto r = run_difffit("fid --features-a " + dir.file("a.h5") + " --features-b " + dir.file("b.h5"));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find(dir.file("a.h5") + ": dataset 'features': holds NaN or infinite values (first in row 17)"),
            std::string::npos)
      << r.output;
}

TEST(CliFid, UsageErrorsExit2) {
  EXPECT_EQ(run_difffit("fid --samples a.h5 --reference b.h5 --reference-stats c.h5").exit_code, 2);
  EXPECT_EQ(run_difffit("fid --features-a a.h5").exit_code, 2);
  EXPECT_EQ(run_difffit("fid --reference b.h5").exit_code, 2);
  // Sizes are checked before any file is read or network run.
  for (const std::string flags : {"--grid-columns 0", "--grid-columns 100000000", "--grid-scale -1", "--batch-size 0",
                                  "--num-samples -1", "--mini-cnn-epochs -1", "--kid-subsets 0",
                                  "--kid-subsets 1000000000000", "--pr-k 0", "--is-split-size 0"}) {
    auto r = run_difffit("eval --samples a.h5 --reference b.h5 " + flags);
    EXPECT_EQ(r.exit_code, 2) << flags << "\n" << r.output;
    EXPECT_NE(r.output.find("eval: --" + flags.substr(2, flags.find(' ') - 2) + " must be"), std::string::npos)
        << flags << "\n" << r.output;
  }
  auto device = run_difffit("eval --samples a.h5 --reference b.h5 --device gpu");
  EXPECT_EQ(device.exit_code, 2) << device.output;
  EXPECT_NE(device.output.find("eval: --device: unknown device 'gpu' (expected cpu, cuda or cuda:K)"), std::string::npos)
      << device.output;
}

}  // namespace
}  // namespace difffit
