// The mini benchmark's feature network: a 3-conv CNN classifier trained once on
// the benchmark's training images and cached by content hash; its 128-d
// penultimate layer (pre-activation) is the feature space of "FID (mini-CNN)".
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "eval/feature_network.h"

namespace difffit {

class ImageSet;

struct MiniCnnConfig {
  int64_t in_channels = 1;   // image channels the net was trained on (others are converted)
  int64_t image_size = 32;   // square input side; other sizes are resized bilinearly (multiple of 8)
  int64_t num_classes = 10;  // classifier outputs
  int64_t feature_dim = 128; // penultimate width = feature dimension
};

struct MiniCnnTrainOptions {
  int64_t epochs = 1;        // passes over the training images (one: ~87% on Fashion-MNIST)
  int64_t batch_size = 128;  // images per step
  double lr = 1e-3;          // Adam learning rate
  uint64_t seed = 0;         // initialisation and shuffling
  int64_t max_images = 0;    // train on the first N images only (0 = all)
  // At least this many steps, with more epochs on a small training set (235 = one epoch of
  // 30,000 images): a net trained for a handful of steps maps every image alike, FID ~ 0.
  int64_t min_steps = 235;
};

// The epochs load_or_train_mini_cnn trains `images` for: options.epochs, or more to reach
// options.min_steps.
int64_t mini_cnn_epochs(int64_t images, const MiniCnnTrainOptions& options);

struct MiniCnnTrainReport {
  int64_t steps = 0;
  double seconds = 0.0;
  double final_loss = 0.0;      // mean loss of the last epoch
  double train_accuracy = 0.0;  // during the last epoch
};

class MiniCnn {
 public:
  explicit MiniCnn(const MiniCnnConfig& config);  // random weights from the current torch seed
  ~MiniCnn();
  MiniCnn(MiniCnn&&) noexcept;
  MiniCnn& operator=(MiniCnn&&) noexcept;

  const MiniCnnConfig& config() const;
  // images uint8 (N, H, W, C), labels int64 (N) in [0, num_classes).
  MiniCnnTrainReport train(const at::Tensor& images, const at::Tensor& labels, const MiniCnnTrainOptions& options);
  at::Tensor features(const at::Tensor& images);  // float32 (N, feature_dim), eval mode
  at::Tensor logits(const at::Tensor& images);    // float32 (N, num_classes)
  // features, logits, and as sFID features the first 7 channels of the last conv map
  // (after its ReLU, before its pool; (H, W, C) order, as the ADM evaluator's).
  NetworkOutputs outputs(const at::Tensor& images);
  double accuracy(const at::Tensor& images, const at::Tensor& labels, int64_t batch_size = 512);

  // safetensors with the config in its metadata (atomic write).
  void save(const std::string& path) const;
  static MiniCnn load(const std::string& path);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class MiniCnnFeatureNet : public FeatureNetwork {
 public:
  MiniCnnFeatureNet(MiniCnn net, std::string id) : net_(std::move(net)), id_(std::move(id)) {}
  std::string id() const override { return id_; }
  std::string metric_suffix() const override { return " (mini-CNN)"; }
  int64_t dim() const override;
  NetworkOutputs outputs(const at::Tensor& images) override { return net_.outputs(images); }
  MiniCnn& net() { return net_; }

 private:
  MiniCnn net_;
  std::string id_;
};

// The cached net for `train_set` (HDF5 images + labels): loaded from
// cache_dir/mini_cnn-<key>.safetensors if present, else trained and saved there.
// The key hashes the data's content hash, the training options and the architecture.
std::unique_ptr<MiniCnnFeatureNet> load_or_train_mini_cnn(const std::string& train_set,
                                                          const std::string& cache_dir,
                                                          const MiniCnnTrainOptions& options = {});
// Class accuracy: the share of the images in `path` (HDF5 `images` with `y`, the class each
// sample was drawn for, or `labels`) that the net classifies as that class; nullopt when the
// file has no labels or they do not fit the net's classes. Up to `max_images` (0 = all).
std::optional<double> class_accuracy(MiniCnn& net, const ImageSet& images, int64_t max_images = 0);

// A net saved by MiniCnn::save (e.g. by another run), used as is.
std::unique_ptr<MiniCnnFeatureNet> load_mini_cnn_feature_net(const std::string& path);

}  // namespace difffit
