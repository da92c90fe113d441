#include "eval/fid_inception.h"

#include <torch/torch.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "common/logging.h"
#include "common/state_dict_file.h"
#include "eval/content_hash.h"
#include "eval/image_resize.h"

namespace difffit {
namespace {

using Pair = std::array<int64_t, 2>;

// conv (no bias) + BatchNorm (eps 1e-3, the TF port's value) + ReLU.
struct BasicConv2dImpl : torch::nn::Module {
  BasicConv2dImpl(int64_t in, int64_t out, Pair kernel, Pair stride = {1, 1}, Pair padding = {0, 0}) {
    conv = register_module(
        "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, torch::ExpandingArray<2>({kernel[0], kernel[1]}))
                                      .stride(torch::ExpandingArray<2>({stride[0], stride[1]}))
                                      .padding(torch::ExpandingArray<2>({padding[0], padding[1]}))
                                      .bias(false)));
    bn = register_module("bn", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).eps(0.001)));
  }
  torch::Tensor forward(const torch::Tensor& x) { return torch::relu(bn->forward(conv->forward(x))); }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(BasicConv2d);

// The FID blocks' average pool: padding is not counted (count_include_pad=False).
torch::Tensor fid_avg_pool(const torch::Tensor& x) { return at::avg_pool2d(x, {3, 3}, {1, 1}, {1, 1}, false, false); }

struct BlockBase : torch::nn::Module {
  BasicConv2d conv(const std::string& name, int64_t in, int64_t out, Pair k, Pair s = {1, 1}, Pair p = {0, 0}) {
    return register_module(name, BasicConv2d(std::make_shared<BasicConv2dImpl>(in, out, k, s, p)));
  }
};

struct InceptionAImpl : BlockBase {  // pytorch-fid FIDInceptionA
  InceptionAImpl(int64_t in, int64_t pool_features) {
    b1 = conv("branch1x1", in, 64, {1, 1});
    b5_1 = conv("branch5x5_1", in, 48, {1, 1});
    b5_2 = conv("branch5x5_2", 48, 64, {5, 5}, {1, 1}, {2, 2});
    b3_1 = conv("branch3x3dbl_1", in, 64, {1, 1});
    b3_2 = conv("branch3x3dbl_2", 64, 96, {3, 3}, {1, 1}, {1, 1});
    b3_3 = conv("branch3x3dbl_3", 96, 96, {3, 3}, {1, 1}, {1, 1});
    bp = conv("branch_pool", in, pool_features, {1, 1});
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat({b1(x), b5_2(b5_1(x)), b3_3(b3_2(b3_1(x))), bp(fid_avg_pool(x))}, 1);
  }
  BasicConv2d b1{nullptr}, b5_1{nullptr}, b5_2{nullptr}, b3_1{nullptr}, b3_2{nullptr}, b3_3{nullptr}, bp{nullptr};
};
TORCH_MODULE(InceptionA);

struct InceptionBImpl : BlockBase {  // torchvision InceptionB (unchanged in pytorch-fid)
  explicit InceptionBImpl(int64_t in) {
    b3 = conv("branch3x3", in, 384, {3, 3}, {2, 2});
    bd_1 = conv("branch3x3dbl_1", in, 64, {1, 1});
    bd_2 = conv("branch3x3dbl_2", 64, 96, {3, 3}, {1, 1}, {1, 1});
    bd_3 = conv("branch3x3dbl_3", 96, 96, {3, 3}, {2, 2});
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat({b3(x), bd_3(bd_2(bd_1(x))), at::max_pool2d(x, {3, 3}, {2, 2})}, 1);
  }
  BasicConv2d b3{nullptr}, bd_1{nullptr}, bd_2{nullptr}, bd_3{nullptr};
};
TORCH_MODULE(InceptionB);

