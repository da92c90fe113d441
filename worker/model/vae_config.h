// The architecture of a Stable Diffusion autoencoder (diffusers' AutoencoderKL),
// everything that fixes the shapes of its weights, plus the latent scaling factor.
// Most fields can be read off a state dict's tensor shapes (infer_vae_config); the
// group count and scaling factor come from the diffusers `config.json` beside the
// weights when there is one, else from the SD defaults.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/state_dict.h"

namespace difffit {

struct VaeConfig {
  int64_t in_channels = 3;                                  // image channels in
  int64_t out_channels = 3;                                 // image channels out
  int64_t latent_channels = 4;                              // z channels (the DiT's in_channels)
  std::vector<int64_t> block_out_channels = {128, 256, 512, 512};  // one down/up block each
  int64_t layers_per_block = 2;                             // resnets per encoder block (decoder: one more)
  int64_t norm_num_groups = 32;                             // every GroupNorm
  double norm_eps = 1e-6;                                   // every GroupNorm
  bool mid_block_attention = true;                          // self-attention in both mid blocks
  bool use_quant_conv = true;                               // 1x1 conv after the encoder
  bool use_post_quant_conv = true;                          // 1x1 conv before the decoder
  double scaling_factor = 0.18215;                          // latents = sample * scaling_factor

  // Image side / latent side: 2^(blocks - 1) (8 for the SD VAE).
  int64_t downsample_factor() const { return int64_t(1) << (block_out_channels.size() - 1); }

  // Throws a usage error naming the bad field.
  void validate() const;
  std::string describe() const;  // one line: "channels (128,256,512,512) x2, groups 32, z 4, scale 0.18215"
  bool same_shapes(const VaeConfig& other) const;

  static VaeConfig stable_diffusion();  // stabilityai/sd-vae-ft-ema / -mse (the default above)
  static VaeConfig tiny();              // for tests: channels (16,32,32,32), 1 layer per block, 8 groups
};

// Overwrites the fields a diffusers `config.json` sets (in_channels, out_channels,
// latent_channels, block_out_channels, layers_per_block, norm_num_groups,
// scaling_factor, use_quant_conv, use_post_quant_conv, mid_block_add_attention).
// Throws a data error naming the file and field when a value has the wrong type or the
// file names another class than AutoencoderKL.
void read_diffusers_vae_config(const std::string& path, VaeConfig& config);

// Reads the shape-fixing fields off a (renamed) state dict: block channels and count,
// layers per block, in/out/latent channels, which optional layers exist. Fields the
// tensors do not fix (groups, eps, scaling) stay as in `base`. `source` names the file
// in errors (a state dict that is no AutoencoderKL at all).
VaeConfig infer_vae_config(const StateDict& state, const VaeConfig& base, const std::string& source);

}  // namespace difffit
