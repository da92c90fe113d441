// The mini benchmark's feature network on real Fashion-MNIST (Debian's
// dataset-fashion-mnist): accuracy it reaches on a small budget, its cache, and
// `difffit fid --feature-net mini-cnn` separating near from far distributions.
#include <ATen/ATen.h>
#include <zlib.h>

#include <chrono>
#include <regex>

#include "common/hdf5_tensors.h"
#include "eval/mini_cnn.h"
#include "test_support.h"

namespace difffit {
namespace {

using testing::TempDir;

const std::string kFashion = "/usr/share/datasets/fashion-mnist/";

// IDX (big-endian header, uint8 payload) from a .gz file, read with zlib.
at::Tensor read_idx_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return at::Tensor();
  unsigned char header[4];
  gzread(f, header, 4);
  const int dims = header[3];
  std::vector<int64_t> shape;
  for (int d = 0; d < dims; ++d) {
    unsigned char b[4];
    gzread(f, b, 4);
    shape.push_back((int64_t{b[0]} << 24) | (b[1] << 16) | (b[2] << 8) | b[3]);
  }
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(at::kByte));
  const int64_t total = out.numel();
  int64_t done = 0;
  while (done < total) {
    const int n = gzread(f, out.data_ptr<uint8_t>() + done, static_cast<unsigned>(std::min<int64_t>(total - done, 1 << 30)));
    if (n <= 0) break;
    done += n;
  }
  gzclose(f);
  return done == total ? out : at::Tensor();
}

// 28x28 -> 32x32x1 with a 2-pixel black border, as the mini benchmark pads.
at::Tensor pad_to_32(const at::Tensor& images) {
  at::Tensor out = at::zeros({images.size(0), 32, 32, 1}, at::TensorOptions().dtype(at::kByte));
  out.narrow(1, 2, 28).narrow(2, 2, 28).copy_(images.unsqueeze(3));
  return out;
}

void write_set(const std::string& path, const at::Tensor& images, const at::Tensor& labels) {
  Hdf5Writer out(path);
  out.write("images", images);
  out.write("labels", labels.to(at::kLong));
  out.commit();
}

class MiniCnnFashion : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const at::Tensor train = read_idx_gz(kFashion + "train-images-idx3-ubyte.gz");
    const at::Tensor train_labels = read_idx_gz(kFashion + "train-labels-idx1-ubyte.gz");
    const at::Tensor test = read_idx_gz(kFashion + "t10k-images-idx3-ubyte.gz");
    const at::Tensor test_labels = read_idx_gz(kFashion + "t10k-labels-idx1-ubyte.gz");
    if (!train.defined() || !test.defined()) return;
    dir_ = new TempDir();
    write_set(dir_->file("train.h5"), pad_to_32(train.narrow(0, 0, kTrain)), train_labels.narrow(0, 0, kTrain));
    test_images_ = new at::Tensor(pad_to_32(test.narrow(0, 0, 2000)));
    test_labels_ = new at::Tensor(test_labels.narrow(0, 0, 2000).to(at::kLong));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete test_images_;
    delete test_labels_;
  }
  void SetUp() override {
    if (!dir_) GTEST_SKIP() << "Fashion-MNIST not installed at " << kFashion << " (dataset-fashion-mnist)";
  }
  static constexpr int64_t kTrain = 12000;
  static MiniCnnTrainOptions options() {
    MiniCnnTrainOptions o;
    o.epochs = 2;
    o.min_steps = 0;  // exactly two epochs
    return o;
  }
  static TempDir* dir_;
  static at::Tensor* test_images_;
  static at::Tensor* test_labels_;
};
TempDir* MiniCnnFashion::dir_ = nullptr;
at::Tensor* MiniCnnFashion::test_images_ = nullptr;
at::Tensor* MiniCnnFashion::test_labels_ = nullptr;

TEST_F(MiniCnnFashion, TrainsToAStatedTestAccuracyAndIsCached) {
  const std::string cache = dir_->file("cache");
  const auto start = std::chrono::steady_clock::now();
  auto net = load_or_train_mini_cnn(dir_->file("train.h5"), cache, options());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double accuracy = net->net().accuracy(*test_images_, *test_labels_);
  std::printf("[mini-cnn] %lld training images, %lld epochs: %.1f s, test accuracy %.4f (2000 test images)\n",
              static_cast<long long>(kTrain), static_cast<long long>(options().epochs), seconds, accuracy);
  EXPECT_GE(accuracy, 0.82);
  EXPECT_EQ(net->dim(), 128);
  EXPECT_EQ(net->metric_name(), "FID (mini-CNN)");

  // Second call: from the cache (no training), same features.
  const auto again_start = std::chrono::steady_clock::now();
  auto again = load_or_train_mini_cnn(dir_->file("train.h5"), cache, options());
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - again_start).count(), seconds / 4);
  EXPECT_EQ(again->id(), net->id());
  const at::Tensor probe = test_images_->narrow(0, 0, 16);
  EXPECT_TRUE(again->features(probe).equal(net->features(probe)));
}

TEST_F(MiniCnnFashion, CliSeparatesNearFromFarDistributions) {
  const std::string cache = dir_->file("cache");
  // Two disjoint halves of the real test images, and an inverted copy of the second.
  const at::Tensor a = test_images_->narrow(0, 0, 1000), b = test_images_->narrow(0, 1000, 1000);
  write_set(dir_->file("a.h5"), a, test_labels_->narrow(0, 0, 1000));
  write_set(dir_->file("b.h5"), b, test_labels_->narrow(0, 1000, 1000));
  write_set(dir_->file("inv.h5"), 255 - b, test_labels_->narrow(0, 1000, 1000));
  auto score = [&](const std::string& samples) {
    auto r = testing::run_difffit("fid --feature-net mini-cnn --mini-cnn-train " + dir_->file("train.h5") +
                                  " --mini-cnn-epochs 2 --cache-dir " + cache + " --samples " + samples +
                                  " --reference " + dir_->file("a.h5") + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("\"metric\": \"FID (mini-CNN)\""), std::string::npos) << r.output;
    std::smatch m;
    if (!std::regex_search(r.output, m, std::regex("\"fid\": ([-0-9.e+]+)"))) return -1.0;
    return std::stod(m[1]);
  };
  const double near = score(dir_->file("b.h5")), far = score(dir_->file("inv.h5"));
  std::printf("[mini-cnn] FID real/real %.3f, real/inverted %.3f\n", near, far);
  EXPECT_GT(near, 0.0);
  EXPECT_GT(far, 20.0 * near);
}

}  // namespace
}  // namespace difffit
