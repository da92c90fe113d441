#include "eval/mini_cnn.h"

#include <torch/torch.h>

#include <chrono>
#include <filesystem>

#include "common/error.h"
#include "common/logging.h"
#include "common/safetensors.h"
#include "common/state_dict_file.h"
#include "eval/content_hash.h"
#include "eval/image_set.h"

namespace difffit {
namespace {

struct MiniCnnNetImpl : torch::nn::Module {
  explicit MiniCnnNetImpl(const MiniCnnConfig& c) {
    auto conv = [](int64_t in, int64_t out) { return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)); };
    conv1 = register_module("conv1", conv(c.in_channels, 32));
    conv2 = register_module("conv2", conv(32, 64));
    conv3 = register_module("conv3", conv(64, 128));
    const int64_t side = c.image_size / 8;
    fc1 = register_module("fc1", torch::nn::Linear(128 * side * side, c.feature_dim));
    fc2 = register_module("fc2", torch::nn::Linear(c.feature_dim, c.num_classes));
  }
  // x: (N, C, S, S) in [-1, 1] -> the last conv map (after its ReLU, before its pool).
  torch::Tensor conv_map(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv1(x)), 2);
    x = torch::max_pool2d(torch::relu(conv2(x)), 2);
    return torch::relu(conv3(x));
  }
  // -> penultimate features (before the ReLU).
  torch::Tensor embed_map(const torch::Tensor& map) { return fc1(torch::max_pool2d(map, 2).flatten(1)); }
  torch::Tensor embed(const torch::Tensor& x) { return embed_map(conv_map(x)); }
  torch::Tensor forward(const torch::Tensor& x) { return fc2(torch::relu(embed(x))); }
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(MiniCnnNet);

std::string config_string(const MiniCnnConfig& c) {
  return "in_channels=" + std::to_string(c.in_channels) + ",image_size=" + std::to_string(c.image_size) +
         ",num_classes=" + std::to_string(c.num_classes) + ",feature_dim=" + std::to_string(c.feature_dim);
}


}  // namespace

struct MiniCnn::Impl {
  MiniCnnConfig config;
  MiniCnnNet net;
  explicit Impl(const MiniCnnConfig& c) : config(c), net(c) {}

  // uint8 (N, H, W, C) -> float (N, in_channels, S, S) in [-1, 1].
  torch::Tensor prepare(const at::Tensor& images) const {
    if (images.dim() != 4 || (images.size(3) != 1 && images.size(3) != 3))
      throw_data("mini-CNN: images must be uint8 (N, H, W, C) with C = 1 or 3, got " + c10::str(images.sizes()));
    torch::Tensor x = images.permute({0, 3, 1, 2}).to(torch::kFloat) / 255.0f;
    if (x.size(1) != config.in_channels) x = config.in_channels == 1 ? x.mean(1, true) : x.expand({-1, 3, -1, -1});
    if (x.size(2) != config.image_size || x.size(3) != config.image_size)
      x = at::upsample_bilinear2d(x, {config.image_size, config.image_size}, false);
    return x * 2.0f - 1.0f;
  }
};

MiniCnn::MiniCnn(const MiniCnnConfig& config) {
  if (config.image_size % 8 != 0 || config.image_size < 8)
    throw_config("mini-CNN: image size must be a multiple of 8, got " + std::to_string(config.image_size));
  if (config.num_classes < 2) throw_config("mini-CNN: needs at least 2 classes");
  impl_ = std::make_unique<Impl>(config);
}
MiniCnn::~MiniCnn() = default;
MiniCnn::MiniCnn(MiniCnn&&) noexcept = default;
MiniCnn& MiniCnn::operator=(MiniCnn&&) noexcept = default;

const MiniCnnConfig& MiniCnn::config() const { return impl_->config; }

