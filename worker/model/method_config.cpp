#include "worker/model/method_config.h"

#include <cmath>
#include <sstream>

#include "common/error.h"
#include "common/number_format.h"
#include "common/yaml_fields.h"

namespace difffit {
namespace {

const std::vector<std::pair<MethodKind, std::string>>& kind_names() {
  static const std::vector<std::pair<MethodKind, std::string>> names = {
      {MethodKind::Full, "full"},       {MethodKind::BitFit, "bitfit"},
      {MethodKind::DiffFit, "difffit"}, {MethodKind::LoRA, "lora"},
      {MethodKind::VptDeep, "vpt-deep"}, {MethodKind::AdaptFormer, "adaptformer"}};
  return names;
}

const std::vector<std::pair<GammaSite, std::string>>& site_names() {
  static const std::vector<std::pair<GammaSite, std::string>> names = {
      {GammaSite::Branches, "branches"},      {GammaSite::Qkv, "qkv"},
      {GammaSite::Proj, "proj"},              {GammaSite::PatchEmbed, "patch_embed"},
      {GammaSite::TimeEmbed, "time_embed"},   {GammaSite::FinalLayer, "final_layer"}};
  return names;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, separator)) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

std::string join(const std::vector<std::string>& parts, const char* separator) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : separator) + p;
  return out;
}

// Options each method accepts, besides the common lr_mult and train_class_table.
std::set<std::string> method_options(MethodKind kind) {
  switch (kind) {
    case MethodKind::Full: return {"lr_mult"};
    case MethodKind::BitFit: return {"lr_mult", "train_class_table"};
    case MethodKind::DiffFit:
      return {"lr_mult", "train_class_table", "blocks", "sites", "gamma_lr_mult", "train_bias"};
    case MethodKind::LoRA: return {"lr_mult", "train_class_table", "blocks", "rank", "alpha", "targets"};
    case MethodKind::VptDeep: return {"lr_mult", "train_class_table", "blocks", "prompts"};
    case MethodKind::AdaptFormer:
      return {"lr_mult", "train_class_table", "blocks", "mode", "bottleneck", "scale"};
  }
  return {};
}

double to_double(const std::string& key, const std::string& value) {
  try {
    size_t used = 0;
    double v = std::stod(value, &used);
    if (used == value.size() && std::isfinite(v)) return v;
  } catch (const std::logic_error&) {
  }
  throw_usage("method option '" + key + "': expected a finite number, got '" + value + "'");
}

int64_t to_int(const std::string& key, const std::string& value) {
  try {
    size_t used = 0;
    int64_t v = std::stoll(value, &used);
    if (used == value.size()) return v;
  } catch (const std::logic_error&) {
  }
  throw_usage("method option '" + key + "': expected an integer, got '" + value + "'");
}

bool to_bool(const std::string& key, const std::string& value) {
  if (value == "true" || value == "1") return true;
  if (value == "false" || value == "0") return false;
  throw_usage("method option '" + key + "': expected true or false, got '" + value + "'");
}

std::string format_double(double v) { return shortest_double(v); }

void apply_option(MethodConfig& config, bool& alpha_given, const std::string& key, const std::string& value) {
  const auto allowed = method_options(config.kind);
  if (!allowed.count(key)) {
    throw_usage("method '" + config.name() + "' has no option '" + key + "' (options: " +
                join(std::vector<std::string>(allowed.begin(), allowed.end()), ", ") + ")");
  }
  if (key == "lr_mult") config.lr_mult = to_double(key, value);
  else if (key == "train_class_table") config.train_class_table = to_bool(key, value);
  else if (key == "blocks") config.blocks.spec = value;
  else if (key == "gamma_lr_mult") config.gamma_lr_mult = to_double(key, value);
  else if (key == "train_bias") config.train_bias = to_bool(key, value);
  else if (key == "rank") config.lora_rank = to_int(key, value);
  else if (key == "alpha") { config.lora_alpha = to_double(key, value); alpha_given = true; }
  else if (key == "prompts") config.vpt_prompts = to_int(key, value);
  else if (key == "bottleneck") config.adapter_bottleneck = to_int(key, value);
  else if (key == "scale") config.adapter_scale = to_double(key, value);
  else if (key == "mode") {
    if (value == "parallel") config.adapter_mode = AdapterMode::Parallel;
    else if (value == "sequential") config.adapter_mode = AdapterMode::Sequential;
    else throw_usage("method option 'mode': expected parallel or sequential, got '" + value + "'");
  } else if (key == "targets") {
    config.lora_targets = split(value, ',');
    for (const auto& target : config.lora_targets) {
      static const std::set<std::string> known = {"qkv", "proj", "fc1", "fc2", "adaLN"};
      if (!known.count(target)) {
        throw_usage("method option 'targets': unknown layer '" + target + "' (qkv, proj, fc1, fc2, adaLN)");
      }
    }
  } else if (key == "sites") {
    config.gamma_sites.clear();
    for (const auto& site : split(value, ',')) {
      bool found = false;
      for (const auto& [kind, name] : site_names()) {
        if (name == site) {
          config.gamma_sites.insert(kind);
          found = true;
        }
      }
      if (!found) {
        throw_usage("method option 'sites': unknown site '" + site +
                    "' (branches, qkv, proj, patch_embed, time_embed, final_layer)");
      }
    }
  }
}

