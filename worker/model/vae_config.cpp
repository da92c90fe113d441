#include "worker/model/vae_config.h"

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/input_file.h"

namespace difffit {
namespace {

bool has(const StateDict& state, const std::string& key) { return state.count(key) > 0; }

int64_t dim_of(const StateDict& state, const std::string& key, int64_t d) { return state.at(key).size(d); }

// Number of consecutive indices i with prefix + i + suffix present.
int64_t count_indexed(const StateDict& state, const std::string& prefix, const std::string& suffix) {
  int64_t n = 0;
  while (has(state, prefix + std::to_string(n) + suffix)) ++n;
  return n;
}

}  // namespace

void VaeConfig::validate() const {
  auto bad = [](const std::string& field, const std::string& why) { throw_usage("VAE config: " + field + ": " + why); };
  if (in_channels < 1) bad("in_channels", "must be at least 1");
  if (out_channels < 1) bad("out_channels", "must be at least 1");
  if (latent_channels < 1) bad("latent_channels", "must be at least 1");
  if (block_out_channels.empty()) bad("block_out_channels", "needs at least one block");
  if (block_out_channels.size() > 8) bad("block_out_channels", "more than 8 blocks");
  if (layers_per_block < 1) bad("layers_per_block", "must be at least 1");
  if (norm_num_groups < 1) bad("norm_num_groups", "must be at least 1");
  for (int64_t c : block_out_channels) {
    if (c < 1 || c % norm_num_groups != 0) {
      bad("norm_num_groups", std::to_string(norm_num_groups) + " groups do not divide block channels " +
                                 std::to_string(c) +
                                 " (the group count is not in the weights: put the diffusers config.json beside them)");
    }
  }
  if (!(scaling_factor > 0)) bad("scaling_factor", "must be positive");
}

std::string VaeConfig::describe() const {
  std::ostringstream out;
  out << "AutoencoderKL channels (";
  for (size_t i = 0; i < block_out_channels.size(); ++i) out << (i ? "," : "") << block_out_channels[i];
  char scale[32];
  std::snprintf(scale, sizeof scale, "%.9g", scaling_factor);
  out << ") x" << layers_per_block << ", groups " << norm_num_groups << ", in " << in_channels << ", out "
      << out_channels << ", z " << latent_channels << ", scale " << scale;
  if (!mid_block_attention) out << ", no mid attention";
  if (!use_quant_conv) out << ", no quant_conv";
  if (!use_post_quant_conv) out << ", no post_quant_conv";
  return out.str();
}

bool VaeConfig::same_shapes(const VaeConfig& o) const {
  return in_channels == o.in_channels && out_channels == o.out_channels && latent_channels == o.latent_channels &&
         block_out_channels == o.block_out_channels && layers_per_block == o.layers_per_block &&
         mid_block_attention == o.mid_block_attention && use_quant_conv == o.use_quant_conv &&
         use_post_quant_conv == o.use_post_quant_conv;
}

VaeConfig VaeConfig::stable_diffusion() { return VaeConfig{}; }

VaeConfig VaeConfig::tiny() {
  VaeConfig c;
  c.block_out_channels = {16, 32, 32, 32};
  c.layers_per_block = 1;
  c.norm_num_groups = 8;
  return c;
}

void read_diffusers_vae_config(const std::string& path, VaeConfig& config) {
  const std::string text = read_input_file(path, "a JSON config file", kJsonFileLimit);
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw_data(path + ": not a readable config.json (" + std::string(e.what()) + ")");
  }
  if (!root.is_object()) throw_data(path + ": expected a JSON object");
  auto field = [&](const char* key, auto& out) {
    const auto it = root.find(key);
    if (it == root.end() || it->is_null()) return;
    try {
      out = it->get<std::decay_t<decltype(out)>>();
    } catch (const nlohmann::json::exception&) {
      throw_data(path + ": " + key + ": unexpected value " + it->dump());
    }
  };
  std::string class_name;
  field("_class_name", class_name);
  if (!class_name.empty() && class_name != "AutoencoderKL") {
    throw_data(path + ": _class_name is " + class_name + ", expected AutoencoderKL");
  }
  field("in_channels", config.in_channels);
  field("out_channels", config.out_channels);
  field("latent_channels", config.latent_channels);
  field("block_out_channels", config.block_out_channels);
  field("layers_per_block", config.layers_per_block);
  field("norm_num_groups", config.norm_num_groups);
  field("scaling_factor", config.scaling_factor);
  field("use_quant_conv", config.use_quant_conv);
  field("use_post_quant_conv", config.use_post_quant_conv);
  field("mid_block_add_attention", config.mid_block_attention);
}

VaeConfig infer_vae_config(const StateDict& state, const VaeConfig& base, const std::string& source) {
  VaeConfig c = base;
  const int64_t down = count_indexed(state, "encoder.down_blocks.", ".resnets.0.conv1.weight");
  const int64_t up = count_indexed(state, "decoder.up_blocks.", ".resnets.0.conv1.weight");
  if (down == 0 && up == 0) {
    throw_data(source + ": not an AutoencoderKL state dict (no encoder.down_blocks.0.resnets.0.conv1.weight or "
                        "decoder.up_blocks.0.resnets.0.conv1.weight; expected diffusers key names)");
  }
  c.block_out_channels.clear();
  if (down > 0) {
    for (int64_t i = 0; i < down; ++i) {
      c.block_out_channels.push_back(
          dim_of(state, "encoder.down_blocks." + std::to_string(i) + ".resnets.0.conv1.weight", 0));
    }
    c.layers_per_block = count_indexed(state, "encoder.down_blocks.0.resnets.", ".conv1.weight");
  } else {
    for (int64_t i = up - 1; i >= 0; --i) {
      c.block_out_channels.push_back(
          dim_of(state, "decoder.up_blocks." + std::to_string(i) + ".resnets.0.conv1.weight", 0));
    }
    c.layers_per_block = count_indexed(state, "decoder.up_blocks.0.resnets.", ".conv1.weight") - 1;
  }
  if (has(state, "encoder.conv_in.weight")) c.in_channels = dim_of(state, "encoder.conv_in.weight", 1);
  if (has(state, "decoder.conv_out.weight")) c.out_channels = dim_of(state, "decoder.conv_out.weight", 0);
  if (has(state, "decoder.conv_in.weight")) {
    c.latent_channels = dim_of(state, "decoder.conv_in.weight", 1);
  } else if (has(state, "encoder.conv_out.weight")) {
    c.latent_channels = dim_of(state, "encoder.conv_out.weight", 0) / 2;
  }
  c.use_quant_conv = has(state, "quant_conv.weight");
  c.use_post_quant_conv = has(state, "post_quant_conv.weight");
  c.mid_block_attention = has(state, "encoder.mid_block.attentions.0.group_norm.weight") ||
                          has(state, "decoder.mid_block.attentions.0.group_norm.weight");
  return c;
}

}  // namespace difffit
