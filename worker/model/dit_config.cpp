#include "worker/model/dit_config.h"

#include <cmath>
#include <map>
#include <sstream>

#include "common/error.h"
#include "common/number_format.h"
#include "common/yaml_fields.h"

namespace difffit {
namespace {

struct PresetShape {
  int64_t depth, hidden, heads;
};

const std::map<std::string, PresetShape>& preset_shapes() {
  static const std::map<std::string, PresetShape> shapes = {
      {"S", {12, 384, 6}}, {"B", {12, 768, 12}}, {"L", {24, 1024, 16}}, {"XL", {28, 1152, 16}}};
  return shapes;
}

// Far beyond any DiT (XL/2: 4608), small enough that the width fits every integer type.
constexpr int64_t kMaxMlpWidth = int64_t{1} << 24;
// Limits far beyond any DiT (XL/2: depth 28, 256 tokens, 675M parameters) that keep a typo
// (a depth of 10^9, an input side of 2^62) a usage error instead of hours of allocation or
// an integer overflow inside LibTorch.
constexpr int64_t kMaxDepth = 1024;
constexpr int64_t kMaxSide = int64_t{1} << 16;     // input_size, patch_size, in_channels
constexpr int64_t kMaxTokens = int64_t{1} << 20;   // (input_size / patch_size)^2
constexpr int64_t kMaxClasses = int64_t{1} << 24;
constexpr double kMaxParameters = 1e11;            // 400 GB of float32

void require(bool ok, const std::string& message) {
  if (!ok) throw_usage("model config: " + message);
}

}  // namespace

void DiTConfig::validate() const {
  require(input_size > 0 && input_size <= kMaxSide, "input_size must be in 1.." + std::to_string(kMaxSide));
  require(patch_size > 0 && patch_size <= kMaxSide, "patch_size must be in 1.." + std::to_string(kMaxSide));
  require(input_size % patch_size == 0, "input_size (" + std::to_string(input_size) +
                                            ") must be divisible by patch_size (" +
                                            std::to_string(patch_size) + ")");
  require(in_channels > 0 && in_channels <= kMaxSide, "in_channels must be in 1.." + std::to_string(kMaxSide));
  require(depth > 0 && depth <= kMaxDepth, "depth must be in 1.." + std::to_string(kMaxDepth));
  require(hidden_size > 0 && hidden_size <= kMaxMlpWidth, "hidden_size must be in 1.." + std::to_string(kMaxMlpWidth));
  const int64_t grid = input_size / patch_size;
  require(grid * grid <= kMaxTokens, "input_size / patch_size gives " + std::to_string(grid) + "^2 tokens, more than " +
                                         std::to_string(kMaxTokens));
  require(num_heads > 0 && hidden_size % num_heads == 0,
          "hidden_size (" + std::to_string(hidden_size) + ") must be divisible by num_heads (" +
              std::to_string(num_heads) + ")");
  require(hidden_size % 4 == 0, "hidden_size must be divisible by 4 (2D sin-cos position embedding)");
  // Checked as a double: the width is cast to an integer (mlp_hidden).
  const double mlp_width = hidden_size * mlp_ratio;
  require(std::isfinite(mlp_width) && mlp_width >= 1 && mlp_width <= static_cast<double>(kMaxMlpWidth),
          "mlp_ratio (" + shortest_double(mlp_ratio) + ") must make the MLP 1.." + std::to_string(kMaxMlpWidth) +
              " wide (hidden_size x mlp_ratio)");
  require(num_classes > 0 && num_classes <= kMaxClasses, "num_classes must be in 1.." + std::to_string(kMaxClasses));
  // Blocks (attention 4h^2, MLP 2h*mlp, adaLN 6h^2), the class table, patch embedding and
  // final layer, in doubles: no product can overflow.
  const double h = static_cast<double>(hidden_size), patch_area = static_cast<double>(patch_size) * patch_size;
  const double parameters = static_cast<double>(depth) * (10 * h * h + 2 * h * mlp_width) +
                            static_cast<double>(num_classes + 1) * h + 3 * patch_area * in_channels * h;
  require(parameters <= kMaxParameters, "the model would hold about " + shortest_double(parameters) +
                                            " parameters, more than " + shortest_double(kMaxParameters));
  require(class_dropout_prob >= 0 && class_dropout_prob < 1, "class_dropout_prob must be in [0, 1)");
  require(std::isfinite(pos_embed_scale) && pos_embed_scale > 0, "pos_embed_scale must be a positive finite number");
}

std::string DiTConfig::to_key_values() const {
  std::ostringstream out;
  out << "input_size=" << input_size << ";patch_size=" << patch_size << ";in_channels=" << in_channels
      << ";hidden_size=" << hidden_size << ";depth=" << depth << ";num_heads=" << num_heads
      << ";mlp_ratio=" << shortest_double(mlp_ratio) << ";class_dropout_prob=" << shortest_double(class_dropout_prob)
      << ";num_classes=" << num_classes << ";learn_sigma=" << (learn_sigma ? "true" : "false")
      << ";pos_embed_scale=" << shortest_double(pos_embed_scale);
  return out.str();
}

DiTConfig DiTConfig::from_key_values(const std::string& text) {
  DiTConfig config;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ';')) {
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos) throw_data("model config string: expected key=value, got '" + item + "'");
    std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    try {
      if (key == "input_size") config.input_size = std::stoll(value);
      else if (key == "patch_size") config.patch_size = std::stoll(value);
      else if (key == "in_channels") config.in_channels = std::stoll(value);
      else if (key == "hidden_size") config.hidden_size = std::stoll(value);
      else if (key == "depth") config.depth = std::stoll(value);
      else if (key == "num_heads") config.num_heads = std::stoll(value);
      else if (key == "mlp_ratio") config.mlp_ratio = std::stod(value);
      else if (key == "class_dropout_prob") config.class_dropout_prob = std::stod(value);
      else if (key == "num_classes") config.num_classes = std::stoll(value);
      else if (key == "learn_sigma") config.learn_sigma = value == "true";
      else if (key == "pos_embed_scale") config.pos_embed_scale = std::stod(value);
      else throw_data("model config string: unknown key '" + key + "'");
    } catch (const std::logic_error&) {
      throw_data("model config string: bad value for '" + key + "': '" + value + "'");
    }
  }
  config.validate();
  return config;
}