MiniCnnTrainReport MiniCnn::train(const at::Tensor& images, const at::Tensor& labels_in,
                                  const MiniCnnTrainOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const at::Tensor labels = labels_in.to(at::kLong);
  if (labels.dim() != 1 || labels.size(0) != images.size(0))
    throw_data("mini-CNN: need one label per image (" + std::to_string(images.size(0)) + ")");
  if (labels.numel() == 0) throw_data("mini-CNN: no training images");
  if (labels.min().item<int64_t>() < 0 || labels.max().item<int64_t>() >= impl_->config.num_classes)
    throw_data("mini-CNN: labels outside 0.." + std::to_string(impl_->config.num_classes - 1));
  torch::manual_seed(options.seed);
  auto& net = impl_->net;
  net->train();
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(options.lr));
  const int64_t n = images.size(0), batch = std::max<int64_t>(1, options.batch_size);
  MiniCnnTrainReport report;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    const at::Tensor order = torch::randperm(n, torch::kLong);
    double loss_sum = 0.0;
    int64_t correct = 0, batches = 0;
    for (int64_t s = 0; s < n; s += batch) {
      const at::Tensor idx = order.narrow(0, s, std::min(batch, n - s));
      const torch::Tensor x = impl_->prepare(images.index_select(0, idx));
      const torch::Tensor y = labels.index_select(0, idx);
      const torch::Tensor out = net->forward(x);
      const torch::Tensor loss = torch::nn::functional::cross_entropy(out, y);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>();
      correct += out.argmax(1).eq(y).sum().item<int64_t>();
      ++batches, ++report.steps;
    }
    report.final_loss = loss_sum / static_cast<double>(std::max<int64_t>(1, batches));
    report.train_accuracy = static_cast<double>(correct) / static_cast<double>(n);
    log()->info("[mini-cnn] epoch {}/{}: loss {:.4f}, train accuracy {:.3f}", epoch + 1, options.epochs,
                report.final_loss, report.train_accuracy);
  }
  net->eval();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

at::Tensor MiniCnn::features(const at::Tensor& images) {
  torch::NoGradGuard no_grad;
  impl_->net->eval();
  return impl_->net->embed(impl_->prepare(images));
}

at::Tensor MiniCnn::logits(const at::Tensor& images) {
  torch::NoGradGuard no_grad;
  impl_->net->eval();
  return impl_->net->forward(impl_->prepare(images));
}

NetworkOutputs MiniCnn::outputs(const at::Tensor& images) {
  torch::NoGradGuard no_grad;
  impl_->net->eval();
  const torch::Tensor map = impl_->net->conv_map(impl_->prepare(images));
  NetworkOutputs out;
  out.pool = impl_->net->embed_map(map);
  out.logits = impl_->net->fc2(torch::relu(out.pool));
  out.spatial = map.narrow(1, 0, 7).permute({0, 2, 3, 1}).flatten(1);
  return out;
}

double MiniCnn::accuracy(const at::Tensor& images, const at::Tensor& labels, int64_t batch_size) {
  int64_t correct = 0;
  const int64_t n = images.size(0);
  for (int64_t s = 0; s < n; s += batch_size) {
    const int64_t k = std::min(batch_size, n - s);
    correct += logits(images.narrow(0, s, k)).argmax(1).eq(labels.narrow(0, s, k).to(at::kLong)).sum().item<int64_t>();
  }
  return n ? static_cast<double>(correct) / static_cast<double>(n) : 0.0;
}

void MiniCnn::save(const std::string& path) const {
  StateDict sd;
  for (const auto& p : impl_->net->named_parameters(true)) sd[p.key()] = p.value().detach().clone();
  const MiniCnnConfig& c = impl_->config;
  TensorFileMetadata meta = {{"format", "difffit-mini-cnn-v1"},
                             {"in_channels", std::to_string(c.in_channels)},
                             {"image_size", std::to_string(c.image_size)},
                             {"num_classes", std::to_string(c.num_classes)},
                             {"feature_dim", std::to_string(c.feature_dim)}};
  save_safetensors(path, sd, meta);
}

MiniCnn MiniCnn::load(const std::string& path) {
  TensorFileMetadata meta;
  const StateDict sd = load_safetensors(path, &meta);
  MiniCnnConfig c;
  c.in_channels = metadata_int(meta, "in_channels", path);
  c.image_size = metadata_int(meta, "image_size", path);
  c.num_classes = metadata_int(meta, "num_classes", path);
  c.feature_dim = metadata_int(meta, "feature_dim", path);
  MiniCnn net(c);
  torch::NoGradGuard no_grad;
  for (auto& p : net.impl_->net->named_parameters(true)) {
    const auto it = sd.find(p.key());
    if (it == sd.end() || !it->second.sizes().equals(p.value().sizes()))
      throw_data(path + ": mini-CNN weight '" + p.key() + "' missing or of the wrong shape");
    p.value().copy_(it->second);
  }
  net.impl_->net->eval();
  return net;
}

