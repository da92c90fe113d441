// Fine-tuning method settings: which method, and its options by name. Parsed from
// `--method M --option k=v` or a YAML `method:` section; saved in every delta.
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "worker/model/dit_layers.h"

namespace difffit {

class YamlSection;

enum class MethodKind { Full, BitFit, DiffFit, LoRA, VptDeep, AdaptFormer };

// Which blocks a method touches: "all", "first-half", "first:K", "last:K", "list:0,3,7".
struct BlockRange {
  std::string spec = "all";
  std::vector<int64_t> resolve(int64_t depth) const;  // validated against depth
};

// Where DiffFit puts gamma. Block sites follow the block range; the others are global.
enum class GammaSite { Branches, Qkv, Proj, PatchEmbed, TimeEmbed, FinalLayer };

struct MethodConfig {
  MethodKind kind = MethodKind::Full;
  double lr_mult = 1.0;            // lr multiplier of the method's tensors (difffit: 10, the paper's 10x)
  bool train_class_table = true;   // PEFT methods re-learn the class table (new classes)
  BlockRange blocks;               // blocks that get gamma / LoRA / prompts / adapters

  // difffit
  std::set<GammaSite> gamma_sites = {GammaSite::Branches};  // default: the two block branches
  double gamma_lr_mult = 10.0;     // lr multiplier of gamma alone
  bool train_bias = true;          // difffit trains every bias besides gamma
  // lora
  int64_t lora_rank = 8;
  double lora_alpha = 8.0;         // scale = alpha / rank
  std::vector<std::string> lora_targets = {"qkv"};  // qkv | proj | fc1 | fc2 | adaLN
  // vpt-deep
  int64_t vpt_prompts = 10;        // prompt tokens per block
  // adaptformer
  AdapterMode adapter_mode = AdapterMode::Parallel;
  int64_t adapter_bottleneck = 64;
  double adapter_scale = 0.1;

  std::string name() const;
  // Canonical "key=value;..." of every option that matters for this method.
  std::string to_options_string() const;
};

std::vector<std::string> method_names();  // full bitfit difffit lora vpt-deep adaptformer
// The paper's defaults for `name`, then each "key=value" applied in order.
MethodConfig make_method_config(const std::string& name,
                                const std::vector<std::pair<std::string, std::string>>& options = {});
// Splits "k=v" (errors name the bad option).
std::pair<std::string, std::string> split_option(const std::string& text);
// Parses the canonical string written by to_options_string().
MethodConfig method_config_from_string(const std::string& name, const std::string& options);
// YAML: `method: {name: difffit, blocks: "first:14", sites: "branches,qkv"}`.
MethodConfig parse_method_config(const YamlSection& section);

}  // namespace difffit