struct InceptionCImpl : BlockBase {  // pytorch-fid FIDInceptionC
  InceptionCImpl(int64_t in, int64_t c7) {
    b1 = conv("branch1x1", in, 192, {1, 1});
    b7_1 = conv("branch7x7_1", in, c7, {1, 1});
    b7_2 = conv("branch7x7_2", c7, c7, {1, 7}, {1, 1}, {0, 3});
    b7_3 = conv("branch7x7_3", c7, 192, {7, 1}, {1, 1}, {3, 0});
    bd_1 = conv("branch7x7dbl_1", in, c7, {1, 1});
    bd_2 = conv("branch7x7dbl_2", c7, c7, {7, 1}, {1, 1}, {3, 0});
    bd_3 = conv("branch7x7dbl_3", c7, c7, {1, 7}, {1, 1}, {0, 3});
    bd_4 = conv("branch7x7dbl_4", c7, c7, {7, 1}, {1, 1}, {3, 0});
    bd_5 = conv("branch7x7dbl_5", c7, 192, {1, 7}, {1, 1}, {0, 3});
    bp = conv("branch_pool", in, 192, {1, 1});
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat({b1(x), b7_3(b7_2(b7_1(x))), bd_5(bd_4(bd_3(bd_2(bd_1(x))))), bp(fid_avg_pool(x))}, 1);
  }
  BasicConv2d b1{nullptr}, b7_1{nullptr}, b7_2{nullptr}, b7_3{nullptr}, bd_1{nullptr}, bd_2{nullptr}, bd_3{nullptr},
      bd_4{nullptr}, bd_5{nullptr}, bp{nullptr};
};
TORCH_MODULE(InceptionC);

struct InceptionDImpl : BlockBase {  // torchvision InceptionD (unchanged in pytorch-fid)
  explicit InceptionDImpl(int64_t in) {
    b3_1 = conv("branch3x3_1", in, 192, {1, 1});
    b3_2 = conv("branch3x3_2", 192, 320, {3, 3}, {2, 2});
    b7_1 = conv("branch7x7x3_1", in, 192, {1, 1});
    b7_2 = conv("branch7x7x3_2", 192, 192, {1, 7}, {1, 1}, {0, 3});
    b7_3 = conv("branch7x7x3_3", 192, 192, {7, 1}, {1, 1}, {3, 0});
    b7_4 = conv("branch7x7x3_4", 192, 192, {3, 3}, {2, 2});
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat({b3_2(b3_1(x)), b7_4(b7_3(b7_2(b7_1(x)))), at::max_pool2d(x, {3, 3}, {2, 2})}, 1);
  }
  BasicConv2d b3_1{nullptr}, b3_2{nullptr}, b7_1{nullptr}, b7_2{nullptr}, b7_3{nullptr}, b7_4{nullptr};
};
TORCH_MODULE(InceptionD);

struct InceptionEImpl : BlockBase {  // pytorch-fid FIDInceptionE_1 (avg pool) / FIDInceptionE_2 (max pool)
  InceptionEImpl(int64_t in, bool max_pool) : max_pool_(max_pool) {
    b1 = conv("branch1x1", in, 320, {1, 1});
    b3_1 = conv("branch3x3_1", in, 384, {1, 1});
    b3_2a = conv("branch3x3_2a", 384, 384, {1, 3}, {1, 1}, {0, 1});
    b3_2b = conv("branch3x3_2b", 384, 384, {3, 1}, {1, 1}, {1, 0});
    bd_1 = conv("branch3x3dbl_1", in, 448, {1, 1});
    bd_2 = conv("branch3x3dbl_2", 448, 384, {3, 3}, {1, 1}, {1, 1});
    bd_3a = conv("branch3x3dbl_3a", 384, 384, {1, 3}, {1, 1}, {0, 1});
    bd_3b = conv("branch3x3dbl_3b", 384, 384, {3, 1}, {1, 1}, {1, 0});
    bp = conv("branch_pool", in, 192, {1, 1});
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const torch::Tensor t3 = b3_1(x);
    const torch::Tensor td = bd_2(bd_1(x));
    // Mixed_7c's MAX pool is a quirk of the TF graph that the FID weights expect.
    const torch::Tensor pooled = max_pool_ ? at::max_pool2d(x, {3, 3}, {1, 1}, {1, 1}) : fid_avg_pool(x);
    return torch::cat({b1(x), torch::cat({b3_2a(t3), b3_2b(t3)}, 1), torch::cat({bd_3a(td), bd_3b(td)}, 1),
                       bp(pooled)},
                      1);
  }
  bool max_pool_;
  BasicConv2d b1{nullptr}, b3_1{nullptr}, b3_2a{nullptr}, b3_2b{nullptr}, bd_1{nullptr}, bd_2{nullptr},
      bd_3a{nullptr}, bd_3b{nullptr}, bp{nullptr};
};
TORCH_MODULE(InceptionE);

