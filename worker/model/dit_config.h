// The DiT architecture: everything that fixes the shapes of the weights. Saved with
// every checkpoint and delta; kept apart from run settings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace difffit {

class YamlSection;

struct DiTConfig {
  int64_t input_size = 32;           // latent side in pixels of the model space (image/8 with the SD VAE)
  int64_t patch_size = 2;            // p: tokens are p x p patches
  int64_t in_channels = 4;           // latent channels (4 for the SD VAE, 1 or 3 in pixel space)
  int64_t hidden_size = 1152;        // D
  int64_t depth = 28;                // number of blocks
  int64_t num_heads = 16;            // attention heads (must divide D)
  double mlp_ratio = 4.0;            // MLP hidden = mlp_ratio * D
  double class_dropout_prob = 0.1;   // label dropout for CFG; > 0 adds the null-class row
  int64_t num_classes = 1000;        // real classes (the table gets one more row for the null class)
  bool learn_sigma = true;           // predict the variance too: out_channels = 2 * in_channels
  double pos_embed_scale = 1.0;      // sin-cos coordinate scale (G_old/G_new aligns a larger grid)

  int64_t out_channels() const { return learn_sigma ? 2 * in_channels : in_channels; }
  int64_t grid_size() const { return input_size / patch_size; }
  int64_t num_tokens() const { return grid_size() * grid_size(); }
  int64_t mlp_hidden() const { return static_cast<int64_t>(hidden_size * mlp_ratio); }
  int64_t class_table_rows() const { return num_classes + (class_dropout_prob > 0 ? 1 : 0); }
  bool pixel_space() const { return in_channels == 1 || in_channels == 3; }  // else latents (a VAE's)

  // Throws a usage error naming the bad field.
  void validate() const;
  // "depth=28;hidden_size=1152;..." — canonical, parsed back by from_key_values.
  std::string to_key_values() const;
  static DiTConfig from_key_values(const std::string& text);
  std::string describe() const;  // one human-readable line
  // Two configs whose weights have identical shapes.
  bool same_shapes(const DiTConfig& other) const;
};

// Presets "DiT-S/2" ... "DiT-XL/8" (depth, hidden, heads from the reference).
DiTConfig dit_preset(const std::string& name);
std::vector<std::string> dit_preset_names();

// Reads a `model:` YAML section: `name` (a preset or "custom") plus any field above.
DiTConfig parse_dit_config(const YamlSection& section);

}  // namespace difffit
