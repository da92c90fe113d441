// DiT (Peebles & Xie) with module and parameter names equal to the reference
// state-dict keys, so official checkpoints load by key.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "worker/model/dit_config.h"
#include "worker/model/dit_layers.h"

namespace difffit {

// Which output channels classifier-free guidance mixes.
enum class CfgChannels {
  Reference,  // the first 3 channels, as the reference does "for exact reproducibility"
  Eps,        // all in_channels noise-prediction channels
  All,        // every output channel, variance included
};
CfgChannels parse_cfg_channels(const std::string& name);

// How the model runs, not what it computes.
struct DiTRunOptions {
  bool checkpoint_blocks = false;  // training: recompute each block in the backward instead of keeping its activations
};

class DiTImpl : public torch::nn::Module {
 public:
  // initialize=false leaves the weights uninitialised: for shape-only uses (parameter
  // counts) or when a checkpoint overwrites them anyway.
  explicit DiTImpl(const DiTConfig& config, bool initialize = true);

  // x (N,C,H,W) float, t (N) int64 timesteps, y (N) int64 labels -> (N, out_channels, H, W).
  // `force_drop` (bool, N): which labels become the null class, instead of the model's own
  // training-mode draw (the trainer draws it for the whole data-parallel batch).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                        const torch::Tensor& force_drop = {});

  // The reference's forward_with_cfg: x holds [z; z] and y holds [labels; null]; the
  // guided channels of both halves become uncond + s * (cond - uncond).
  torch::Tensor forward_with_cfg(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                                 double cfg_scale, CfgChannels channels = CfgChannels::Reference);

  // Re-initialises every weight as the reference does (adaLN and output layers zero).
  void initialize_weights();
  // Recomputes pos_embed for the config's grid and pos_embed_scale.
  void reset_pos_embed();

  // (N, T, p*p*c) -> (N, c, G*p, G*p)
  torch::Tensor unpatchify(const torch::Tensor& tokens) const;

  // Every PEFT-extensible linear layer, with its state-dict prefix.
  std::vector<std::pair<std::string, PeftLinear>> linear_layers() const;

  const DiTConfig& config() const { return config_; }
  DiTRunOptions& run_options() { return run_options_; }
  int64_t null_class() const { return config_.num_classes; }

  PatchEmbed x_embedder{nullptr};
  TimestepEmbedder t_embedder{nullptr};
  LabelEmbedder y_embedder{nullptr};
  torch::Tensor pos_embed;  // (1, T, D); in the state dict, never trained
  torch::nn::ModuleList blocks{nullptr};
  std::vector<DiTBlock> block_list;  // typed view of `blocks`
  FinalLayer final_layer{nullptr};

 private:
  DiTConfig config_;
  DiTRunOptions run_options_;
};
TORCH_MODULE(DiT);

}  // namespace difffit