int64_t MiniCnnFeatureNet::dim() const { return net_.config().feature_dim; }

std::unique_ptr<MiniCnnFeatureNet> load_mini_cnn_feature_net(const std::string& path) {
  MiniCnn net = MiniCnn::load(path);
  return std::make_unique<MiniCnnFeatureNet>(std::move(net), "mini-cnn/" + hash_file(path));
}

int64_t mini_cnn_epochs(int64_t images, const MiniCnnTrainOptions& options) {
  const int64_t batch = std::max<int64_t>(1, options.batch_size);
  const int64_t steps_per_epoch = std::max<int64_t>(1, (images + batch - 1) / batch);
  return std::max(options.epochs, (options.min_steps + steps_per_epoch - 1) / steps_per_epoch);
}

std::unique_ptr<MiniCnnFeatureNet> load_or_train_mini_cnn(const std::string& train_set, const std::string& cache_dir,
                                                          const MiniCnnTrainOptions& requested) {
  ImageSet data(train_set);
  if (!data.has_labels()) throw_data(train_set + ": the mini-CNN trains on labelled images: dataset 'labels' missing");
  MiniCnnConfig config;
  config.in_channels = data.channels();
  config.image_size = data.height();
  if (data.height() != data.width() || data.height() % 8 != 0)
    throw_data(train_set + ": the mini-CNN needs square images with a side divisible by 8, got " +
               std::to_string(data.height()) + "x" + std::to_string(data.width()));
  const at::Tensor all_labels = data.labels();
  if (all_labels.numel() == 0) throw_data(train_set + ": no labelled images to train the mini-CNN on");
  if (all_labels.min().item<int64_t>() < 0)
    throw_data(train_set + ": dataset 'labels' holds a negative label (" +
               std::to_string(all_labels.min().item<int64_t>()) + ")");
  config.num_classes = std::max<int64_t>(2, all_labels.max().item<int64_t>() + 1);
  const int64_t n = requested.max_images > 0 ? std::min(requested.max_images, data.size()) : data.size();
  MiniCnnTrainOptions options = requested;
  options.epochs = mini_cnn_epochs(n, requested);  // the key holds the epochs actually trained

  ContentHash key;
  key.text("mini-cnn-v1");
  key.text(data.content_hash());
  key.text(config_string(config));
  for (int64_t v : {options.epochs, options.batch_size, options.max_images, static_cast<int64_t>(options.seed)})
    key.value(v);
  key.bytes(&options.lr, sizeof options.lr);
  const std::string file = (std::filesystem::path(cache_dir) / ("mini_cnn-" + key.hex() + ".safetensors")).string();
  if (std::filesystem::exists(file)) {
    log()->info("[mini-cnn] using the cached feature network {}", file);
    return std::make_unique<MiniCnnFeatureNet>(MiniCnn::load(file), "mini-cnn/" + key.hex());
  }

  log()->info("[mini-cnn] training the feature network on {} images of {} ({} epochs)", n, train_set, options.epochs);
  torch::manual_seed(options.seed);
  MiniCnn net(config);
  const MiniCnnTrainReport report = net.train(data.images(0, n), all_labels.narrow(0, 0, n), options);
  log()->info("[mini-cnn] trained in {:.1f} s ({} steps), last-epoch train accuracy {:.3f}", report.seconds,
              report.steps, report.train_accuracy);
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  if (ec) throw_io(cache_dir + ": cannot create the cache folder: " + ec.message());
  net.save(file);
  return std::make_unique<MiniCnnFeatureNet>(std::move(net), "mini-cnn/" + key.hex());
}

std::optional<double> class_accuracy(MiniCnn& net, const ImageSet& images, int64_t max_images) {
  const int64_t n = max_images > 0 ? std::min(max_images, images.size()) : images.size();
  if (!images.has_labels() || n == 0) return std::nullopt;
  const at::Tensor labels = images.labels().narrow(0, 0, n);
  if (labels.min().item<int64_t>() < 0 || labels.max().item<int64_t>() >= net.config().num_classes) return std::nullopt;
  return net.accuracy(images.images(0, n), labels);
}

}  // namespace difffit