struct FidInceptionNetImpl : BlockBase {
  FidInceptionNetImpl() {
    c1a = conv("Conv2d_1a_3x3", 3, 32, {3, 3}, {2, 2});
    c2a = conv("Conv2d_2a_3x3", 32, 32, {3, 3});
    c2b = conv("Conv2d_2b_3x3", 32, 64, {3, 3}, {1, 1}, {1, 1});
    c3b = conv("Conv2d_3b_1x1", 64, 80, {1, 1});
    c4a = conv("Conv2d_4a_3x3", 80, 192, {3, 3});
    m5b = register_module("Mixed_5b", InceptionA(192, 32));
    m5c = register_module("Mixed_5c", InceptionA(256, 64));
    m5d = register_module("Mixed_5d", InceptionA(288, 64));
    m6a = register_module("Mixed_6a", InceptionB(288));
    m6b = register_module("Mixed_6b", InceptionC(768, 128));
    m6c = register_module("Mixed_6c", InceptionC(768, 160));
    m6d = register_module("Mixed_6d", InceptionC(768, 160));
    m6e = register_module("Mixed_6e", InceptionC(768, 192));
    m7a = register_module("Mixed_7a", InceptionD(768));
    m7b = register_module("Mixed_7b", InceptionE(1280, false));
    m7c = register_module("Mixed_7c", InceptionE(2048, true));
    fc = register_module("fc", torch::nn::Linear(2048, 1008));  // IS logits: the weight only, as ADM
  }
  // x: (N, 3, 299, 299) in [-1, 1] -> pool3 (N, 2048), and the ADM evaluator's sFID
  // tensor: the TF graph's "mixed_6/conv" is the ReLU output of Mixed_6d's 1x1 branch
  // (mixed, mixed_1, ... are Mixed_5b, 5c, ...); ADM keeps its first 7 channels, flattened
  // in TF's (H, W, C) order: (N, 17 * 17 * 7).
  std::pair<torch::Tensor, torch::Tensor> forward(torch::Tensor x) {
    x = c2b(c2a(c1a(x)));
    x = at::max_pool2d(x, {3, 3}, {2, 2});
    x = c4a(c3b(x));
    x = at::max_pool2d(x, {3, 3}, {2, 2});
    x = m6c(m6b(m6a(m5d(m5c(m5b(x))))));
    torch::Tensor spatial = m6d->b1(x).narrow(1, 0, 7).permute({0, 2, 3, 1}).flatten(1);
    x = m6e(m6d(x));
    x = m7c(m7b(m7a(x)));
    return {at::adaptive_avg_pool2d(x, {1, 1}).flatten(1), spatial};
  }
  BasicConv2d c1a{nullptr}, c2a{nullptr}, c2b{nullptr}, c3b{nullptr}, c4a{nullptr};
  InceptionA m5b{nullptr}, m5c{nullptr}, m5d{nullptr};
  InceptionB m6a{nullptr};
  InceptionC m6b{nullptr}, m6c{nullptr}, m6d{nullptr}, m6e{nullptr};
  InceptionD m7a{nullptr};
  InceptionE m7b{nullptr}, m7c{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(FidInceptionNet);

bool ignored_key(const std::string& key) {
  const std::string suffix = "num_batches_tracked";
  return key.size() >= suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string resolve_inception_weights(const std::string& option, const std::string& option_name) {
  std::string path = option;
  const char* env = std::getenv(kInceptionWeightsEnv);
  if (path.empty() && env != nullptr) path = env;
  const std::string how =
      " Give the file with " + option_name + " or set " + std::string(kInceptionWeightsEnv) +
      " to pytorch-fid's pt_inception-2015-12-05-6726825d.pth (or a safetensors copy of it). "
      "No other network's score is reported as Inception FID; the mini benchmark's own metric is "
      "--feature-net mini-cnn.";
  if (path.empty()) throw_data("FID Inception weights are not available." + how);
  if (!std::filesystem::exists(path))
    throw_data("FID Inception weights file '" + path + "' does not exist (from " +
               (option.empty() ? std::string(kInceptionWeightsEnv) : option_name) + ")." + how);
  return path;
}

struct FidInceptionV3::Impl {
  FidInceptionNet net;
  torch::Device device = torch::kCPU;
};

FidInceptionV3::FidInceptionV3() : impl_(std::make_unique<Impl>()) { impl_->net->eval(); }
FidInceptionV3::~FidInceptionV3() = default;

std::vector<std::string> FidInceptionV3::state_dict_keys() const {
  std::vector<std::string> keys;
  for (const auto& p : impl_->net->named_parameters(true))
    if (p.value().defined()) keys.push_back(p.key());
  for (const auto& b : impl_->net->named_buffers(true))
    if (b.value().defined() && !ignored_key(b.key())) keys.push_back(b.key());
  return keys;
}

WeightLoadReport FidInceptionV3::load_weights(const StateDict& weights, bool strict) {
  torch::NoGradGuard no_grad;
  WeightLoadReport report;
  std::set<std::string> used;
  auto assign = [&](const std::string& key, torch::Tensor& target) {
    const auto it = weights.find(key);
    if (it == weights.end()) {
      report.missing.push_back(key);
      return;
    }
    if (!it->second.sizes().equals(target.sizes()))
      throw_data("FID Inception weights: '" + key + "' has shape " + c10::str(it->second.sizes()) + ", expected " +
                 c10::str(target.sizes()));
    target.copy_(it->second.to(target.dtype()));
    used.insert(key);
  };
  for (auto& p : impl_->net->named_parameters(true))
    if (p.value().defined()) assign(p.key(), p.value());
  for (auto& b : impl_->net->named_buffers(true))
    if (b.value().defined() && !ignored_key(b.key())) assign(b.key(), b.value());
  for (const auto& kv : weights)
    if (!used.count(kv.first) && !ignored_key(kv.first)) report.unexpected.push_back(kv.first);
  if (strict && (!report.missing.empty() || !report.unexpected.empty())) {
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (size_t i = 0; i < v.size() && i < 10; ++i) s += (i ? ", " : "") + v[i];
      if (v.size() > 10) s += ", ... (" + std::to_string(v.size() - 10) + " more)";
      return s.empty() ? std::string("none") : s;
    };
    throw_data("FID Inception weights do not match the network: missing " + list(report.missing) +
               "; unexpected " + list(report.unexpected));
  }
  return report;
}

void FidInceptionV3::to_device(c10::Device device) {
  impl_->device = device;
  if (impl_->device.is_cuda()) {
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
  }
  impl_->net->to(impl_->device);
}

NetworkOutputs FidInceptionV3::outputs_normalized(const at::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 3 || x.size(2) != 299 || x.size(3) != 299)
    throw_data("FID Inception: expected (N, 3, 299, 299), got " + c10::str(x.sizes()));
  torch::NoGradGuard no_grad;
  auto [pool, spatial] = impl_->net->forward(x.to(impl_->device, at::kFloat));
  NetworkOutputs out;
  // The ADM evaluator's softmax input: pool3 times the logits weight, without the bias.
  out.logits = at::mm(pool, impl_->net->fc->weight.t()).to(at::kCPU);
  out.pool = pool.to(at::kCPU);
  out.spatial = spatial.to(at::kCPU);
  return out;
}

NetworkOutputs FidInceptionV3::outputs(const at::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 3) throw_data("FID Inception: expected (N, 3, H, W), got " + c10::str(x.sizes()));
  torch::NoGradGuard no_grad;
  at::Tensor y = x.to(impl_->device, at::kFloat);
  y = at::upsample_bilinear2d(y, {299, 299}, /*align_corners=*/false);
  return outputs_normalized(2.0 * y - 1.0);
}