void validate(const MethodConfig& config) {
  if (config.lr_mult <= 0 || config.gamma_lr_mult <= 0) throw_usage("method: lr multipliers must be positive");
  // Upper limits far beyond any use (a rank or width above the model's own is pointless), so
  // a typo is a usage error rather than an allocation LibTorch cannot size.
  constexpr int64_t kMaxWidth = int64_t{1} << 20;
  const std::string range = " must be in 1.." + std::to_string(kMaxWidth);
  if (config.lora_rank <= 0 || config.lora_rank > kMaxWidth) throw_usage("method option 'rank'" + range);
  if (config.vpt_prompts <= 0 || config.vpt_prompts > kMaxWidth) throw_usage("method option 'prompts'" + range);
  if (config.adapter_bottleneck <= 0 || config.adapter_bottleneck > kMaxWidth)
    throw_usage("method option 'bottleneck'" + range);
  // Syntax only; the depth is checked when applied. The forms without numbers need no
  // check (resolving them at a huge depth would build a huge list, for every config load).
  const std::string& spec = config.blocks.spec;
  if (spec != "all" && spec != "none" && spec != "first-half") config.blocks.resolve(1 << 20);
}

}  // namespace

std::vector<int64_t> BlockRange::resolve(int64_t depth) const {
  std::vector<int64_t> indices;
  auto bad = [&](const std::string& why) -> void {
    throw_usage("method option 'blocks' = '" + spec + "': " + why +
                " (all | none | first-half | first:K | last:K | list:i,j,...)");
  };
  auto count_after_colon = [&]() {
    int64_t k = to_int("blocks", spec.substr(spec.find(':') + 1));
    if (k < 0 || k > depth) bad("K must be in 0.." + std::to_string(depth));
    return k;
  };
  if (spec == "all") {
    for (int64_t i = 0; i < depth; ++i) indices.push_back(i);
  } else if (spec == "none") {
  } else if (spec == "first-half") {
    for (int64_t i = 0; i < depth / 2; ++i) indices.push_back(i);
  } else if (spec.rfind("first:", 0) == 0) {
    for (int64_t i = 0, k = count_after_colon(); i < k; ++i) indices.push_back(i);
  } else if (spec.rfind("last:", 0) == 0) {
    int64_t k = count_after_colon();
    for (int64_t i = depth - k; i < depth; ++i) indices.push_back(i);
  } else if (spec.rfind("list:", 0) == 0) {
    std::set<int64_t> seen;
    for (const auto& item : split(spec.substr(5), ',')) {
      int64_t i = to_int("blocks", item);
      if (i < 0 || i >= depth) bad("block " + item + " is outside 0.." + std::to_string(depth - 1));
      if (seen.insert(i).second) indices.push_back(i);
    }
  } else {
    bad("unknown form");
  }
  return indices;
}

std::string MethodConfig::name() const {
  for (const auto& [k, n] : kind_names()) {
    if (k == kind) return n;
  }
  return "?";
}

std::string MethodConfig::to_options_string() const {
  std::vector<std::string> items;
  auto add = [&](const std::string& key, const std::string& value) {
    if (method_options(kind).count(key)) items.push_back(key + "=" + value);
  };
  add("lr_mult", format_double(lr_mult));
  add("train_class_table", train_class_table ? "true" : "false");
  add("blocks", blocks.spec);
  std::vector<std::string> sites;
  for (const auto& [site, name] : site_names()) {
    if (gamma_sites.count(site)) sites.push_back(name);
  }
  add("sites", join(sites, ","));
  add("gamma_lr_mult", format_double(gamma_lr_mult));
  add("train_bias", train_bias ? "true" : "false");
  add("rank", std::to_string(lora_rank));
  add("alpha", format_double(lora_alpha));
  add("targets", join(lora_targets, ","));
  add("prompts", std::to_string(vpt_prompts));
  add("mode", adapter_mode == AdapterMode::Parallel ? "parallel" : "sequential");
  add("bottleneck", std::to_string(adapter_bottleneck));
  add("scale", format_double(adapter_scale));
  return join(items, ";");
}

std::vector<std::string> method_names() {
  std::vector<std::string> names;
  for (const auto& [k, n] : kind_names()) names.push_back(n);
  return names;
}

std::pair<std::string, std::string> split_option(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw_usage("method option '" + text + "': expected key=value");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

MethodConfig make_method_config(const std::string& name,
                                const std::vector<std::pair<std::string, std::string>>& options) {
  MethodConfig config;
  bool known = false;
  for (const auto& [k, n] : kind_names()) {
    if (n == name) {
      config.kind = k;
      known = true;
    }
  }
  if (!known) throw_usage("unknown method '" + name + "' (" + join(method_names(), ", ") + ")");
  // The paper's defaults: DiffFit trains with 10x lr and gamma in the first half of the blocks.
  if (config.kind == MethodKind::DiffFit) {
    config.lr_mult = 10.0;
    config.blocks.spec = "first-half";
  }
  bool alpha_given = false;
  for (const auto& [key, value] : options) apply_option(config, alpha_given, key, value);
  if (config.kind == MethodKind::LoRA && !alpha_given) config.lora_alpha = static_cast<double>(config.lora_rank);
  validate(config);
  return config;
}

MethodConfig method_config_from_string(const std::string& name, const std::string& options) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& item : split(options, ';')) pairs.push_back(split_option(item));
  return make_method_config(name, pairs);
}

MethodConfig parse_method_config(const YamlSection& section) {
  std::string name;
  section.read("name", name);
  if (name.empty()) throw_config(section.where("name") + ": missing (" + join(method_names(), ", ") + ")");
  std::vector<std::pair<std::string, std::string>> options;
  for (const auto& key : section.keys()) {
    if (key == "name") continue;
    std::string value;
    section.read(key, value);
    options.emplace_back(key, value);
  }
  try {
    return make_method_config(name, options);
  } catch (const Error& e) {
    throw_config(section.where("") + " " + e.what());
  }
}

}  // namespace difffit