std::string DiTConfig::describe() const {
  std::ostringstream out;
  out << "DiT depth " << depth << ", hidden " << hidden_size << ", heads " << num_heads << ", patch "
      << patch_size << ", input " << input_size << "x" << input_size << "x" << in_channels << ", "
      << num_classes << " classes" << (learn_sigma ? ", learned sigma" : "");
  return out.str();
}

bool DiTConfig::same_shapes(const DiTConfig& o) const {
  return input_size == o.input_size && patch_size == o.patch_size && in_channels == o.in_channels &&
         hidden_size == o.hidden_size && depth == o.depth && num_heads == o.num_heads &&
         mlp_hidden() == o.mlp_hidden() && class_table_rows() == o.class_table_rows() &&
         learn_sigma == o.learn_sigma;
}

DiTConfig dit_preset(const std::string& name) {
  // "DiT-XL/2": size letter(s) between "DiT-" and "/", patch after it.
  auto slash = name.find('/');
  if (name.rfind("DiT-", 0) != 0 || slash == std::string::npos) {
    throw_usage("unknown model '" + name + "' (expected a preset like DiT-XL/2, or 'custom')");
  }
  std::string size = name.substr(4, slash - 4), patch = name.substr(slash + 1);
  auto it = preset_shapes().find(size);
  if (it == preset_shapes().end() || (patch != "2" && patch != "4" && patch != "8")) {
    std::string list;
    for (const auto& n : dit_preset_names()) list += " " + n;
    throw_usage("unknown model '" + name + "'; presets:" + list);
  }
  DiTConfig config;
  config.depth = it->second.depth;
  config.hidden_size = it->second.hidden;
  config.num_heads = it->second.heads;
  config.patch_size = std::stoll(patch);
  return config;
}

std::vector<std::string> dit_preset_names() {
  std::vector<std::string> names;
  for (const char* size : {"S", "B", "L", "XL"}) {
    for (const char* patch : {"2", "4", "8"}) names.push_back(std::string("DiT-") + size + "/" + patch);
  }
  return names;
}

DiTConfig parse_dit_config(const YamlSection& section) {
  section.require_known_keys({"name", "input_size", "patch_size", "in_channels", "hidden_size", "depth",
                              "num_heads", "mlp_ratio", "class_dropout_prob", "num_classes",
                              "learn_sigma", "pos_embed_scale"});
  std::string name = "custom";
  section.read("name", name);
  DiTConfig config;
  if (name != "custom") {
    try {
      config = dit_preset(name);
    } catch (const Error& e) {
      throw_config(section.where("name") + ": " + e.what());
    }
  }
  section.read("input_size", config.input_size);
  section.read("patch_size", config.patch_size);
  section.read("in_channels", config.in_channels);
  section.read("hidden_size", config.hidden_size);
  section.read("depth", config.depth);
  section.read("num_heads", config.num_heads);
  section.read("mlp_ratio", config.mlp_ratio);
  section.read("class_dropout_prob", config.class_dropout_prob);
  section.read("num_classes", config.num_classes);
  section.read("learn_sigma", config.learn_sigma);
  section.read("pos_embed_scale", config.pos_embed_scale);
  try {
    config.validate();
  } catch (const Error& e) {
    throw_config(section.where("") + " " + e.what());
  }
  return config;
}

}  // namespace difffit
