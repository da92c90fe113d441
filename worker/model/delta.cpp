#include "worker/model/delta.h"

#include <ATen/ATen.h>

#include <set>

#include "common/error.h"
#include "common/safetensors.h"
#include "worker/model/checkpoint_loader.h"
#include "worker/model/peft_method.h"

namespace difffit {
namespace {

const char* kFormat = "difffit.delta.v1";

std::string required(const TensorFileMetadata& metadata, const std::string& key, const std::string& path) {
  auto it = metadata.find(key);
  if (it == metadata.end()) throw_data(path + ": not a difffit delta (metadata '" + key + "' missing)");
  return it->second;
}

// Scales the rows (output features) of a weight and its bias.
void scale_rows(at::Tensor& weight, at::Tensor& bias, const at::Tensor& gamma) {
  std::vector<int64_t> shape(weight.dim(), 1);
  shape[0] = gamma.size(0);
  weight = weight * gamma.reshape(shape);
  bias = bias * gamma;
}

}  // namespace

void save_delta(const std::string& path, const DiTImpl& model, const MethodConfig& method,
                const TensorFileMetadata& extra) {
  StateDict tensors;
  for (const auto& item : model.named_parameters()) {
    if (item.value().requires_grad()) tensors[item.key()] = item.value().detach();
  }
  if (tensors.empty()) throw_usage("save_delta: the model has no trainable tensors (apply a method first)");
  TensorFileMetadata metadata = extra;
  metadata["format"] = kFormat;
  metadata["model"] = model.config().to_key_values();
  metadata["method"] = method.name();
  metadata["method_options"] = method.to_options_string();
  save_safetensors(path, tensors, metadata);
}

DeltaInfo read_delta_info(const std::string& path) {
  DeltaInfo info;
  load_safetensors(path, &info.metadata);
  if (required(info.metadata, "format", path) != kFormat) {
    throw_data(path + ": unsupported delta format '" + info.metadata["format"] + "'");
  }
  try {
    info.model = DiTConfig::from_key_values(required(info.metadata, "model", path));
    info.method = method_config_from_string(required(info.metadata, "method", path),
                                            required(info.metadata, "method_options", path));
  } catch (const Error& e) {
    if (std::string(e.what()).rfind(path, 0) == 0) throw;  // already names the file
    throw Error(ErrorKind::Data, path + ": metadata: " + e.what());
  }
  return info;
}

DeltaInfo load_delta(const std::string& path, DiTImpl& model) {
  DeltaInfo info;
  StateDict tensors = load_safetensors(path, &info.metadata);
  DeltaInfo parsed = read_delta_info(path);
  info.model = parsed.model;
  info.method = parsed.method;
  if (!info.model.same_shapes(model.config())) {
    throw_data(path + ": delta was made for " + info.model.describe() + ", but the model is " +
               model.config().describe());
  }
  apply_method(model, info.method);
  std::vector<std::string> missing, unexpected, mismatched;
  std::set<std::string> trainable;
  torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    if (!item.value().requires_grad()) continue;
    trainable.insert(item.key());
    auto it = tensors.find(item.key());
    if (it == tensors.end()) {
      missing.push_back(item.key());
    } else if (!it->second.sizes().equals(item.value().sizes())) {
      mismatched.push_back(item.key() + " " + c10::str(it->second.sizes()) + " vs " +
                           c10::str(item.value().sizes()));
    } else if (!at::isFloatingType(it->second.scalar_type())) {  // copy_ would convert it silently
      mismatched.push_back(item.key() + " holds " + std::string(c10::toString(it->second.scalar_type())) +
                           ", not floating point");
    } else if (!at::isfinite(it->second).all().item<bool>()) {  // would sample NaN images, merge a NaN model
      mismatched.push_back(item.key() + " holds NaN or infinite values");
    } else {
      item.value().copy_(it->second);
    }
  }
  for (const auto& [name, tensor] : tensors) {
    if (!trainable.count(name)) unexpected.push_back(name);
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string message = path + ": delta does not match method '" + info.method.name() + "'";
    for (const auto& m : missing) message += "\n  missing: " + m;
    for (const auto& u : unexpected) message += "\n  unexpected: " + u;
    for (const auto& m : mismatched) message += "\n  wrong shape, type or values: " + m;
    throw_data(message);
  }
  return info;
}

StateDict merge_to_plain_state_dict(const DiTImpl& model) {
  torch::NoGradGuard no_grad;
  for (const auto& block : model.block_list) {
    if (block->prompts.defined() || !block->adapter.is_empty()) {
      throw_usage("merge: VPT prompts and AdaptFormer adapters are not linear in the weights and "
                  "cannot be folded into a plain DiT; keep the delta and load it on the base model");
    }
  }
  StateDict state = dit_reference_state_dict(model);
  for (auto& [name, tensor] : state) tensor = tensor.clone();
  for (const auto& [prefix, layer] : model.linear_layers()) {
    auto [weight, bias] = layer->merged_weight_and_bias();
    state[prefix + ".weight"] = weight;
    state[prefix + ".bias"] = bias;
  }
  // Block gammas scale the gated branch output, i.e. the rows of attn.proj and mlp.fc2.
  for (size_t i = 0; i < model.block_list.size(); ++i) {
    const auto& block = model.block_list[i];
    if (!block->gamma1.defined()) continue;
    const std::string prefix = "blocks." + std::to_string(i) + ".";
    scale_rows(state[prefix + "attn.proj.weight"], state[prefix + "attn.proj.bias"], block->gamma1.detach());
    scale_rows(state[prefix + "mlp.fc2.weight"], state[prefix + "mlp.fc2.bias"], block->gamma2.detach());
  }
  if (model.x_embedder->gamma.defined()) {
    scale_rows(state["x_embedder.proj.weight"], state["x_embedder.proj.bias"],
               model.x_embedder->gamma.detach());
  }
  return state;
}

}  // namespace difffit
