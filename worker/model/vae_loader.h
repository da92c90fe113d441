// Loads an AutoencoderKL from a diffusers weight file: `diffusion_pytorch_model.safetensors`
// or a `.bin` / `.pt` state dict (read by content). The architecture is read off the
// tensor shapes; the group count and scaling factor come from `config.json` beside the
// file when present (the diffusers layout), else the SD defaults. Old diffusers names of
// the mid-block attention (query, key, value, proj_attn; 1x1-conv shaped weights too) are
// renamed on load. Missing, unexpected and wrongly shaped keys are listed by name.
#pragma once

#include <c10/core/Device.h>

#include <string>
#include <vector>

#include "common/state_dict.h"
#include "worker/model/autoencoder_kl.h"

namespace difffit {

struct VaeLoadOptions {
  std::string config_json = "auto";  // diffusers config.json: "auto" = beside the weights if there, "" = none
  int64_t norm_num_groups = 0;       // > 0 overrides the group count
  double scaling_factor = 0;         // > 0 overrides the scaling factor
  c10::Device device = c10::kCPU;    // where the module is placed
};

struct LoadedVae {
  AutoencoderKL model{nullptr};
  std::string path;                  // the weight file
  std::string sha256;                // of the weight file's bytes: the VAE's identity
  std::vector<std::string> renamed;  // old attention keys that were renamed
};

// Old attention names -> current ones (query -> to_q, key -> to_k, value -> to_v,
// proj_attn -> to_out.0), 1x1-conv attention weights reshaped to Linear; `renamed` lists
// the keys that changed.
StateDict rename_legacy_vae_keys(const StateDict& state, std::vector<std::string>* renamed = nullptr);

// Copies `state` into the model; throws a data error naming `source` and listing missing,
// unexpected and mismatched keys (with shapes).
void load_vae_state_dict(AutoencoderKLImpl& model, const StateDict& state, const std::string& source);

// Reads, infers the config, builds and loads. Logs one line with the architecture.
LoadedVae load_vae(const std::string& path, const VaeLoadOptions& options = {});

// The weight file named by `configured`, or $DIFFFIT_VAE_WEIGHTS when it is empty;
// empty when neither is set.
std::string resolve_vae_weights(const std::string& configured);

}  // namespace difffit