at::Tensor FidInceptionV3::pool3_normalized(const at::Tensor& x) { return outputs_normalized(x).pool; }
at::Tensor FidInceptionV3::pool3(const at::Tensor& x) { return outputs(x).pool; }

InceptionFeatureNet::InceptionFeatureNet(const std::string& weights_path, ResizeMode resize, c10::Device device)
    : resize_(resize) {
  net_.load_weights(load_state_dict_file(weights_path), /*strict=*/true);
  net_.to_device(device);
  id_ = "inception-v3-fid/" + hash_file(weights_path) + "/" + resize_mode_name(resize);
  log()->info("[eval] FID InceptionV3 loaded from {} (resize {})", weights_path, resize_mode_name(resize));
}

InceptionFeatureNet::~InceptionFeatureNet() = default;

NetworkOutputs InceptionFeatureNet::outputs(const at::Tensor& images) {
  if (images.dim() != 4 || (images.size(3) != 1 && images.size(3) != 3))
    throw_data("FID Inception: images must be uint8 (N, H, W, C) with C = 1 or 3, got " + c10::str(images.sizes()));
  // Grey images become RGB by repeating the channel (PIL's convert('RGB')).
  at::Tensor x = images.permute({0, 3, 1, 2}).to(at::kFloat);
  if (x.size(1) == 1) x = x.expand({-1, 3, -1, -1});
  if (resize_ == ResizeMode::Clean) {
    x = resize_pil_bicubic(x, 299, 299).clamp(0.0, 255.0) / 255.0f;
    return net_.outputs_normalized(2.0 * x - 1.0);
  }
  return net_.outputs(x / 255.0f);
}

}  // namespace difffit
